// Exercise 1.4 — enter and leave VMX operation on the current CPU.
// Read chapters/01-vmxon/README.md, section "VMXON and VMXOFF". Use your exercises 1.1–1.3.
// See SDM Vol. 3C, "Enabling and Entering VMX Operation", "VMXON—Enter VMX Operation" and
// "VMXOFF—Leave VMX Operation".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { cpuHasVmx, enableFeatureControl } from './detect.ts';
import { X86_CR4_VMXE, enterVmxCrState } from './fixed-bits.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from './vmxon-region.ts';

export type VmxOnResult = { ok: true; region: VmxRegion } | { ok: false; error: string };

/**
 * Turn VMX on for the current CPU: detect, enable IA32_FEATURE_CONTROL, fix CR0/CR4, allocate the
 * region, VMXON, and check RFLAGS. On any failure return { ok: false, error } and leave nothing
 * behind: no leaked region, and CR4.VMXE back as it was (careful: if VMX was already on, VMXE is
 * a fixed-1 bit and clearing it raises #GP).
 */
export function vmxOn(k: Kernel): VmxOnResult {
  // TODO
  throw new Error('TODO: vmxOn');
}

/** Leave VMX operation, clear CR4.VMXE and free the region — in that order. */
export function vmxOff(k: Kernel, region: VmxRegion): void {
  // TODO
  throw new Error('TODO: vmxOff');
}
