// Exercise 0.3 — read (and produce) the RFLAGS outcome of a VMX instruction.
// Read chapters/00-machine/README.md, section "How VMX instructions report".
// See SDM Vol. 3C, "Conventions" (VMX instruction reference): VMsucceed, VMfailInvalid, VMfailValid.

export type VmxStatus = 'VMsucceed' | 'VMfailInvalid' | 'VMfailValid';

export const RFLAGS_CF = 1n << 0n;
export const RFLAGS_PF = 1n << 2n;
export const RFLAGS_AF = 1n << 4n;
export const RFLAGS_ZF = 1n << 6n;
export const RFLAGS_SF = 1n << 7n;
export const RFLAGS_OF = 1n << 11n;

/** Read the outcome from RFLAGS right after a VMX instruction. */
export function vmxStatus(rflags: bigint): VmxStatus {
  // TODO: which flag means VMfailInvalid, which VMfailValid?
  throw new Error('TODO: vmxStatus');
}

/** The RFLAGS value the processor produces for `status`, starting from `rflags`. */
export function rflagsAfter(rflags: bigint, status: VmxStatus): bigint {
  // TODO: every outcome writes the same six flags; other bits are untouched.
  throw new Error('TODO: rflagsAfter');
}
