// A small 64-bit guest and the guest-state area that starts it. The guest's page tables, GDT, TSS, code and
// stack live in one block of memory we allocate. There is no EPT yet, so guest-physical addresses are
// host-physical addresses: the guest's CR3 and its page tables name real physical memory.
// See SDM Vol. 3C, "Guest-State Area", "Checking and Loading Guest State", and Vol. 3A, "Segment Descriptors".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { assembleOrThrow } from '../../src/guest/assembler.ts';
import { accessRights, decodeDescriptor } from '../00-machine/descriptor.ts';
import { adjustCr0, adjustCr4 } from '../03-capabilities/fixed-bits.ts';
import { vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';

/** The guest a first launch runs: hello on port E9H, CPUID leaf 0 (a VM exit), the vendor string, HLT. */
export const FIRST_GUEST = `
bits 64
default rel
start:
        lea rsi, [hello]
        call print
        xor eax, eax            ; CPUID leaf 0: the vendor string in EBX, EDX, ECX
        xor ecx, ecx
        cpuid                   ; always a VM exit: the hypervisor answers for the CPU
        mov [vendor], ebx
        mov [vendor + 4], edx
        mov [vendor + 8], ecx
        lea rsi, [vendor]
        call print
        hlt                     ; a VM exit with "HLT exiting" = 1
        jmp start
print:  lodsb                   ; print the zero-terminated string at RSI to port E9H
        test al, al
        jz .done
        out 0xe9, al
        jmp print
.done:  ret
hello:  db 'guest: hello from VMX non-root operation', 10, 0
vendor: times 12 db 0
        db 10, 0
`;

// Layout of the guest block (2^GUEST_ORDER pages, physically contiguous, naturally aligned).
export const GUEST_ORDER = 3;
const PAGE = 0x1000;
export const GUEST_LAYOUT = {
  PML4: 0x0000,
  PDPT: 0x1000,
  PD: 0x2000,
  GDT: 0x3000,
  TSS: 0x3800,
  CODE: 0x4000,
  STACK_TOP: 0x8000,
} as const;

/** Guest GDT slots: null, 64-bit code, data, and a 16-byte TSS descriptor. */
export const GUEST_CS = 0x08;
export const GUEST_DS = 0x10;
export const GUEST_TR = 0x18;
const GDT_LIMIT = 5 * 8 - 1;
const TSS_LIMIT = 0x67;

// Descriptor fields. See SDM Vol. 3A, "Segment Descriptors" and "TSS Descriptor in 64-bit mode".
const D_ACCESSED = 1n << 40n, D_RW = 1n << 41n, D_CODE = 1n << 43n, D_S = 1n << 44n, D_P = 1n << 47n;
const D_L = 1n << 53n, D_DB = 1n << 54n, D_G = 1n << 55n, D_LIMIT_FLAT = 0xffffn | (0xfn << 48n);
const D_TYPE_TSS_BUSY = 0xbn << 40n;
// Paging-structure entries. See SDM Vol. 3A, "4-Level Paging and 5-Level Paging".
const PTE_P = 1n, PTE_RW = 2n, PTE_PS = 0x80n;
const TWO_MB = 0x20_0000n;
/** Bytes below STACK_TOP the program may not use: the guest's stack. */
const STACK_RESERVE = 0x400;

export interface GuestImage {
  /** Kernel virtual and physical address of the block (guest-physical = host-physical: no EPT). */
  readonly va: bigint;
  readonly pa: bigint;
  readonly order: number;
  readonly cr3: bigint;
  readonly gdtBase: bigint;
  readonly gdtLimit: number;
  readonly rip: bigint;
  readonly rsp: bigint;
  /** Assembler labels of the program, as guest addresses. */
  readonly labels: ReadonlyMap<string, number>;
}

/**
 * Allocate and fill the guest: identity-mapped page tables (the first GiB with 2-MByte pages), a GDT whose
 * descriptors look as a 64-bit kernel leaves them (accessed, TSS busy after LTR), a TSS, and the program
 * assembled at its physical address. Returns null when out of memory or when the program does not fit below
 * the stack (which keeps 1 KiB).
 */
export function buildGuest(k: Kernel, source: string = FIRST_GUEST): GuestImage | null {
  const page = k.alloc_pages(GUEST_ORDER);
  if (page === null) return null;
  const va = k.page_address(page);
  const pa = k.page_to_phys(page);
  // alloc_pages does not zero: every table entry we do not write must read as not present.
  k.memset(va, 0, PAGE << GUEST_ORDER);

  k.write64(va + BigInt(GUEST_LAYOUT.PML4), (pa + BigInt(GUEST_LAYOUT.PDPT)) | PTE_P | PTE_RW);
  k.write64(va + BigInt(GUEST_LAYOUT.PDPT), (pa + BigInt(GUEST_LAYOUT.PD)) | PTE_P | PTE_RW);
  for (let i = 0n; i < 512n; i++) k.write64(va + BigInt(GUEST_LAYOUT.PD) + 8n * i, (i * TWO_MB) | PTE_P | PTE_RW | PTE_PS);

  const gdt = va + BigInt(GUEST_LAYOUT.GDT);
  const tss = pa + BigInt(GUEST_LAYOUT.TSS);
  k.write64(gdt + BigInt(GUEST_CS), D_LIMIT_FLAT | D_ACCESSED | D_RW | D_CODE | D_S | D_P | D_L | D_G);
  k.write64(gdt + BigInt(GUEST_DS), D_LIMIT_FLAT | D_ACCESSED | D_RW | D_S | D_P | D_DB | D_G);
  k.write64(gdt + BigInt(GUEST_TR), BigInt(TSS_LIMIT) | ((tss & 0xffffffn) << 16n) | D_TYPE_TSS_BUSY | D_P | (((tss >> 24n) & 0xffn) << 56n));
  k.write64(gdt + BigInt(GUEST_TR) + 8n, tss >> 32n);

  const origin = Number(pa) + GUEST_LAYOUT.CODE;
  const program = assembleOrThrow(source, { origin, bits: 64 });
  if (program.bytes.length > GUEST_LAYOUT.STACK_TOP - GUEST_LAYOUT.CODE - STACK_RESERVE) {
    k.__free_pages(page, GUEST_ORDER);
    return null;
  }
  k.writeBytes(va + BigInt(GUEST_LAYOUT.CODE), program.bytes);
  return {
    va, pa, order: GUEST_ORDER,
    cr3: pa + BigInt(GUEST_LAYOUT.PML4),
    gdtBase: pa + BigInt(GUEST_LAYOUT.GDT),
    gdtLimit: GDT_LIMIT,
    rip: BigInt(origin),
    rsp: pa + BigInt(GUEST_LAYOUT.STACK_TOP),
    labels: program.labels,
  };
}

export function freeGuest(k: Kernel, g: GuestImage): void {
  k.free_pages(g.va, g.order);
}

/** A segment register's VMCS view: selector, base, limit and access rights. */
export interface GuestSegment {
  readonly selector: number;
  readonly base: bigint;
  readonly limit: number;
  readonly ar: number;
}

/** Access-rights bit 16: the register is unusable (as after loading a null selector). */
export const AR_UNUSABLE = 1 << 16;

/**
 * What a segment register holds after loading `selector` from the guest's GDT: the descriptor's base, its
 * effective limit (scaled by G) and its access rights. A system descriptor (S = 0: TSS, LDT) is 16 bytes in
 * IA-32e mode and its base has 64 bits. See SDM Vol. 3C, "Guest Register State" (access-rights format).
 */
export function guestSegment(k: Kernel, g: GuestImage, selector: number): GuestSegment {
  const at = k.phys_to_virt(g.gdtBase) + BigInt(selector & ~7);
  const d = decodeDescriptor(k.read64(at));
  const base = d.s ? BigInt(d.base >>> 0) : BigInt(d.base >>> 0) | (BigInt(k.read32(at + 8n) >>> 0) << 32n);
  return { selector, base, limit: d.effectiveLimit >>> 0, ar: accessRights(d) };
}

const CR0_PE = 1n << 0n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n, CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const RFLAGS_FIXED1 = 2n;
const DR7_INIT = 0x400n;
const VMCS_LINK_POINTER_NONE = 0xffffffffffffffffn;
const ACTIVITY_ACTIVE = 0;

type SegName = 'CS' | 'SS' | 'DS' | 'ES' | 'FS' | 'GS' | 'LDTR' | 'TR';

/** Fill the guest-state area so that the next VM entry starts `g` at its first instruction in 64-bit mode. */
export function writeGuestState(k: Kernel, cpu: HostCpu, g: GuestImage): VmxResult<void> {
  const rdmsr = (msr: number): bigint => cpu.rdmsr(msr);
  const code = guestSegment(k, g, GUEST_CS);
  const data = guestSegment(k, g, GUEST_DS);
  const segments: Record<SegName, GuestSegment> = {
    CS: code, SS: data, DS: data, ES: data, FS: data, GS: data,
    // No LDT: an unusable LDTR, as after LLDT with a null selector.
    LDTR: { selector: 0, base: 0n, limit: 0, ar: AR_UNUSABLE },
    // A 64-bit guest needs a usable TR with a busy 64-bit TSS. See SDM Vol. 3C, "Checks on Guest Segment
    // Registers".
    TR: guestSegment(k, g, GUEST_TR),
  };
  const writes: (() => VmxResult<void>)[] = [
    // Paging in IA-32e mode: CR0.PE/PG and CR4.PAE, adjusted to the VMX fixed bits (which add CR0.NE and
    // CR4.VMXE: a guest runs with VMXE set, and later chapters hide it with the CR4 read shadow).
    () => vmwrite(cpu, 'GUEST_CR0', adjustCr0(rdmsr, CR0_PE | CR0_ET | CR0_NE | CR0_PG)),
    () => vmwrite(cpu, 'GUEST_CR3', g.cr3),
    () => vmwrite(cpu, 'GUEST_CR4', adjustCr4(rdmsr, CR4_PAE)),
    () => vmwrite(cpu, 'GUEST_DR7', DR7_INIT),
    () => vmwrite(cpu, 'GUEST_IA32_DEBUGCTL', 0n),
    () => vmwrite(cpu, 'GUEST_SYSENTER_CS', 0),
    () => vmwrite(cpu, 'GUEST_SYSENTER_ESP', 0n),
    () => vmwrite(cpu, 'GUEST_SYSENTER_EIP', 0n),
    ...(Object.keys(segments) as SegName[]).flatMap((s) => segmentWrites(cpu, s, segments[s])),
    () => vmwrite(cpu, 'GUEST_GDTR_BASE', g.gdtBase),
    () => vmwrite(cpu, 'GUEST_GDTR_LIMIT', g.gdtLimit),
    // No IDT: any exception in the guest becomes a triple fault, which is a VM exit (reason 2).
    () => vmwrite(cpu, 'GUEST_IDTR_BASE', 0n),
    () => vmwrite(cpu, 'GUEST_IDTR_LIMIT', 0),
    () => vmwrite(cpu, 'GUEST_RIP', g.rip),
    () => vmwrite(cpu, 'GUEST_RSP', g.rsp),
    // Bit 1 of RFLAGS is reserved and must be 1. See SDM Vol. 3C, "Checks on Guest RIP, RFLAGS, and SSP".
    () => vmwrite(cpu, 'GUEST_RFLAGS', RFLAGS_FIXED1),
    () => vmwrite(cpu, 'GUEST_ACTIVITY_STATE', ACTIVITY_ACTIVE),
    () => vmwrite(cpu, 'GUEST_INTERRUPTIBILITY_INFO', 0),
    () => vmwrite(cpu, 'GUEST_PENDING_DBG_EXCEPTIONS', 0n),
    // No shadow VMCS: the link pointer must be all ones. See SDM Vol. 3C, "Checks Related to VMCS Link Pointer".
    () => vmwrite(cpu, 'VMCS_LINK_POINTER', VMCS_LINK_POINTER_NONE),
  ];
  for (const write of writes) {
    const r = write();
    if (!r.ok) return r;
  }
  return { ok: true, value: undefined };
}

function segmentWrites(cpu: HostCpu, s: SegName, seg: GuestSegment): (() => VmxResult<void>)[] {
  return [
    () => vmwrite(cpu, `GUEST_${s}_SELECTOR`, seg.selector),
    () => vmwrite(cpu, `GUEST_${s}_BASE`, seg.base),
    () => vmwrite(cpu, `GUEST_${s}_LIMIT`, seg.limit),
    () => vmwrite(cpu, `GUEST_${s}_AR_BYTES`, seg.ar),
  ];
}
