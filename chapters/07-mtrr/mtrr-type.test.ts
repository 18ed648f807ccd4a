// Exercise 7.2 — the MTRR type of an address, and where a large page must be split. resolveMemoryType on fixtures
// for each precedence rule (and for each mistake public hypervisors made), on both firmware boards, and on generated
// layouts (fast-check, fixed seed) against the kit's mtrrType at every range edge and at random addresses;
// memoryTypeRuns against the kit's mtrrRuns for 4-KByte, 2-MByte and 1-GByte pages.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { memoryTypeRuns, resolveMemoryType } from '#impl/07-mtrr/mtrr-type';
import { layout } from '../../src/machine/memtype/test-layouts.ts';
import { bootHost, edges, explainPa, explainPageMtrrTypes, hex, kitMap, kitState, kitType, mtrrRuns, mtrrStates, SPAN, typeName, type MtrrState } from './support.ts';

const PRECEDENCE = 'SDM Vol. 3A, "MTRR Precedences": E = 0 → UC; below 1 MiB with E = FE = 1 → the fixed range; else the variable ranges that match: ' +
  'one type → it, any UC → UC, only WT and WB → WT, any other mix → undefined; none → the default type (IA32_MTRR_DEF_TYPE). ' +
  'The SMRR range is UC outside SMM, over all of them (SDM Vol. 3A, "System-Management Range Register Interface")';
const SPLIT_RULE = 'SDM Vol. 3A, "Large Page Size Considerations": a large page over ranges of different MTRR types is undefined behavior — report each run of one type, lowest first, adjacent runs of one type merged';

const GiB = 1n << 30n, MiB = 1n << 20n;
const { UC, WC, WT, WP, WB } = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6 } as const;
const vgaUc = Array.from({ length: 88 }, (_, k) => (k >= 16 && k < 24 ? UC : WB)); // A0000–BFFFF UC (the 8 × 16 KiB of FIX16K_A0000)

/** Pair 0 says UC for 0–1 GiB, but its V bit is clear. */
function invalidFirstPair(): MtrrState {
  const s = layout({ defaultType: WB });
  return { ...s, variable: s.variable.map((p, i) => (i === 0 ? { base: BigInt(UC), mask: 0x7fc0000000n } : p)) };
}

