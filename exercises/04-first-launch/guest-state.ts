// Exercise 4.2 — a small 64-bit guest and the guest-state area that starts it. The guest's page tables, GDT, TSS, code and
// stack live in one block of memory we allocate. There is no EPT yet, so guest-physical addresses are
// host-physical addresses: the guest's CR3 and its page tables name real physical memory.
// Read chapters/04-first-launch/README.md, section "The guest-state area".
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
 * Allocate 2^GUEST_ORDER physically contiguous pages (alloc_pages: not zeroed!) and fill them per GUEST_LAYOUT:
 *  - PML4[0] → PDPT, PDPT[0] → PD, PD[i] = a 2-MByte page at i × 2 MBytes (identity map of the first GiB);
 *  - a GDT: null, GUEST_CS a 64-bit code segment, GUEST_DS a flat data segment, GUEST_TR a 16-byte busy 64-bit
 *    TSS descriptor (limit 67H) for the TSS at GUEST_LAYOUT.TSS — code/data descriptors with the accessed bit set,
 *    as they are once loaded;
 *  - the program assembled with assembleOrThrow(source, { origin: its physical address, bits: 64 }).
 * Addresses in the image (cr3, gdtBase, rip, rsp) are guest-physical = physical. Return null when out of memory
 * or when the program does not fit between GUEST_LAYOUT.CODE and the stack (leave the stack 1 KiB), after
 * freeing what you took.
 */
export function buildGuest(k: Kernel, source: string = FIRST_GUEST): GuestImage | null {
  // TODO
  throw new Error('TODO: buildGuest');
}

export function freeGuest(k: Kernel, g: GuestImage): void {
  // TODO
  throw new Error('TODO: freeGuest');
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
 * What a segment register holds after loading `selector` from the guest's GDT (at g.gdtBase): the descriptor's
 * base, its effective limit (scaled by G) and its access rights — chapter 0's decodeDescriptor and accessRights.
 * A system descriptor (S = 0: TSS, LDT) is 16 bytes in IA-32e mode; bits 63:32 of its base are in bytes 8–11.
 */
export function guestSegment(k: Kernel, g: GuestImage, selector: number): GuestSegment {
  // TODO
  throw new Error('TODO: guestSegment');
}

/**
 * Fill the guest-state area so that the next VM entry starts `g` at its first instruction in 64-bit mode:
 * CR0 (PE, PG, NE …) and CR4 (PAE …) through chapter 3's adjustCr0/adjustCr4, CR3, DR7 = 400H, DEBUGCTL and the
 * SYSENTER fields 0; CS/SS/DS/ES/FS/GS/TR from guestSegment, LDTR unusable; GDTR from the image, IDTR 0/0; RIP,
 * RSP; RFLAGS with its reserved bit 1 set; activity state active (0), interruptibility and pending debug
 * exceptions 0; VMCS link pointer all ones. Return the first VMWRITE that failed.
 */
export function writeGuestState(k: Kernel, cpu: HostCpu, g: GuestImage): VmxResult<void> {
  // TODO
  throw new Error('TODO: writeGuestState');
}
