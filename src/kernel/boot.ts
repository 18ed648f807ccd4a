// What firmware and Linux's early boot leave behind on every logical processor, built directly
// into emulated memory and registers: 4-level page tables (direct map, kernel image, vmalloc
// area), a per-CPU GDT with Linux's selector layout, a per-CPU TSS, an IDT, and 64-bit mode.
// A hypervisor's host-state area is copied from exactly this state (chapter 4), so it is real.
import type { LogicalProcessor } from '../machine/lp.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import { AR, SYSTEM_TYPE, encodeDescriptor } from '../x86/segments.ts';
import { KERNEL_IMAGE_BYTES, PAGE_OFFSET, PAGE_SIZE, PHYS_KERNEL_START, START_KERNEL_MAP, VMALLOC_START } from './layout.ts';

/** Linux x86-64 GDT layout (arch/x86/include/asm/segment.h). */
export const GDT_ENTRY_KERNEL32_CS = 1;
export const GDT_ENTRY_KERNEL_CS = 2;
export const GDT_ENTRY_KERNEL_DS = 3;
export const GDT_ENTRY_DEFAULT_USER32_CS = 4;
export const GDT_ENTRY_DEFAULT_USER_DS = 5;
export const GDT_ENTRY_DEFAULT_USER_CS = 6;
export const GDT_ENTRY_TSS = 8;
export const GDT_ENTRIES = 16;
export const __KERNEL_CS = GDT_ENTRY_KERNEL_CS * 8; // 0x10
export const __KERNEL_DS = GDT_ENTRY_KERNEL_DS * 8; // 0x18
export const GDT_ENTRY_TSS_SELECTOR = GDT_ENTRY_TSS * 8; // 0x40
export const TSS_LIMIT = 0x67;

// Page-table entry bits. See SDM Vol. 3A, "4-Level Paging and 5-Level Paging".
const P = 1n, RW = 2n, PS = 0x80n, G = 0x100n, NX = 1n << 63n;

/** Where boot structures live inside the kernel image (offsets from PHYS_KERNEL_START). */
export const IMAGE = {
  /** Kernel text: host entry points are handed out from here. */
  TEXT: 0x0,
  TEXT_BYTES: 0x10_0000,
  PML4: 0x10_0000,
  PDPT_DIRECT: 0x10_1000,
  PDPT_KERNEL: 0x10_2000,
  PD_KERNEL: 0x10_3000,
  PDPT_VMALLOC: 0x10_4000,
  /** Page directories for the direct map: one per GiB of RAM. */
  PD_DIRECT: 0x10_8000,
  IDT: 0x20_0000,
  /** Per-CPU area: GDT, TSS, a scratch page for instruction operands, the kernel stack. */
  PERCPU: 0x30_0000,
  PERCPU_STRIDE: 0x1_0000,
  PERCPU_GDT: 0x0,
  PERCPU_TSS: 0x1000,
  PERCPU_SCRATCH: 0x2000,
  PERCPU_STACK: 0x4000,
  PERCPU_STACK_TOP: 0x1_0000,
  /** Page tables for the vmalloc area, handed out as vmalloc needs them. */
  VMALLOC_TABLES: 0x80_0000,
} as const;

export const MAX_CPUS = 64;

/** Kernel-image virtual address of an image offset. */
export function imageVa(offset: number): bigint {
  return START_KERNEL_MAP + BigInt(offset);
}
export function imagePa(offset: number): number {
  return PHYS_KERNEL_START + offset;
}
export function perCpuOffset(cpu: number, field: number): number {
  return IMAGE.PERCPU + cpu * IMAGE.PERCPU_STRIDE + field;
}