interface Fixture { readonly what: string; readonly state: MtrrState; readonly pa: bigint; readonly want: number | 'undefined' }
const FIXTURES: Fixture[] = [
  { what: 'no range matches, default UC (not WB: read IA32_MTRR_DEF_TYPE)', state: layout({ defaultType: UC, fixedEnabled: false, variable: [{ base: 0n, size: 2n * GiB, type: WB }] }), pa: 3n * GiB, want: UC },
  { what: 'no range matches, default WB', state: layout({ defaultType: WB, variable: [{ base: 3n * GiB, size: GiB, type: UC }] }), pa: 2n * GiB, want: WB },
  { what: 'UC inside WB: UC wins', state: layout({ defaultType: UC, variable: [{ base: 0n, size: 4n * GiB, type: WB }, { base: 3n * GiB, size: GiB, type: UC }] }), pa: 0xfee00000n, want: UC },
  { what: 'WB inside UC (the order of the pairs does not matter): UC wins', state: layout({ defaultType: WB, variable: [{ base: 3n * GiB, size: GiB, type: UC }, { base: 0xfe000000n, size: 32n * MiB, type: WB }] }), pa: 0xfe100000n, want: UC },
  { what: 'WT and WB overlap: WT', state: layout({ variable: [{ base: 0n, size: GiB, type: WB }, { base: 0x10000000n, size: 0x10000000n, type: WT }] }), pa: 0x18000000n, want: WT },
  { what: 'two WB ranges overlap: WB', state: layout({ defaultType: UC, variable: [{ base: 0n, size: GiB, type: WB }, { base: 0n, size: 512n * MiB, type: WB }] }), pa: 0x100000n, want: WB },
  { what: 'WC and WB overlap: undefined', state: layout({ variable: [{ base: 0n, size: GiB, type: WB }, { base: 0x20000000n, size: 0x1000000n, type: WC }] }), pa: 0x20000000n, want: 'undefined' },
  { what: 'WP and WT overlap: undefined (WT wins only over WB)', state: layout({ variable: [{ base: 0n, size: GiB, type: WP }, { base: 0n, size: MiB * 4n, type: WT }] }), pa: 0x200000n, want: 'undefined' },
  { what: 'below 1 MiB with E = FE = 1: the fixed range (the VGA hole UC), not the WB variable range over it', state: layout({ fixedTypes: vgaUc, variable: [{ base: 0n, size: 2n * GiB, type: WB }] }), pa: 0xa0000n, want: UC },
  { what: 'below 1 MiB with FE = 0: the variable ranges decide', state: layout({ fixedTypes: vgaUc, fixedEnabled: false, variable: [{ base: 0n, size: 2n * GiB, type: WB }] }), pa: 0xa0000n, want: WB },
  { what: 'below 1 MiB with FE = 1 but FIX = 0 (no fixed ranges): the variable ranges decide', state: layout({ fix: false, defaultType: UC, variable: [{ base: 0n, size: 2n * GiB, type: WT }] }), pa: 0xb8000n, want: WT },
  { what: 'fixed ranges above 1 MiB do not exist: 100000H goes by the variable ranges', state: layout({ fixedTypes: Array(88).fill(UC), defaultType: WB }), pa: 0x100000n, want: WB },
  { what: 'the last fixed sub-range (FIX4K_F8000 byte 7, FF000–FFFFF)', state: layout({ fixedTypes: Array.from({ length: 88 }, (_, k) => (k === 87 ? WP : WB)) }), pa: 0xfffffn, want: WP },
  { what: 'MTRRs disabled (E = 0): UC everywhere, whatever the default and the ranges say', state: layout({ enabled: false, defaultType: WB, variable: [{ base: 0n, size: 4n * GiB, type: WB }] }), pa: 0x1000n, want: UC },
  { what: 'E = 0 with FE = 1: still UC below 1 MiB (FE counts only while E = 1)', state: layout({ enabled: false, fixedEnabled: true, defaultType: WB }), pa: 0x80000n, want: UC },
  { what: 'the SMRR range outside SMM: UC over a WB variable range', state: layout({ defaultType: WB, variable: [{ base: 0n, size: 4n * GiB, type: WB }], smrr: { base: 0x7f000000n, size: 8n * MiB, type: WB } }), pa: 0x7f400000n, want: UC },
  { what: 'just past the SMRR range: the variable range again', state: layout({ defaultType: UC, variable: [{ base: 0n, size: 4n * GiB, type: WB }], smrr: { base: 0x7f000000n, size: 8n * MiB, type: WB } }), pa: 0x7f800000n, want: WB },
  { what: 'the SMRR compares bits 31:12 only: 4 GiB above it is not SMRAM', state: layout({ defaultType: WB, smrr: { base: 0x7f000000n, size: 8n * MiB, type: WB } }), pa: (1n << 32n) + 0x7f000000n, want: WB },
  { what: 'an invalid pair (V = 0) is ignored', state: invalidFirstPair(), pa: 0x1000n, want: WB },
  { what: 'a range above 4 GiB (MAXPHYADDR 46): PhysBase and PhysMask have bits 45:12', state: layout({ maxPhysAddr: 46, defaultType: UC, variable: [{ base: 1n << 40n, size: 1n << 40n, type: WB }] }), pa: (1n << 40n) + 0x1234000n, want: WB },
];

describe('resolveMemoryType: each precedence rule', () => {
  test.each(FIXTURES)('$what', ({ what, state, pa, want }) => {
    expect(kitType(state, pa), `kit self-check: ${what}`).toBe(want);
    const got = resolveMemoryType(kitMap(state), pa);
    expect(typeName(got), `physical ${hex(pa)} — ${what}. The kit's explanation:\n${explainPa(state, pa)}\n${PRECEDENCE}`).toBe(typeName(want));
  });
});

describe('resolveMemoryType: the firmware boards', () => {
  test.each([['pc', 'skylake-i5-6300u'], ['surface-book-3', 'icelake-i5-1035g1']] as const)('board %s (%s): RAM, the VGA hole, the ROM area, the MMIO hole, every range edge', (board, model) => {
    const s = kitState(bootHost({ model, board, ramMiB: 64 }));
    const map = kitMap(s);
    for (const pa of [...edges(s, 1n << 39n), 0xb8000n, 0xc8000n, 0xfec00000n, 0xfee00000n, 0xffff0000n, 0x100000000n]) {
      expect(typeName(resolveMemoryType(map, pa)), `board ${board}, physical ${hex(pa)}:\n${explainPa(s, pa)}\n${PRECEDENCE}`).toBe(typeName(kitType(s, pa)));
    }
  });
});

