// Exercise 7.1 — read the MTRRs. readMtrrs through the host CPU's RDMSR on every model and on both firmware boards,
// against the MTRR MSRs themselves (read by the kit); after the MTRRs are reprogrammed (your map must come from the
// registers, not from what firmware usually does); and on register banks no model has — FIX = 0, VCNT from 0 to
// 10, no SMRR — where reading an MSR IA32_MTRRCAP does not announce raises #GP.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeVariablePair, readMtrrs } from '#impl/07-mtrr/read-mtrrs';
import { bank, boardRuns, bootHost, hex, hostRdmsr, kitMap, kitState, MTRR_TYPES, show } from './support.ts';

const MAP_RULE = 'SDM Vol. 3A, "MTRR Feature Identification": IA32_MTRRCAP (FEH) bits 7:0 VCNT, bit 8 FIX, bit 10 WC, bit 11 SMRR; ' +
  '"IA32_MTRR_DEF_TYPE MSR" (2FFH): bits 7:0 the default type, bit 10 FE, bit 11 E';
const FIXED_RULE = 'SDM Vol. 3A, "Fixed Range MTRRs": IA32_MTRR_FIX64K_00000 (250H) holds 8 × 64 KiB from 0, FIX16K_80000/A0000 (258H, 259H) 8 × 16 KiB each, ' +
  'FIX4K_C0000 … F8000 (268H–26FH) 8 × 4 KiB each; byte 0 of each MSR is its lowest sub-range';
const VAR_RULE = 'SDM Vol. 3A, "Variable Range MTRRs": IA32_MTRR_PHYSBASEn (200H + 2n) bits 7:0 type, bits MAXPHYADDR−1:12 PhysBase; ' +
  'IA32_MTRR_PHYSMASKn (201H + 2n) bit 11 V, bits MAXPHYADDR−1:12 PhysMask';
const hexList = (l: readonly number[]): string => l.map((m) => hex(m)).join(', ');

describe('decodeVariablePair', () => {
  test('type, PhysBase, PhysMask and V, for random register values and MAXPHYADDR', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(36, 39, 46, 52), (base, mask, maxPhysAddr) => {
      const bits = ((1n << BigInt(maxPhysAddr)) - 1n) & ~0xfffn;
      const want = { base: base & bits, mask: mask & bits, type: Number(base & 0xffn), valid: (mask & 0x800n) !== 0n };
      const got = decodeVariablePair(base, mask, maxPhysAddr);
      expect(show(got), `IA32_MTRR_PHYSBASEn ${hex(base)}, IA32_MTRR_PHYSMASKn ${hex(mask)}, MAXPHYADDR ${maxPhysAddr}: expected ${show(want)} (the address fields keep bits ${maxPhysAddr - 1}:12 only, the type is not part of the base, V is not part of the mask). ${VAR_RULE}`).toBe(show(want));
    }));
  });
});

