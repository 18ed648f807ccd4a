import { describe, expect, it } from 'vitest';
import { MEMORY_TYPE } from '../../x86/memory-types.ts';
import { getCpuModel } from '../cpu-model.ts';
import { Machine } from '../machine.ts';
import { explainMemoryType, explainPageMtrrTypes } from './explain.ts';
import { PAT_POWER_UP } from './pat.ts';
import { readMtrrState } from './read-mtrrs.ts';
import { layout } from './test-layouts.ts';

const pcMtrrs = () => readMtrrState(new Machine({ model: getCpuModel('skylake-i5-6300u')! }).cpus[0]!)!;

describe('explainMemoryType', () => {
  it('lists CR0.CD, every MTRR and whether it matches, the PAT entry and the deciding rule', () => {
    const text = explainMemoryType({ pa: 0xfee0_0300n, cr0Cd: false, mtrrs: pcMtrrs(), paging: { leaf: 0xfee0_0003n, largePage: false, pat: PAT_POWER_UP } });
    expect(text).toEqual([
      'memory type of physical 0xFEE00300: UC',
      '  CR0.CD = 0',
      '  MTRRs: IA32_MTRR_DEF_TYPE = 0xC06 (E = 1, FE = 1, default WB), IA32_MTRRCAP = 0xD0A',
      '    SMRR: invalid (V = 0)',
      '    fixed: not used (the address is above 1 MiB)',
      '    variable 0: base 0xC0000000 mask 0x7FC0000800 UC — matches',
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `    variable ${n}: invalid (V = 0)`),
      '    MTRR type UC: one variable range matches: its type (SDM Vol. 3A, "MTRR Precedences")',
      '  PAT: leaf 0xFEE00003: PAT = 0 (PAT bit 7 of the PTE), PCD = 0, PWT = 0 → entry 0 of IA32_PAT 0x0007040600070406 = WB (SDM Vol. 3A, "Selecting a Memory Type from the PAT")',
      '  → UC: MTRR UC with PAT WB, footnote 1 (SDM Vol. 3A, "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families")',
    ]);
  });

  it('names the fixed-range MTRR and byte below 1 MiB', () => {
    const text = explainMemoryType({ pa: 0xb_8000n, cr0Cd: false, mtrrs: pcMtrrs(), paging: null });
    expect(text).toContain('    fixed: IA32_MTRR_FIX16K_A0000 = 0x0, byte 6 (0xB8000–0xBBFFF) = UC');
    expect(text).toContain('  PAT: paging off, no leaf entry selects a PAT entry (the range type is used alone)');
  });

  it('under EPT: the MTRRs are marked ignored and the EPT type and "ignore PAT" are shown', () => {
    const text = explainMemoryType({
      pa: 0xfee0_0000n, cr0Cd: false, mtrrs: pcMtrrs(), paging: { leaf: 0xfee0_0083n | (1n << 12n), largePage: true, pat: PAT_POWER_UP },
      ept: { memoryType: MEMORY_TYPE.WB, ignorePat: false },
    });
    expect(text[0]).toBe('memory type of guest-physical 0xFEE00000: WB');
    expect(text).toContain('  MTRRs: ignored under EPT (SDM Vol. 3C, "EPT and Memory Typing")');
    expect(text).toContain('  EPT: memory type WB, ignore PAT = 0');
    expect(text.at(-2)).toMatch(/PAT = 1 \(PAT bit 12 of the large-page entry\), PCD = 0, PWT = 0 → entry 4 .* = WB/);
    expect(text.at(-1)).toMatch(/^ {2}→ WB: EPT WB with PAT WB \(.*with the EPT type in the MTRR column/);
  });

  it('says when the SDM leaves the type undefined', () => {
    const mtrrs = layout({ variable: [{ base: 0n, size: 1n << 30n, type: MEMORY_TYPE.WP }, { base: 0n, size: 1n << 21n, type: MEMORY_TYPE.WB }] });
    const text = explainMemoryType({ pa: 0x10_0000n, cr0Cd: false, mtrrs, paging: null });
    expect(text[0]).toBe('memory type of physical 0x100000: undefined (the SDM leaves it undefined)');
    expect(text).toContain('    MTRR type undefined: variable ranges of these types overlap: the SDM leaves the behavior undefined (SDM Vol. 3A, "MTRR Precedences")');
  });
});

describe('explainPageMtrrTypes', () => {
  it('a 2-MByte page over the VGA hole must be split; one in plain RAM need not', () => {
    const s = pcMtrrs();
    expect(explainPageMtrrTypes(s, 0x20_0000n, 0x20_0000n)).toEqual(['page 0x200000–0x3FFFFF (2048 KiB): one MTRR type, WB: a page of this size may map it']);
    const split = explainPageMtrrTypes(s, 0n, 0x20_0000n);
    expect(split[0]).toMatch(/^page 0x0–0x1FFFFF \(2048 KiB\): 4 runs of different MTRR types: split it/);
    expect(split.slice(1)).toEqual([
      '  0x0–0x9FFFF WB (below 1 MiB with the fixed ranges enabled (E = FE = 1): the fixed-range type)',
      '  0xA0000–0xBFFFF UC (below 1 MiB with the fixed ranges enabled (E = FE = 1): the fixed-range type)',
      '  0xC0000–0xFFFFF WP (below 1 MiB with the fixed ranges enabled (E = FE = 1): the fixed-range type)',
      '  0x100000–0x1FFFFF WB (no MTRR maps the address: the default type (IA32_MTRR_DEF_TYPE))',
    ]);
  });
});
