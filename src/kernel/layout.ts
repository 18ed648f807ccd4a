// The host kernel's virtual address space, laid out like Linux x86-64 with 4-level paging, so
// addresses look familiar in dumps and the same mistakes fail the same way.
// See Linux Documentation/arch/x86/x86_64/mm.rst ("Complete virtual memory map with 4-level page tables").

/** Start of the direct mapping of all physical memory ("page_offset_base"): va = pa + PAGE_OFFSET. */
export const PAGE_OFFSET = 0xffff_8880_0000_0000n;
/** vmalloc/ioremap space: virtually contiguous, physically scattered. */
export const VMALLOC_START = 0xffff_c900_0000_0000n;
export const VMALLOC_END = 0xffff_e8ff_ffff_ffffn;
/** The kernel image (text, data) — where host entry points such as HOST_RIP live. */
export const START_KERNEL_MAP = 0xffff_ffff_8000_0000n;
/** Physical address the kernel image is loaded at (Linux's default CONFIG_PHYSICAL_START). */
export const PHYS_KERNEL_START = 0x100_0000;
/** Bytes reserved for the kernel image: text, GDT/IDT/TSS per CPU, page tables, stacks. */
export const KERNEL_IMAGE_BYTES = 0x100_0000;

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

export type AddressKind = 'direct-map' | 'vmalloc' | 'kernel-image' | 'user' | 'unmapped';

export function classifyAddress(va: bigint): AddressKind {
  if (va < 0x0000_8000_0000_0000n) return 'user';
  if (va >= START_KERNEL_MAP) return 'kernel-image';
  if (va >= VMALLOC_START && va <= VMALLOC_END) return 'vmalloc';
  if (va >= PAGE_OFFSET && va < PAGE_OFFSET + (1n << 46n)) return 'direct-map';
  return 'unmapped';
}

/**
 * Linux's __phys_addr() on x86-64, without CONFIG_DEBUG_VIRTUAL: correct only for the direct map
 * and the kernel image. For any other address (vmalloc!) it returns a meaningless number — usually
 * far beyond MAXPHYADDR — exactly as Linux does. See arch/x86/mm/physaddr.c.
 */
export function linuxPhysAddr(va: bigint): bigint {
  const mask = (1n << 64n) - 1n;
  const y = (va - START_KERNEL_MAP) & mask;
  // In the kernel-image range the subtraction does not wrap (x > y).
  if (va > y) return y + BigInt(PHYS_KERNEL_START);
  return (y + (START_KERNEL_MAP - PAGE_OFFSET)) & mask;
}
