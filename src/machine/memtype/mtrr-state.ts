// The MTRR registers of one logical processor as plain data (their raw MSR values), and the decoding every reader
// shares: the resolver (mtrr-type.ts), the explanation, Linux's print format. See SDM Vol. 3A, "Memory Type Range
// Registers (MTRRs)".
import { FIXED_RANGE_MTRRS, MTRRCAP, MTRR_DEF_TYPE, MTRR_PHYS, physAddressBits } from '../../x86/mtrr.ts';

/** A variable-range pair (or the SMRR pair): IA32_MTRR_PHYSBASEn and IA32_MTRR_PHYSMASKn as read by RDMSR. */
export interface MtrrPair {
  readonly base: bigint;
  readonly mask: bigint;
}

export interface MtrrState {
  /** MAXPHYADDR: PhysBase and PhysMask have bits MAXPHYADDR−1:12. */
  readonly maxPhysAddr: number;
  /** IA32_MTRRCAP. */
  readonly cap: bigint;
  /** IA32_MTRR_DEF_TYPE. */
  readonly defType: bigint;
  /** The 11 fixed-range MTRRs in FIXED_RANGE_MTRRS order (zeros when IA32_MTRRCAP.FIX = 0). */
  readonly fixed: readonly bigint[];
  /** IA32_MTRRCAP.VCNT pairs. */
  readonly variable: readonly MtrrPair[];
  /** The SMRR pair when IA32_MTRRCAP.SMRR = 1. */
  readonly smrr: MtrrPair | null;
}

export const vcntOf = (cap: bigint): number => Number(cap & MTRRCAP.VCNT_MASK);
export const hasFixedRanges = (cap: bigint): boolean => (cap & MTRRCAP.FIX) !== 0n;
export const hasSmrr = (cap: bigint): boolean => (cap & MTRRCAP.SMRR) !== 0n;

export const mtrrsEnabled = (s: MtrrState): boolean => (s.defType & MTRR_DEF_TYPE.E) !== 0n;
/** FE counts only while E = 1 and the fixed ranges exist. */
export const fixedRangesEnabled = (s: MtrrState): boolean =>
  mtrrsEnabled(s) && (s.defType & MTRR_DEF_TYPE.FE) !== 0n && hasFixedRanges(s.cap);
export const defaultTypeOf = (s: MtrrState): number => Number(s.defType & MTRR_DEF_TYPE.TYPE_MASK);

export const pairValid = (p: MtrrPair): boolean => (p.mask & MTRR_PHYS.VALID) !== 0n;
export const pairType = (p: MtrrPair): number => Number(p.base & MTRR_PHYS.TYPE_MASK);

/** A variable range matches `pa` when PhysMask & pa = PhysMask & PhysBase. See SDM Vol. 3A, "Variable Range MTRRs". */
export function pairMatches(p: MtrrPair, maxPhysAddr: number, pa: bigint): boolean {
  const mask = p.mask & physAddressBits(maxPhysAddr);
  return pairValid(p) && (pa & mask) === (p.base & mask);
}

/** The fixed-range MTRR and byte that map `pa` (< 1 MiB). */
export function fixedFieldOf(pa: number): { index: number; field: number } {
  for (let index = FIXED_RANGE_MTRRS.length - 1; index >= 0; index--) {
    const r = FIXED_RANGE_MTRRS[index]!;
    if (pa >= r.base) return { index, field: Math.floor((pa - r.base) / r.step) };
  }
  throw new Error(`fixedFieldOf: ${pa} is not a physical address`);
}

/** Byte `field` of a fixed-range MTRR value. */
export const fixedFieldType = (value: bigint, field: number): number => Number((value >> BigInt(8 * field)) & 0xffn);

/** The address range of one fixed-range field. */
export function fixedFieldRange(index: number, field: number): { base: number; end: number } {
  const r = FIXED_RANGE_MTRRS[index]!;
  return { base: r.base + field * r.step, end: r.base + (field + 1) * r.step };
}
