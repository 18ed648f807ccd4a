// A real-mode → protected-mode → long-mode trampoline: the code an application processor runs
// after INIT-SIPI-SIPI (it starts in real mode at CS:IP = VV00:0000 for SIPI vector VV), and what a
// BIOS-less guest uses to reach 64-bit mode.
//
// The steps follow SDM Vol. 3A, "Switching to Protected Mode" and "Initializing IA-32e Mode":
//   1. real mode: load a GDT, set CR0.PE, far-jump to a 32-bit code segment;
//   2. protected mode: load data segments, set CR4.PAE, load CR3 with a PML4 table,
//      set IA32_EFER.LME, set CR0.PG (this activates IA-32e mode: EFER.LMA = 1);
//   3. far-jump to a 64-bit code segment (CS.L = 1), load RSP, run `body` (or jump to `entry`).
//
// The page tables are part of the image: the first 1 GiB identity-mapped with 2-MByte pages.
import { assembleOrThrow } from '../assembler.ts';
import { hexLower } from '../../util/hex.ts';

export interface TrampolineOptions {
  /** Physical address of the image: 4-KByte aligned and below 1 MiB (the SIPI vector is base >> 12). */
  base: number;
  /** RSP in 64-bit mode. */
  stack: number;
  /** 64-bit code to run once in long mode (assembly text). Ignored when `entry` is given. */
  body?: string;
  /** Address to jump to in long mode instead of `body`. */
  entry?: number;
}

/** GDT selectors of the trampoline. */
export const TRAMPOLINE_SELECTORS = { CODE32: 0x08, DATA: 0x10, CODE64: 0x18 } as const;

export function longModeTrampolineSource(opts: TrampolineOptions): string {
  if (opts.base % 4096 !== 0 || opts.base < 0 || opts.base >= 0x100000) {
    throw new Error(`trampoline base ${hexLower(opts.base)} must be 4-KByte aligned and below 1 MiB`);
  }
  const { CODE32, DATA, CODE64 } = TRAMPOLINE_SELECTORS;
  const tail = opts.entry !== undefined ? `mov rax, 0x${opts.entry.toString(16)}\n        jmp rax` : (opts.body ?? 'hlt');
  return `
        bits 16
        org 0x${opts.base.toString(16)}
BASE    equ 0x${opts.base.toString(16)}
CR0_PE  equ 1 << 0
CR0_PG  equ 1 << 31
CR4_PAE equ 1 << 5
MSR_EFER equ 0xc0000080
EFER_LME equ 1 << 8
PTE_P   equ 1 << 0
PTE_RW  equ 1 << 1
PTE_PS  equ 1 << 7

real16: cli
        mov ax, cs              ; CS base = BASE, so labels are reached as label - BASE
        mov ds, ax
        lgdt [gdtr - BASE]
        mov eax, cr0
        or eax, CR0_PE
        mov cr0, eax
        jmp dword ${CODE32}:prot32  ; reload CS from the GDT: 32-bit protected mode

        bits 32
prot32: mov ax, ${DATA}
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, cr4
        or eax, CR4_PAE
        mov cr4, eax
        mov eax, pml4
        mov cr3, eax
        mov ecx, MSR_EFER
        rdmsr
        or eax, EFER_LME
        wrmsr
        mov eax, cr0
        or eax, CR0_PG           ; with EFER.LME = 1 this activates IA-32e mode
        mov cr0, eax
        jmp ${CODE64}:long64      ; CS.L = 1: 64-bit mode

        bits 64
long64: mov ax, ${DATA}
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov rsp, 0x${opts.stack.toString(16)}
        ${tail}

        align 8, db 0
gdt:    dq 0
        dq 0x00cf9a000000ffff   ; 08H: code, base 0, limit 4 GiB, D = 1 (32-bit)
        dq 0x00cf92000000ffff   ; 10H: data, base 0, limit 4 GiB, writable
        dq 0x00af9a000000ffff   ; 18H: code, L = 1 (64-bit)
gdt_end:
gdtr:   dw gdt_end - gdt - 1
        dd gdt

        align 4096, db 0
pml4:   dq pdpt + PTE_P + PTE_RW
        times 511 dq 0
pdpt:   dq pd + PTE_P + PTE_RW
        times 511 dq 0
pd:     times 512 dq (($ - pd) / 8) << 21 | PTE_P | PTE_RW | PTE_PS   ; 2-MByte pages, identity
`;
}

export interface Trampoline {
  bytes: Uint8Array;
  labels: Map<string, number>;
  /** The SIPI vector that starts an AP at `base`. */
  sipiVector: number;
  /** Physical address of the PML4 table (the CR3 the trampoline loads). */
  pml4: number;
}

export function buildLongModeTrampoline(opts: TrampolineOptions): Trampoline {
  const { bytes, labels } = assembleOrThrow(longModeTrampolineSource(opts), { fileName: 'long-mode-trampoline.asm' });
  return { bytes, labels, sipiVector: opts.base >> 12, pml4: labels.get('pml4')! };
}
