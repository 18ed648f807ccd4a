// Exercise 3.2 — legal CR0 and CR4 values for VMX operation, from IA32_VMX_CR0_FIXED0/1 and IA32_VMX_CR4_FIXED0/1.
// Read chapters/03-capabilities/README.md, section "CR0 and CR4 in VMX operation".
// See SDM Vol. 3D, appendix "VMX-Fixed Bits in CR0" and "VMX-Fixed Bits in CR4", and Vol. 3C, "Checks on Guest
// Control Registers, Debug Registers, and MSRs".
//
//   FIXED0 bit = 1  →  the CR bit must be 1          FIXED0 bit = 0 and FIXED1 bit = 1  →  flexible
//   FIXED1 bit = 0  →  the CR bit must be 0
//
// So a value v is legal when (v & FIXED0) === FIXED0 and (v & ~FIXED1) === 0.
import {
  MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1, MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '#src/vmx/msrs';

/** Reads a model-specific register; reading one the processor does not implement raises #GP. */
export type Rdmsr = (msr: number) => bigint;

export interface CrOptions {
  /**
   * The value is a guest CR0 and the "unrestricted guest" VM-execution control is 1: PE and PG are then not
   * checked, so a guest may run in real mode or unpaged protected mode.
   */
  readonly unrestrictedGuest?: boolean;
}

export interface FixedBitViolation {
  readonly register: 'CR0' | 'CR4';
  readonly bit: number;
  /** 'CR0.PE', 'CR4.VMXE', … or 'CR4 bit 15' for a bit without a name. */
  readonly name: string;
  readonly reason: 'must be 1' | 'must be 0';
  /** The MSR that says so: CRn_FIXED0 for 'must be 1', CRn_FIXED1 for 'must be 0'. */
  readonly msr: number;
}

/** Names of the architectural CR0 and CR4 bits. See SDM Vol. 3A, "Control Registers". */
export const CR0_BIT_NAMES: Readonly<Record<number, string>> = {
  0: 'PE', 1: 'MP', 2: 'EM', 3: 'TS', 4: 'ET', 5: 'NE', 16: 'WP', 18: 'AM', 29: 'NW', 30: 'CD', 31: 'PG',
};
export const CR4_BIT_NAMES: Readonly<Record<number, string>> = {
  0: 'VME', 1: 'PVI', 2: 'TSD', 3: 'DE', 4: 'PSE', 5: 'PAE', 6: 'MCE', 7: 'PGE', 8: 'PCE', 9: 'OSFXSR',
  10: 'OSXMMEXCPT', 11: 'UMIP', 12: 'LA57', 13: 'VMXE', 14: 'SMXE', 16: 'FSGSBASE', 17: 'PCIDE', 18: 'OSXSAVE',
  19: 'KL', 20: 'SMEP', 21: 'SMAP', 22: 'PKE', 23: 'CET', 24: 'PKS', 25: 'UINTR',
};

const CR0_PE = 1n << 0n;
const CR0_PG = 1n << 31n;

/**
 * The closest legal CR0: FIXED0 bits forced to 1, bits clear in FIXED1 forced to 0, every other bit as given.
 * With `unrestrictedGuest`, PE and PG are not subject to the rule: keep them exactly as given.
 */
export function adjustCr0(rdmsr: Rdmsr, cr0: bigint, opts: CrOptions = {}): bigint {
  // TODO: read IA32_VMX_CR0_FIXED0 and IA32_VMX_CR0_FIXED1 and apply the rule in the comment at the top.
  throw new Error('TODO: adjustCr0');
}

/** The closest legal CR4 (the same rule with IA32_VMX_CR4_FIXED0/1; FIXED0 includes CR4.VMXE). */
export function adjustCr4(rdmsr: Rdmsr, cr4: bigint): bigint {
  // TODO
  throw new Error('TODO: adjustCr4');
}

/**
 * Every CR0 bit that breaks the fixed-bit rule, one FixedBitViolation per bit, in increasing bit order
 * (an empty array if the value is legal). CR0 is 64 bits wide: look at all of them.
 */
export function checkCr0(rdmsr: Rdmsr, cr0: bigint, opts: CrOptions = {}): FixedBitViolation[] {
  // TODO: bits that FIXED0 sets but cr0 lacks are 'must be 1' (msr: FIXED0); bits cr0 sets but FIXED1 lacks are
  // 'must be 0' (msr: FIXED1). Skip PE and PG for an unrestricted guest. Name bits with CR0_BIT_NAMES.
  throw new Error('TODO: checkCr0');
}

export function checkCr4(rdmsr: Rdmsr, cr4: bigint): FixedBitViolation[] {
  // TODO
  throw new Error('TODO: checkCr4');
}
