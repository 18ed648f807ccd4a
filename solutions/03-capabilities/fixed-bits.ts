// Legal CR0 and CR4 values for VMX operation, from IA32_VMX_CR0_FIXED0/1 and IA32_VMX_CR4_FIXED0/1.
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

/** The closest legal CR0: FIXED0 bits forced to 1, bits clear in FIXED1 forced to 0. */
export function adjustCr0(rdmsr: Rdmsr, cr0: bigint, opts: CrOptions = {}): bigint {
  const { fixed0, fixed1 } = cr0Fixed(rdmsr);
  const exempt = cr0Exempt(opts);
  // Exempt bits keep the caller's value; every other bit follows the fixed-bit rule.
  return (((cr0 | fixed0) & fixed1) & ~exempt) | (cr0 & exempt);
}

export function adjustCr4(rdmsr: Rdmsr, cr4: bigint): bigint {
  const fixed0 = rdmsr(MSR_IA32_VMX_CR4_FIXED0);
  const fixed1 = rdmsr(MSR_IA32_VMX_CR4_FIXED1);
  return (cr4 | fixed0) & fixed1;
}

/** Every CR0 bit that breaks the fixed-bit rule, in increasing bit order (empty if the value is legal). */
export function checkCr0(rdmsr: Rdmsr, cr0: bigint, opts: CrOptions = {}): FixedBitViolation[] {
  const { fixed0, fixed1 } = cr0Fixed(rdmsr);
  return violations('CR0', cr0, fixed0, fixed1, MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1, cr0Exempt(opts));
}

export function checkCr4(rdmsr: Rdmsr, cr4: bigint): FixedBitViolation[] {
  const fixed0 = rdmsr(MSR_IA32_VMX_CR4_FIXED0);
  const fixed1 = rdmsr(MSR_IA32_VMX_CR4_FIXED1);
  return violations('CR4', cr4, fixed0, fixed1, MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1, 0n);
}

function cr0Fixed(rdmsr: Rdmsr): { fixed0: bigint; fixed1: bigint } {
  return { fixed0: rdmsr(MSR_IA32_VMX_CR0_FIXED0), fixed1: rdmsr(MSR_IA32_VMX_CR0_FIXED1) };
}

// With "unrestricted guest" = 1, VM entry does not check guest CR0.PE and CR0.PG against the fixed bits.
// See SDM Vol. 3C, "Checks on Guest Control Registers, Debug Registers, and MSRs".
function cr0Exempt(opts: CrOptions): bigint {
  return opts.unrestrictedGuest === true ? CR0_PE | CR0_PG : 0n;
}

function violations(
  register: 'CR0' | 'CR4', value: bigint, fixed0: bigint, fixed1: bigint, msr0: number, msr1: number, exempt: bigint,
): FixedBitViolation[] {
  const names = register === 'CR0' ? CR0_BIT_NAMES : CR4_BIT_NAMES;
  const mustBe1 = fixed0 & ~value & ~exempt;
  const mustBe0 = value & ~fixed1 & ~exempt;
  const out: FixedBitViolation[] = [];
  for (let bit = 0; bit < 64; bit++) {
    const b = 1n << BigInt(bit);
    const reason = (mustBe1 & b) !== 0n ? 'must be 1' : (mustBe0 & b) !== 0n ? 'must be 0' : null;
    if (reason === null) continue;
    const name = names[bit] !== undefined ? `${register}.${names[bit]}` : `${register} bit ${bit}`;
    out.push({ register, bit, name, reason, msr: reason === 'must be 1' ? msr0 : msr1 });
  }
  return out;
}