/** Build the page tables once; returns CR3. */
export function buildPageTables(memory: PhysicalMemory, ramBytes: number): number {
  const pml4 = imagePa(IMAGE.PML4);
  memory.writeBytes(pml4, new Uint8Array(PAGE_SIZE * 8));
  const entry = (pa: number, flags: bigint) => BigInt(pa) | flags;
  // Direct map: all RAM at PAGE_OFFSET with 2-MByte pages, not executable.
  const gib = Math.ceil(ramBytes / 2 ** 30);
  memory.write64(pml4 + 8 * pml4Index(PAGE_OFFSET), entry(imagePa(IMAGE.PDPT_DIRECT), P | RW));
  for (let g = 0; g < gib; g++) {
    const pd = imagePa(IMAGE.PD_DIRECT) + g * PAGE_SIZE;
    memory.writeBytes(pd, new Uint8Array(PAGE_SIZE));
    memory.write64(imagePa(IMAGE.PDPT_DIRECT) + 8 * g, entry(pd, P | RW));
    for (let i = 0; i < 512; i++) {
      const pa = g * 2 ** 30 + i * 2 ** 21;
      if (pa >= ramBytes) break;
      memory.write64(pd + 8 * i, entry(pa, P | RW | PS | G | NX));
    }
  }
  // Kernel image at START_KERNEL_MAP (PML4 511, PDPT 510), 2-MByte pages.
  memory.write64(pml4 + 8 * pml4Index(START_KERNEL_MAP), entry(imagePa(IMAGE.PDPT_KERNEL), P | RW));
  memory.write64(imagePa(IMAGE.PDPT_KERNEL) + 8 * 510, entry(imagePa(IMAGE.PD_KERNEL), P | RW));
  for (let i = 0; i < KERNEL_IMAGE_BYTES / 2 ** 21; i++) {
    memory.write64(imagePa(IMAGE.PD_KERNEL) + 8 * i, entry(PHYS_KERNEL_START + i * 2 ** 21, P | RW | PS | G));
  }
  // vmalloc area: an empty PDPT; vmalloc() fills in directories and tables.
  memory.write64(pml4 + 8 * pml4Index(VMALLOC_START), entry(imagePa(IMAGE.PDPT_VMALLOC), P | RW));
  return pml4;
}

function pml4Index(va: bigint): number {
  return Number((va >> 39n) & 511n);
}

/** A descriptor as one 64-bit value; `limit` is in bytes (scaled down when G = 1). See SDM Vol. 3A, "Segment Descriptors". */
function descriptor(base: number, limit: number, ar: number): bigint {
  const [lo, hi] = encodeDescriptor(base, limit, ar);
  return BigInt(lo) | (BigInt(hi) << 32n);
}

const KERNEL_CS_AR = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G; // a09bH
const KERNEL_DS_AR = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G; // c093H
const TSS_AR = AR.P | SYSTEM_TYPE.TSS_BUSY;

