import { describe, expect, it } from 'vitest';
import { MEMORY_TYPE, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { getCpuModel } from '../cpu-model.ts';
import { Machine } from '../machine.ts';
import { mtrrRuns, mtrrType } from './mtrr-type.ts';
import { readMtrrState } from './read-mtrrs.ts';
import { layout } from './test-layouts.ts';

const { UC, WC, WT, WP, WB } = MEMORY_TYPE;
const MiB = 0x100000n, GiB = 0x40000000n;

describe('MTRR precedence (fixtures)', () => {
  it('default type UC: RAM needs a WB range, everything else stays UC', () => {
    const s = layout({ defaultType: UC, variable: [{ base: 0n, size: 2n * GiB, type: WB }] });
    expect(mtrrType(s, 0x1234_5000n)).toMatchObject({ type: WB, rule: 'variable-one', matches: [0] });
    expect(mtrrType(s, 0xfee0_0000n)).toMatchObject({ type: UC, rule: 'default', matches: [] });
  });

  it('UC over WB: UC wins', () => {
    const s = layout({ variable: [{ base: 0n, size: 4n * GiB, type: WB }, { base: 0xc000_0000n, size: GiB, type: UC }] });
    expect(mtrrType(s, 0xfec0_0000n)).toMatchObject({ type: UC, rule: 'variable-uc', matches: [0, 1] });
    expect(mtrrType(s, 0xbfff_f000n)).toMatchObject({ type: WB, rule: 'variable-one', matches: [0] });
  });

  it('WT with WB: WT; two WB: WB; WC with WB or WP with WT: undefined', () => {
    const pair = (a: MtrrMemoryType, b: MtrrMemoryType) => mtrrType(layout({ variable: [{ base: 0n, size: GiB, type: a }, { base: 0n, size: 16n * MiB, type: b }] }), 2n * MiB);
    expect(pair(WB, WT)).toMatchObject({ type: WT, rule: 'variable-wt-wb' });
    expect(pair(WT, WB)).toMatchObject({ type: WT, rule: 'variable-wt-wb' });
    expect(pair(WB, WB)).toMatchObject({ type: WB, rule: 'variable-identical' });
    expect(pair(WB, WC)).toMatchObject({ type: 'undefined', rule: 'variable-undefined' });
    expect(pair(WT, WP)).toMatchObject({ type: 'undefined', rule: 'variable-undefined' });
    expect(pair(WC, UC)).toMatchObject({ type: UC, rule: 'variable-uc' });
  });

  it('fixed ranges on: the first MiB goes by the fixed-range byte, even where a variable range says otherwise', () => {
    const fixedTypes = Array.from({ length: 88 }, (_, i) => (i < 16 ? WB : i < 20 ? UC : i < 24 ? WC : WP));
    const s = layout({ fixedTypes, variable: [{ base: 0n, size: MiB, type: UC }] });
    expect(mtrrType(s, 0x9_f000n)).toMatchObject({ type: WB, rule: 'fixed', fixed: { index: 1, field: 7 } });
    expect(mtrrType(s, 0xa_0000n)).toMatchObject({ type: UC, rule: 'fixed', fixed: { index: 2, field: 0 } }); // sub-range 16: after 8 × 64 KiB and 8 × 16 KiB
    expect(mtrrType(s, 0xb_c000n)).toMatchObject({ type: WC, fixed: { index: 2, field: 7 } });
    expect(mtrrType(s, 0xf_f000n)).toMatchObject({ type: WP, fixed: { index: 10, field: 7 } });
    expect(mtrrType(s, MiB)).toMatchObject({ type: WB, rule: 'default' });
  });

  it('fixed ranges off (FE = 0), or absent (FIX = 0): the first MiB goes by the variable ranges and the default', () => {
    const variable = [{ base: 0n, size: MiB, type: UC }] as const;
    expect(mtrrType(layout({ fixedEnabled: false, variable }), 0x1000n)).toMatchObject({ type: UC, rule: 'variable-one' });
    expect(mtrrType(layout({ fix: false, variable }), 0x1000n)).toMatchObject({ type: UC, rule: 'variable-one' });
    expect(mtrrType(layout({ fixedEnabled: false, defaultType: WT }), 0xa_0000n)).toMatchObject({ type: WT, rule: 'default' });
  });

  it('MTRRs disabled (E = 0): UC everywhere, whatever FE, the fixed ranges and the variable ranges say', () => {
    const s = layout({ enabled: false, fixedEnabled: true, variable: [{ base: 0n, size: 4n * GiB, type: WB }] });
    for (const pa of [0n, 0xa_0000n, 0x1000_0000n, 0xfee0_0000n]) expect(mtrrType(s, pa)).toMatchObject({ type: UC, rule: 'disabled' });
  });

  it('SMRR: UC outside SMM even over a WB range; its own type in SMM; nothing at all when V = 0', () => {
    const smrr = { base: 0x7f80_0000n, size: 8n * MiB, type: WB } as const;
    const s = layout({ variable: [{ base: 0n, size: 2n * GiB, type: WB }], smrr });
    expect(mtrrType(s, 0x7f80_0000n)).toMatchObject({ type: UC, rule: 'smrr' });
    expect(mtrrType(s, 0x7fff_f000n, { smm: true })).toMatchObject({ type: WB, rule: 'smrr-smm' });
    expect(mtrrType(s, 0x7f7f_f000n)).toMatchObject({ type: WB, rule: 'variable-one' });
    expect(mtrrType(layout({ smrrSupported: true }), 0n + 2n * MiB)).toMatchObject({ rule: 'default' });
  });

  it('a 2-MByte page straddling WB and UC must be split; one inside a single type need not', () => {
    // RAM WB up to 3 GiB − 1 MiB, then UC: the 2-MByte page at BFE00000H holds both.
    const s = layout({ defaultType: UC, variable: [{ base: 0n, size: 2n * GiB, type: WB }, { base: 2n * GiB, size: GiB, type: WB }, { base: 0xbff0_0000n, size: MiB, type: UC }] });
    const runs = mtrrRuns(s, 0xbfe0_0000n, 2n * MiB);
    expect(runs.map((r) => [r.base, r.end, r.result.type])).toEqual([[0xbfe0_0000n, 0xbff0_0000n, WB], [0xbff0_0000n, 0xc000_0000n, UC]]);
    expect(mtrrRuns(s, 0xbfc0_0000n, 2n * MiB)).toHaveLength(1);
    // A 1-GByte page over the same boundary, and the first 2 MiB (fixed ranges: WB below A0000H, then UC…).
    expect(mtrrRuns(s, 2n * GiB, GiB)).toHaveLength(2);
    expect(mtrrRuns(layout({ fixedTypes: Array.from({ length: 88 }, (_, i) => (i >= 20 && i < 24 ? UC : WB)) }), 0n, 2n * MiB).map((r) => r.result.type)).toEqual([WB, UC, WB]);
  });

  it('the pc board: RAM WB, the VGA hole UC, the local APIC and I/O APIC pages UC', () => {
    const lp = new Machine({ model: getCpuModel('skylake-i5-6300u')! }).cpus[0]!;
    const s = readMtrrState(lp)!;
    expect(mtrrType(s, 0x10_0000n).type).toBe(WB);
    expect(mtrrType(s, 0xb_8000n).type).toBe(UC);
    expect(mtrrType(s, 0xf_0000n).type).toBe(WP);
    expect(mtrrType(s, 0xfee0_0000n).type).toBe(UC);
    expect(mtrrType(s, 0xfec0_0000n).type).toBe(UC);
    expect(mtrrType(s, 0x1_0000_0000n).type).toBe(WB);
  });
});
