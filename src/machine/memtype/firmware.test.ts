import { describe, expect, it } from 'vitest';
import surfaceBook3 from '../../../data/cpu-models/mtrr/icelake-surfacebook3-linux-dmesg.json' with { type: 'json' };
import { Machine } from '../machine.ts';
import { CPU_MODELS, getCpuModel } from '../cpu-model.ts';
import { printMtrrState } from './linux-print.ts';
import { readMtrrState } from './read-mtrrs.ts';

describe('MTRRs as firmware leaves them', () => {
  it('the surface-book-3 board decodes to exactly the text its Linux boot log printed', () => {
    const m = new Machine({ model: getCpuModel('icelake-i5-1035g1')!, board: 'surface-book-3', cpus: 2 });
    for (const lp of m.cpus) expect(printMtrrState(readMtrrState(lp)!)).toEqual(surfaceBook3.printed);
  });

  it('the pc board on every model: default WB, the VGA hole UC, the ROM area WP, 3–4 GiB UC, the same on every LP', () => {
    for (const model of CPU_MODELS) {
      const m = new Machine({ model, cpus: 2 });
      const [a, b] = m.cpus.map((lp) => readMtrrState(lp)!);
      expect(a).toEqual(b);
      const text = printMtrrState(a!);
      expect(text.slice(0, 5), model.name).toEqual([
        'MTRR default type: write-back',
        'MTRR fixed ranges enabled:',
        '  00000-9FFFF write-back',
        '  A0000-BFFFF uncachable',
        '  C0000-FFFFF write-protect',
      ]);
      expect(text[6]).toMatch(/^ {2}0 base 0*C0000000 mask [0-9A-F]*C0000000 uncachable$/);
      expect(text.slice(7).every((l) => l.endsWith('disabled'))).toBe(true);
    }
  });

  it('a board that cannot hold the CPU is refused', () => {
    expect(() => new Machine({ model: getCpuModel('penryn-core2-duo-t9600')!, board: 'surface-book-3' })).toThrow(/MAXPHYADDR|variable MTRRs/);
  });
});