/** Put one LP into the state Linux runs in: 64-bit mode, CPL 0, its own GDT and TSS. */
export function bootCpu(lp: LogicalProcessor, memory: PhysicalMemory, cr3: number): void {
  const cpu = lp.id;
  const gdt = imagePa(perCpuOffset(cpu, IMAGE.PERCPU_GDT));
  const tss = perCpuOffset(cpu, IMAGE.PERCPU_TSS);
  memory.writeBytes(gdt, new Uint8Array(GDT_ENTRIES * 8));
  memory.write64(gdt + 8 * GDT_ENTRY_KERNEL32_CS, descriptor(0, 0xffffffff, AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G));
  memory.write64(gdt + 8 * GDT_ENTRY_KERNEL_CS, descriptor(0, 0xffffffff, KERNEL_CS_AR));
  memory.write64(gdt + 8 * GDT_ENTRY_KERNEL_DS, descriptor(0, 0xffffffff, KERNEL_DS_AR));
  memory.write64(gdt + 8 * GDT_ENTRY_DEFAULT_USER32_CS, descriptor(0, 0xffffffff, (AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G) | (3 << AR.DPL_SHIFT)));
  memory.write64(gdt + 8 * GDT_ENTRY_DEFAULT_USER_DS, descriptor(0, 0xffffffff, KERNEL_DS_AR | (3 << AR.DPL_SHIFT)));
  memory.write64(gdt + 8 * GDT_ENTRY_DEFAULT_USER_CS, descriptor(0, 0xffffffff, KERNEL_CS_AR | (3 << AR.DPL_SHIFT)));
  // A 64-bit TSS descriptor takes two slots: the upper 8 bytes hold base 63:32.
  // See SDM Vol. 3A, "TSS Descriptor in 64-bit mode".
  const tssVa = imageVa(tss);
  memory.write64(gdt + 8 * GDT_ENTRY_TSS, descriptor(Number(tssVa & 0xffffffffn), TSS_LIMIT, TSS_AR));
  memory.write64(gdt + 8 * (GDT_ENTRY_TSS + 1), tssVa >> 32n);
  memory.writeBytes(imagePa(tss), new Uint8Array(TSS_LIMIT + 1));
  // TSS.RSP0 and IST1: the per-CPU kernel stack. See SDM Vol. 3A, "Task Management in 64-bit Mode".
  memory.write64(imagePa(tss) + 4, imageVa(perCpuOffset(cpu, IMAGE.PERCPU_STACK_TOP)));
  memory.write64(imagePa(tss) + 0x24, imageVa(perCpuOffset(cpu, IMAGE.PERCPU_STACK_TOP)));

  lp.lgdt(imageVa(perCpuOffset(cpu, IMAGE.PERCPU_GDT)), GDT_ENTRIES * 8 - 1);
  lp.lidt(imageVa(IMAGE.IDT), 256 * 16 - 1);
  // Enter long mode the way the hardware allows it: PAE, then EFER.LME, then CR0.PG.
  // See SDM Vol. 3A, "Initializing IA-32e Mode".
  lp.writeCr4(0x6a0n); // PAE | PGE | OSFXSR | OSXMMEXCPT
  lp.writeCr3(BigInt(cr3));
  lp.writeEfer(0xd01n); // SCE | LME | NXE (LMA follows CR0.PG)
  lp.setSegment('cs', { selector: __KERNEL_CS, base: 0n, limit: 0xffffffff, ar: KERNEL_CS_AR });
  lp.writeCr0(0x80050033n); // PE MP ET NE WP AM PG
  for (const s of ['ss', 'ds', 'es'] as const) lp.setSegment(s, { selector: s === 'ss' ? __KERNEL_DS : 0, base: 0n, limit: 0xffffffff, ar: s === 'ss' ? KERNEL_DS_AR : AR.UNUSABLE });
  lp.setSegment('fs', { selector: 0, base: 0n, limit: 0xffffffff, ar: AR.UNUSABLE });
  // Linux keeps the per-CPU area address in GS.base.
  lp.setSegment('gs', { selector: 0, base: imageVa(perCpuOffset(cpu, 0)), limit: 0xffffffff, ar: AR.UNUSABLE });
  lp.setSegment('ldtr', { selector: 0, base: 0n, limit: 0, ar: AR.UNUSABLE });
  lp.setSegment('tr', { selector: GDT_ENTRY_TSS_SELECTOR, base: tssVa, limit: TSS_LIMIT, ar: TSS_AR });
  lp.setReg('rsp', imageVa(perCpuOffset(cpu, IMAGE.PERCPU_STACK_TOP)));
  lp.setReg('rflags', 0x2n);
  lp.activity = 'active';
}

/** Fill the IDT with interrupt gates that all point at one kernel-text address. */
export function buildIdt(memory: PhysicalMemory, handler: bigint): void {
  const idt = imagePa(IMAGE.IDT);
  for (let v = 0; v < 256; v++) {
    // 64-bit interrupt gate: offset 15:0, selector, IST, type 0xE, P; offset 31:16; offset 63:32.
    // See SDM Vol. 3A, "64-Bit Mode IDT".
    const low = (handler & 0xffffn) | (BigInt(__KERNEL_CS) << 16n) | (0x8en << 40n) | (((handler >> 16n) & 0xffffn) << 48n);
    memory.write64(idt + 16 * v, low);
    memory.write64(idt + 16 * v + 8, (handler >> 32n) & 0xffffffffn);
  }
}
