// CR0 and CR4 in VMX operation: some bits must be 1, some must be 0, and the processor says which.
// See SDM Vol. 3D, appendix "VMX-Fixed Bits in CR0" and "VMX-Fixed Bits in CR4", and Vol. 3C,
// "Restrictions on VMX Operation".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import {
  MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1, MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '../../src/vmx/msrs.ts';

/** CR4.VMXE, bit 13: without it VMXON raises #UD. */
export const X86_CR4_VMXE = 1n << 13n;

/**
 * A bit that is 1 in FIXED0 must be 1; a bit that is 0 in FIXED1 must be 0; the rest are free.
 */
export function adjustForVmx(value: bigint, fixed0: bigint, fixed1: bigint): bigint {
  return (value | fixed0) & fixed1;
}

/** Set CR4.VMXE and make CR0 and CR4 legal for VMX operation, on this CPU. */
export function enterVmxCrState(cpu: HostCpu): void {
  // VMXE first: CR4_FIXED0 itself contains VMXE, so adjusting without it would set it anyway,
  // but setting it explicitly documents why the bit is there.
  const cr4 = cpu.readCr4() | X86_CR4_VMXE;
  cpu.writeCr4(adjustForVmx(cr4, cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED0), cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED1)));
  cpu.writeCr0(adjustForVmx(cpu.readCr0(), cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED0), cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED1)));
}
