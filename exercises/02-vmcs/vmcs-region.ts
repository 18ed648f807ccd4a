// Exercise 2.2 — a VMCS region, and making it current.
// Read chapters/02-vmcs/README.md, sections "The VMCS region" and "The VMCS life cycle".
// See SDM Vol. 3C, "VMCS Region", "VMCS Life Cycle", "VMCLEAR" and "VMPTRLD".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from '../01-vmxon/vmxon-region.ts';
import { vmxStatusOf, type VmxResult } from './vmx-access.ts';

export type { VmxRegion };

/** Allocate a VMCS region: revision identifier in bits 30:0, shadow-VMCS indicator (bit 31) clear. */
export function allocVmcs(k: Kernel): VmxRegion | null {
  // TODO: how does a VMCS region differ from a VMXON region?
  throw new Error('TODO: allocVmcs');
}

export function freeVmcs(k: Kernel, vmcs: VmxRegion): void {
  // TODO
  throw new Error('TODO: freeVmcs');
}

/** Make `vmcs` the current VMCS, launch state clear: VMCLEAR, then VMPTRLD, checking each. */
export function loadVmcs(cpu: HostCpu, vmcs: VmxRegion): VmxResult<void> {
  // TODO
  throw new Error('TODO: loadVmcs');
}

/** VMPTRST: the current-VMCS pointer, or null when there is none. */
export function currentVmcs(cpu: HostCpu): bigint | null {
  // TODO: what does VMPTRST store when there is no current VMCS?
  throw new Error('TODO: currentVmcs');
}
