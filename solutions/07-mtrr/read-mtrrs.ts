// The MTRRs of this processor, read into a map the rest of the chapter works from. Read IA32_MTRRCAP first: it
// says which MTRR MSRs exist (the fixed ranges only if FIX = 1, VCNT variable pairs, the SMRR pair only if
// SMRR = 1). RDMSR of an MSR that does not exist raises #GP — in a kernel module, an oops. Then IA32_MTRR_DEF_TYPE
// (E, FE and the default type), and the ranges themselves.
// See SDM Vol. 3A, "MTRR Feature Identification", "IA32_MTRR_DEF_TYPE MSR", "Fixed Range MTRRs", "Variable Range
// MTRRs" and "System-Management Range Register Interface".
import {
  MSR_IA32_MTRRCAP, MSR_IA32_SMRR_PHYSBASE, MSR_IA32_SMRR_PHYSMASK, MSR_MTRRdefType, MTRRphysBase_MSR, MTRRphysMask_MSR,
} from '../../src/x86/msr.ts';
import { FIXED_RANGE_MTRRS } from '../../src/x86/mtrr.ts';

/** Reads a model-specific register; reading one the processor does not implement raises #GP. */
export type Rdmsr = (msr: number) => bigint;

/** One sub-range of the first MiB and its type (one byte of a fixed-range MTRR). */
export interface FixedRange {
  readonly base: number;
  readonly size: number;
  readonly type: number;
}

/** A variable-range pair (or the SMRR pair), decoded. */
export interface VariableRange {
  /** PhysBase: the address bits of IA32_MTRR_PHYSBASEn (bits MAXPHYADDR−1:12), without the type. */
  readonly base: bigint;
  /** PhysMask: the address bits of IA32_MTRR_PHYSMASKn (bits MAXPHYADDR−1:12), without V. */
  readonly mask: bigint;
  /** IA32_MTRR_PHYSBASEn bits 7:0. */
  readonly type: number;
  /** IA32_MTRR_PHYSMASKn bit 11 (V): the pair is in use. */
  readonly valid: boolean;
}

export interface MtrrMap {
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]): PhysBase and PhysMask have bits MAXPHYADDR−1:12. */
  readonly maxPhysAddr: number;
  /** IA32_MTRRCAP bits 7:0, bit 8, bit 10, bit 11. */
  readonly vcnt: number;
  readonly fixedSupported: boolean;
  readonly wcSupported: boolean;
  readonly smrrSupported: boolean;
  /** IA32_MTRR_DEF_TYPE bit 11 (E), bit 10 (FE), bits 7:0. */
  readonly enabled: boolean;
  readonly fixedEnabled: boolean;
  readonly defaultType: number;
  /** The 88 sub-ranges of the first MiB, lowest first, when FIX = 1; empty when FIX = 0. */
  readonly fixed: readonly FixedRange[];
  /** The VCNT variable pairs, pair 0 first, the invalid ones too. */
  readonly variable: readonly VariableRange[];
  /** The SMRR pair (PhysBase and PhysMask bits 31:12) when SMRR = 1, else null. */
  readonly smrr: VariableRange | null;
}

/** IA32_MTRRCAP. See SDM Vol. 3A, "MTRR Feature Identification". */
const MTRRCAP_VCNT = 0xffn;
const MTRRCAP_FIX = 8n;
const MTRRCAP_WC = 10n;
const MTRRCAP_SMRR = 11n;
/** IA32_MTRR_DEF_TYPE. */
const DEF_TYPE_TYPE = 0xffn;
const DEF_TYPE_FE = 10n;
const DEF_TYPE_E = 11n;
/** IA32_MTRR_PHYSBASEn bits 7:0; IA32_MTRR_PHYSMASKn bit 11. */
const PHYS_TYPE = 0xffn;
const PHYSMASK_V = 11n;
/** SMRAM lies below 4 GiB: the SMRR pair has address bits 31:12 only. */
const SMRR_MAX_PHYS_ADDR = 32;

const bit = (v: bigint, n: bigint): boolean => ((v >> n) & 1n) === 1n;

/** Bits maxPhysAddr−1:12 of a PhysBase/PhysMask value. */
function addressBits(maxPhysAddr: number): bigint {
  return ((1n << BigInt(maxPhysAddr)) - 1n) & ~0xfffn;
}

/** IA32_MTRR_PHYSBASEn and IA32_MTRR_PHYSMASKn as RDMSR returns them, decoded. */
export function decodeVariablePair(physBase: bigint, physMask: bigint, maxPhysAddr: number): VariableRange {
  const bits = addressBits(maxPhysAddr);
  return { base: physBase & bits, mask: physMask & bits, type: Number(physBase & PHYS_TYPE), valid: bit(physMask, PHYSMASK_V) };
}

/** Every MTRR this processor has, read through `rdmsr` — and no MSR it does not have. */
export function readMtrrs(rdmsr: Rdmsr, maxPhysAddr: number): MtrrMap {
  const cap = rdmsr(MSR_IA32_MTRRCAP);
  const def = rdmsr(MSR_MTRRdefType);
  const vcnt = Number(cap & MTRRCAP_VCNT);
  const fixedSupported = bit(cap, MTRRCAP_FIX);
  const smrrSupported = bit(cap, MTRRCAP_SMRR);
  // Each fixed-range MTRR holds 8 one-byte types, byte 0 for its lowest sub-range.
  const fixed: FixedRange[] = [];
  if (fixedSupported) {
    for (const r of FIXED_RANGE_MTRRS) {
      const value = rdmsr(r.msr);
      for (let field = 0; field < 8; field++) {
        fixed.push({ base: r.base + field * r.step, size: r.step, type: Number((value >> BigInt(8 * field)) & 0xffn) });
      }
    }
  }
  const variable = Array.from({ length: vcnt }, (_, n) => decodeVariablePair(rdmsr(MTRRphysBase_MSR(n)), rdmsr(MTRRphysMask_MSR(n)), maxPhysAddr));
  const smrr = smrrSupported ? decodeVariablePair(rdmsr(MSR_IA32_SMRR_PHYSBASE), rdmsr(MSR_IA32_SMRR_PHYSMASK), SMRR_MAX_PHYS_ADDR) : null;
  return {
    maxPhysAddr, vcnt, fixedSupported, wcSupported: bit(cap, MTRRCAP_WC), smrrSupported,
    enabled: bit(def, DEF_TYPE_E), fixedEnabled: bit(def, DEF_TYPE_FE), defaultType: Number(def & DEF_TYPE_TYPE),
    fixed, variable, smrr,
  };
}
