// A VMCS region, and making it the current VMCS.
// See SDM Vol. 3C, "VMCS Region", "VMCS Life Cycle", "VMCLEAR—Clear Virtual-Machine Control Structure"
// and "VMPTRLD—Load Pointer to Virtual-Machine Control Structure".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from '../01-vmxon/vmxon-region.ts';
import { vmxStatusOf, type VmxResult } from './vmx-access.ts';

export type { VmxRegion };

/**
 * A VMCS region is laid out like a VMXON region: the revision identifier in bits 30:0 of the first
 * dword, and bit 31 — the shadow-VMCS indicator — clear for an ordinary VMCS.
 */
export function allocVmcs(k: Kernel): VmxRegion | null {
  return allocVmxonRegion(k);
}

export function freeVmcs(k: Kernel, vmcs: VmxRegion): void {
  freeVmxRegion(k, vmcs);
}

/**
 * Make `vmcs` the current VMCS of this CPU: VMCLEAR first (launch state "clear", data written to the
 * region, so VMLAUNCH may follow), then VMPTRLD.
 */
export function loadVmcs(cpu: HostCpu, vmcs: VmxRegion): VmxResult<void> {
  cpu.vmclear(vmcs.pa);
  const cleared = vmxStatusOf(cpu);
  if (!cleared.ok) return cleared;
  cpu.vmptrld(vmcs.pa);
  return vmxStatusOf(cpu);
}

/** VMPTRST: the current-VMCS pointer, or null when there is none (all ones). */
export function currentVmcs(cpu: HostCpu): bigint | null {
  const p = cpu.vmptrst();
  return p === 0xffffffffffffffffn ? null : p;
}