describe('readMtrrs on the host CPU', () => {
  test.each(boardRuns())('%s, board %s: the map the MTRR MSRs hold, reading only MSRs IA32_MTRRCAP announces', (model, board) => {
    const host = bootHost({ model, board, ramMiB: 64 });
    const want = kitMap(kitState(host));
    const { rdmsr, reads } = hostRdmsr(host);
    let got: ReturnType<typeof readMtrrs> | null = null;
    let threw: unknown = null;
    try {
      got = readMtrrs(rdmsr, host.machine.cpus[0]!.maxPhysAddr);
    } catch (e) {
      threw = e;
    }
    expect(threw === null ? null : String(threw), `${model}, board ${board}: readMtrrs threw. MSRs read, in order: ${hexList(reads)}`).toBe(null);
    expect(reads[0], `${model}: read IA32_MTRRCAP (FEH) first — it says which MTRR MSRs exist. ${MAP_RULE}`).toBe(0xfe);
    const where = `${model}, board ${board}`;
    expect([got?.vcnt, got?.fixedSupported, got?.wcSupported, got?.smrrSupported], `${where}: IA32_MTRRCAP [VCNT, FIX, WC, SMRR]. ${MAP_RULE}`).toEqual([want.vcnt, want.fixedSupported, want.wcSupported, want.smrrSupported]);
    expect([got?.enabled, got?.fixedEnabled, got?.defaultType], `${where}: IA32_MTRR_DEF_TYPE [E, FE, default type]. ${MAP_RULE}`).toEqual([want.enabled, want.fixedEnabled, want.defaultType]);
    expect(got?.maxPhysAddr, `${where}: maxPhysAddr is the argument, MAXPHYADDR`).toBe(want.maxPhysAddr);
    expect(show(got?.fixed), `${where}: the 88 fixed sub-ranges, lowest first, as { base, size, type }. ${FIXED_RULE}`).toBe(show(want.fixed));
    expect(show(got?.variable), `${where}: the ${want.vcnt} variable pairs, pair 0 first, the invalid ones too. ${VAR_RULE}`).toBe(show(want.variable));
    expect(show(got?.smrr), `${where}: the SMRR pair (IA32_SMRR_PHYSBASE 1F2H, IA32_SMRR_PHYSMASK 1F3H, address bits 31:12), read only when IA32_MTRRCAP.SMRR = 1, else null`).toBe(show(want.smrr));
  });

  test('after WRMSR to the MTRRs, the map follows the registers (not what firmware usually leaves)', () => {
    const host = bootHost({ model: 'skylake-i5-6300u', ramMiB: 64 });
    const cpu = host.kernel.cpu();
    const pairs = fc.sample(fc.record({ n: fc.integer({ min: 0, max: 9 }), at: fc.bigInt({ min: 0n, max: (1n << 39n) - 1n }), log: fc.integer({ min: 12, max: 38 }), type: fc.constantFrom(...MTRR_TYPES), valid: fc.boolean() }), 12);
    cpu.wrmsr(0x2ff, 0n); // disable while programming, as the SDM's procedure does
    for (const p of pairs) {
      const size = 1n << BigInt(p.log);
      cpu.wrmsr(0x200 + 2 * p.n, (p.at & ~(size - 1n) & ~0xfffn) | BigInt(p.type));
      cpu.wrmsr(0x201 + 2 * p.n, (((1n << 39n) - 1n) & ~(size - 1n) & ~0xfffn) | (p.valid ? 0x800n : 0n));
    }
    cpu.wrmsr(0x259, 0x0101010100000000n); // A0000–AFFFF UC, B0000–BFFFF WC
    cpu.wrmsr(0x2ff, 0x800n); // E = 1, FE = 0, default UC
    const want = kitMap(kitState(host));
    const got = readMtrrs((msr) => cpu.rdmsr(msr), 39);
    expect([got.enabled, got.fixedEnabled, got.defaultType], `IA32_MTRR_DEF_TYPE is now 800H: E = 1, FE = 0, default UC (0). ${MAP_RULE}`).toEqual([true, false, 0]);
    expect(show(got.variable), `the variable pairs as written just now. ${VAR_RULE}`).toBe(show(want.variable));
    expect(show(got.fixed), `IA32_MTRR_FIX16K_A0000 is now 0101010100000000H: the map still holds the fixed ranges when FE = 0 (FIX = 1 says they exist). ${FIXED_RULE}`).toBe(show(want.fixed));
  });
});

describe('readMtrrs on processors no model is', () => {
  const cases: { what: string; spec: Parameters<typeof bank>[0] }[] = [
    { what: 'FIX = 0 (no fixed-range MTRRs), 8 pairs, no SMRR', spec: { vcnt: 8, fix: false, smrr: false, maxPhysAddr: 36, defType: 0xc06n, variable: [{ base: 0xc0000000n, mask: 0xfc0000800n }] } },
    { what: 'VCNT = 0', spec: { vcnt: 0, fix: true, smrr: false, maxPhysAddr: 39, defType: 0xc00n } },
    { what: 'VCNT = 2, SMRR = 1 with a valid SMRR', spec: { vcnt: 2, fix: true, smrr: true, maxPhysAddr: 46, defType: 0xc06n, variable: [{ base: 0x80000000n, mask: 0x3fff80000800n }, { base: 0x100000006n, mask: 0x3fff00000800n }], smrrPair: { base: 0x7f000006n, mask: 0xff000800n } } },
    { what: 'VCNT = 10, FIX = 0, SMRR = 1, MTRRs disabled', spec: { vcnt: 10, fix: false, smrr: true, maxPhysAddr: 39, defType: 0x006n, smrrPair: { base: 0x7f800000n, mask: 0xff800800n } } },
  ];
  test.each(cases)('$what: the map, and no RDMSR of an MSR that does not exist', ({ what, spec }) => {
    const b = bank(spec);
    let got: ReturnType<typeof readMtrrs> | null = null;
    let threw: unknown = null;
    try {
      got = readMtrrs(b.rdmsr, spec.maxPhysAddr);
    } catch (e) {
      threw = e;
    }
    const absent = b.reads.filter((m) => !b.msrs.includes(m));
    expect(absent, `${what}: RDMSR of ${hexList(absent)}, which this processor does not have: #GP(0). Read the fixed ranges only if IA32_MTRRCAP.FIX = 1, pairs 0 … VCNT−1 only, the SMRR pair only if SMRR = 1. ${MAP_RULE}`).toEqual([]);
    expect(threw === null ? null : String(threw), `${what}: readMtrrs threw`).toBe(null);
    expect(show(got), `${what}: the map. ${MAP_RULE}. ${FIXED_RULE} (empty when FIX = 0). ${VAR_RULE}`).toBe(show(kitMap(b.state)));
  });
});
