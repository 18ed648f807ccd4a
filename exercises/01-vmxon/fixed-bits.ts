// Exercise 1.2 — CR0 and CR4 in VMX operation.
// Read chapters/01-vmxon/README.md, section "CR0 and CR4: the fixed bits".
// See SDM Vol. 3D, appendix "VMX-Fixed Bits in CR0" and "VMX-Fixed Bits in CR4".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import {
  MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1, MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '../../src/vmx/msrs.ts';

/** CR4.VMXE, bit 13: without it VMXON raises #UD. */
export const X86_CR4_VMXE = 1n << 13n;

/** Apply the rule: a 1 in FIXED0 forces the bit to 1, a 0 in FIXED1 forces it to 0. */
export function adjustForVmx(value: bigint, fixed0: bigint, fixed1: bigint): bigint {
  // TODO
  throw new Error('TODO: adjustForVmx');
}

/** Set CR4.VMXE and make CR0 and CR4 legal for VMX operation, on this CPU. */
export function enterVmxCrState(cpu: HostCpu): void {
  // TODO: read the four FIXED MSRs, adjust CR4 (with VMXE) and CR0, write them back.
  throw new Error('TODO: enterVmxCrState');
}
