// The MTRR registers' layouts: IA32_MTRRCAP, IA32_MTRR_DEF_TYPE, the fixed-range MTRRs and the variable-range pairs
// (MSR indices in src/x86/msr.ts). See SDM Vol. 3A, "Memory Type Range Registers (MTRRs)".
import * as MSR from './msr.ts';

/** IA32_MTRRCAP. See SDM Vol. 3A, "MTRR Feature Identification". */
export const MTRRCAP = {
  /** Bits 7:0: number of variable-range pairs. */
  VCNT_MASK: 0xffn,
  /** Bit 8: the fixed-range MTRRs exist. */
  FIX: 1n << 8n,
  /** Bit 10: the write-combining type is supported. */
  WC: 1n << 10n,
  /** Bit 11: the SMRR pair exists. */
  SMRR: 1n << 11n,
} as const;

/** IA32_MTRR_DEF_TYPE. See SDM Vol. 3A, "IA32_MTRR_DEF_TYPE MSR". */
export const MTRR_DEF_TYPE = {
  /** Bits 7:0: the type of memory no MTRR maps. */
  TYPE_MASK: 0xffn,
  /** Bit 10: fixed-range MTRRs enabled (only while E = 1). */
  FE: 1n << 10n,
  /** Bit 11: MTRRs enabled; when clear, all of physical memory is UC. */
  E: 1n << 11n,
} as const;

/**
 * IA32_MTRR_PHYSBASEn / PHYSMASKn (and the SMRR pair): type in PHYSBASE bits 7:0, base and mask from bit 12 up to
 * MAXPHYADDR − 1, the valid flag in PHYSMASK bit 11. See SDM Vol. 3A, "Variable Range MTRRs".
 */
export const MTRR_PHYS = {
  TYPE_MASK: 0xffn,
  ADDRESS_SHIFT: 12n,
  VALID: 1n << 11n,
} as const;

/** The first MiB, which the fixed-range MTRRs cover. */
export const FIXED_RANGES_END = 0x100000;
/** Each fixed-range MTRR holds eight one-byte types. */
export const FIXED_RANGE_FIELDS = 8;

/**
 * The 11 fixed-range MTRRs: each maps 8 consecutive sub-ranges of `step` bytes starting at `base` (one type byte
 * each, byte 0 for the lowest). See SDM Vol. 3A, "Fixed Range MTRRs" (Table "Address Mapping for Fixed-Range MTRRs").
 */
export const FIXED_RANGE_MTRRS = [
  { msr: MSR.MSR_MTRRfix64K_00000, name: 'IA32_MTRR_FIX64K_00000', base: 0x00000, step: 0x10000 },
  { msr: MSR.MSR_MTRRfix16K_80000, name: 'IA32_MTRR_FIX16K_80000', base: 0x80000, step: 0x4000 },
  { msr: MSR.MSR_MTRRfix16K_A0000, name: 'IA32_MTRR_FIX16K_A0000', base: 0xa0000, step: 0x4000 },
  { msr: MSR.MSR_MTRRfix4K_C0000, name: 'IA32_MTRR_FIX4K_C0000', base: 0xc0000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_C8000, name: 'IA32_MTRR_FIX4K_C8000', base: 0xc8000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_D0000, name: 'IA32_MTRR_FIX4K_D0000', base: 0xd0000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_D8000, name: 'IA32_MTRR_FIX4K_D8000', base: 0xd8000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_E0000, name: 'IA32_MTRR_FIX4K_E0000', base: 0xe0000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_E8000, name: 'IA32_MTRR_FIX4K_E8000', base: 0xe8000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_F0000, name: 'IA32_MTRR_FIX4K_F0000', base: 0xf0000, step: 0x1000 },
  { msr: MSR.MSR_MTRRfix4K_F8000, name: 'IA32_MTRR_FIX4K_F8000', base: 0xf8000, step: 0x1000 },
] as const;

/** Bits MAXPHYADDR−1:12: where PhysBase and PhysMask live. */
export function physAddressBits(maxPhysAddr: number): bigint {
  return ((1n << BigInt(maxPhysAddr)) - 1n) & ~0xfffn;
}
