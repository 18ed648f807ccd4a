// The VMXON region: one 4-KByte-aligned, physically contiguous region per logical processor,
// starting with the VMCS revision identifier.
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
  return Number(basic & 0x7fffffffn);
}

/** IA32_VMX_BASIC[44:32]: bytes to allocate for the VMXON region and for each VMCS (at most 4096). */
export function regionSize(basic: bigint): number {
  return Number((basic >> 32n) & 0x1fffn);
}

/**
 * Allocate and initialise a VMXON region on the current CPU's behalf. A zeroed page from the page
 * allocator is aligned, physically contiguous and has no stale data; vmalloc memory would not be
 * physically contiguous, and kmalloc memory is not zeroed.
 */
export function allocVmxonRegion(k: Kernel): VmxRegion | null {
  const basic = k.cpu().rdmsr(MSR_IA32_VMX_BASIC);
  if (regionSize(basic) > 4096) return null;
  const va = k.get_zeroed_page();
  if (va === 0n) return null;
  // Bits 30:0 = revision identifier, bit 31 = 0. Write the whole dword: other bits may be garbage.
  k.write32(va, revisionId(basic));
  return { va, pa: k.virt_to_phys(va) };
}

export function freeVmxRegion(k: Kernel, region: VmxRegion): void {
  k.free_page(region.va);
}