describe('resolveMemoryType: generated layouts', () => {
  test('agrees with the kit at every range edge and at random addresses (FIX, E, FE, default, fixed bytes, up to 10 pairs, SMRR)', () => {
    fc.assert(fc.property(mtrrStates, fc.array(fc.bigInt({ min: 0n, max: SPAN - 1n }), { minLength: 8, maxLength: 8 }), (s, random) => {
      const map = kitMap(s);
      for (const pa of [...edges(s), ...random]) {
        expect(typeName(resolveMemoryType(map, pa)), `physical ${hex(pa)} in a generated layout:\n${explainPa(s, pa)}\n${PRECEDENCE}`).toBe(typeName(kitType(s, pa)));
      }
    }), { numRuns: 200 });
  });
});

const runsText = (runs: readonly { base: bigint; end: bigint; type: number | 'undefined' }[]): string =>
  runs.map((r) => `${hex(r.base)}–${hex(r.end - 1n)} ${typeName(r.type)}`).join(', ');

function checkRuns(s: MtrrState, base: bigint, size: bigint, what: string): void {
  const want = mtrrRuns(s, base, size).map((r) => ({ base: r.base, end: r.end, type: r.result.type }));
  const got = memoryTypeRuns(kitMap(s), base, size);
  expect(runsText(got), `${what}: page ${hex(base)} of ${size / 1024n} KiB. The kit says:\n${explainPageMtrrTypes(s, base, size).join('\n')}\n${SPLIT_RULE}`).toBe(runsText(want));
}

describe('memoryTypeRuns: where a large page must be split', () => {
  test('the pc board: the first 2 MiB in 4 runs (WB, the VGA hole UC, the ROM area WP, WB); 1-GByte pages 1 and 2 WB, 3 UC', () => {
    const s = kitState(bootHost({ model: 'skylake-i5-6300u', ramMiB: 64 }));
    checkRuns(s, 0n, 2n * MiB, 'pc board');
    checkRuns(s, 0n, GiB, 'pc board');
    for (const g of [1n, 2n, 3n]) checkRuns(s, g * GiB, GiB, 'pc board');
    checkRuns(s, 0xfee00000n, 2n * MiB, 'pc board, the local APIC\'s 2 MiB');
    checkRuns(s, 0xa0000n, 0x1000n, 'pc board, one 4-KByte page of the VGA hole');
  });
  test('the surface-book-3 board: every 1-GByte page of the first 4 GiB, and the 2-MByte page where RAM meets the UC range at 91000000H', () => {
    const s = kitState(bootHost({ model: 'icelake-i5-1035g1', board: 'surface-book-3', ramMiB: 64 }));
    for (const g of [0n, 1n, 2n, 3n]) checkRuns(s, g * GiB, GiB, 'surface-book-3 board');
    checkRuns(s, 0x90000000n, 32n * MiB, 'surface-book-3 board');
    checkRuns(s, 0x91000000n & ~(2n * MiB - 1n), 2n * MiB, 'surface-book-3 board');
  });
  test('a 2-MByte page straddling two variable ranges of different types: two runs', () => {
    const s = layout({ defaultType: UC, variable: [{ base: 0n, size: 0x40000000n, type: WB }, { base: 0x40000000n, size: 0x100000n, type: WT }], fixedEnabled: false });
    checkRuns(s, 0x40000000n, 2n * MiB, 'WT for its first MiB, the UC default after');
    checkRuns(s, 0x3fe00000n, 4n * MiB, 'WB then WT then UC');
  });
  test('generated layouts: 4-KByte, 2-MByte and 1-GByte pages at range edges', () => {
    fc.assert(fc.property(mtrrStates, fc.nat(), fc.constantFrom(1n << 12n, 1n << 21n, 1n << 30n), (s, pick, size) => {
      const bases = edges(s).map((a) => a & ~(size - 1n));
      checkRuns(s, bases[pick % bases.length]!, size, 'generated layout');
    }), { numRuns: 150 });
  });
});
