// Exercise 1.3 — the VMXON region.
// Read chapters/01-vmxon/README.md, section "The VMXON region" (and "Which allocator?").
// See SDM Vol. 3C, "VMXON Region" and Vol. 3D, "Basic VMX Information" (IA32_VMX_BASIC).
import type { Kernel } from '../../src/kernel/kernel.ts';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';

export interface VmxRegion {
  /** Kernel virtual address (for the kernel's read/write functions). */
  va: bigint;
  /** Physical address: what VMXON (and VMPTRLD, VMCLEAR) take. */
  pa: bigint;
}

/** IA32_VMX_BASIC[30:0]: the VMCS revision identifier. */
export function revisionId(basic: bigint): number {
  // TODO
  throw new Error('TODO: revisionId');
}

/** IA32_VMX_BASIC[44:32]: bytes to allocate for the VMXON region and for each VMCS. */
export function regionSize(basic: bigint): number {
  // TODO
  throw new Error('TODO: regionSize');
}

/**
 * Allocate and initialise a VMXON region: 4-KByte aligned, physically contiguous, with the
 * revision identifier in its first dword and bit 31 of that dword clear. Return null on failure.
 */
export function allocVmxonRegion(k: Kernel): VmxRegion | null {
  // TODO: which allocator? (kmalloc, vmalloc, get_zeroed_page, alloc_pages…) Read the notes.
  // Then write the revision identifier and compute the physical address.
  throw new Error('TODO: allocVmxonRegion');
}

/** Give the region's memory back, with the allocator's matching free function. */
export function freeVmxRegion(k: Kernel, region: VmxRegion): void {
  // TODO
  throw new Error('TODO: freeVmxRegion');
}
