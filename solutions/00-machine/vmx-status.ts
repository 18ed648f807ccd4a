// How a VMX instruction reports its outcome: through six arithmetic flags in RFLAGS.
// See SDM Vol. 3C, "Conventions" (VMX instruction reference): VMsucceed, VMfailInvalid, VMfailValid.

export type VmxStatus = 'VMsucceed' | 'VMfailInvalid' | 'VMfailValid';

export const RFLAGS_CF = 1n << 0n;
export const RFLAGS_PF = 1n << 2n;
export const RFLAGS_AF = 1n << 4n;
export const RFLAGS_ZF = 1n << 6n;
export const RFLAGS_SF = 1n << 7n;
export const RFLAGS_OF = 1n << 11n;

/** The six flags every VMX outcome writes; all other RFLAGS bits are left alone. */
const STATUS_FLAGS = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF;

/**
 * Read the outcome from RFLAGS right after a VMX instruction.
 * CF = 1: VMfailInvalid (no current VMCS, so no error number exists).
 * ZF = 1: VMfailValid (the error number is in the VM-instruction error field of the current VMCS).
 */
export function vmxStatus(rflags: bigint): VmxStatus {
  if ((rflags & RFLAGS_CF) !== 0n) return 'VMfailInvalid';
  if ((rflags & RFLAGS_ZF) !== 0n) return 'VMfailValid';
  return 'VMsucceed';
}

/** The RFLAGS value the processor produces for `status`, starting from `rflags`. */
export function rflagsAfter(rflags: bigint, status: VmxStatus): bigint {
  const cleared = rflags & ~STATUS_FLAGS;
  switch (status) {
    case 'VMsucceed':
      return cleared;
    case 'VMfailInvalid':
      return cleared | RFLAGS_CF;
    case 'VMfailValid':
      return cleared | RFLAGS_ZF;
  }
}
