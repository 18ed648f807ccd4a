# The entry of a 64-bit multiboot kernel: the loader starts it in 32-bit protected mode, so this stub builds
# identity-mapped page tables for the first 1 GiB (2-MByte pages), enables PAE, sets EFER.LME, turns paging on and
# far-jumps into a 64-bit code segment, then calls kmain(magic, info) and writes its result to isa-debug-exit.
# See SDM Vol. 3A, "Initializing IA-32e Mode". Assembled with `as --64` (the 32-bit part under .code32) and linked
# as ELF64: the loader reads ELF64 program headers.
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003
        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .text
        .code32
        .globl _start
_start:
        mov $stack_top, %esp
        mov %eax, %edi                     # kmain's arguments, in the SysV registers
        mov %ebx, %esi
        # PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] -> 2 MiB page i (present, writable, PS).
        mov $pdpt, %eax
        or $3, %eax
        mov %eax, pml4
        mov $pd, %eax
        or $3, %eax
        mov %eax, pdpt
        xor %ecx, %ecx
1:      mov %ecx, %eax
        shl $21, %eax
        or $0x83, %eax
        mov %eax, pd(,%ecx,8)
        inc %ecx
        cmp $512, %ecx
        jne 1b
        mov $pml4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax                     # CR4.PAE
        mov %eax, %cr4
        mov $0xc0000080, %ecx              # IA32_EFER
        rdmsr
        or $0x100, %eax                    # LME
        wrmsr
        mov %cr0, %eax
        or $0x80000001, %eax               # PG | PE
        mov %eax, %cr0
        lgdt gdt64_ptr
        ljmp $0x08, $long_mode

        .code64
long_mode:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $stack_top, %rsp
        call kmain
        outb %al, $0xf4
2:      cli
        hlt
        jmp 2b

        .data
        .align 8
gdt64:  .quad 0
        .quad 0x00af9a000000ffff           # 08H: 64-bit code (L = 1)
        .quad 0x00cf92000000ffff           # 10H: data
gdt64_end:
gdt64_ptr:
        .word gdt64_end - gdt64 - 1
        .long gdt64

        .bss
        .align 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
        .skip 16384
stack_top:
