# The application processors' first instructions: a start-up IPI with vector 08H starts each AP in real mode at
# CS:IP = 0800H:0000H (physical 8000H). smp.c copies this code there. It loads the kernel's GDT, sets CR0.PE and
# far-jumps to ap_start32 in the kernel image, in 32-bit protected mode (paging off).
# See SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems" and "Switching to Protected Mode".
        .text
        .code16
        .globl ap_trampoline, ap_trampoline_end
ap_trampoline:
        cli
        mov %cs, %ax
        mov %ax, %ds                       # the GDT pointer below is addressed relative to the trampoline
        lgdtl ap_gdt_ptr - ap_trampoline
        mov %cr0, %eax
        or $1, %eax                        # CR0.PE
        mov %eax, %cr0
        ljmpl $0x08, $ap_start32           # reloads CS from the GDT: 32-bit code from here on
        .align 4
ap_gdt_ptr:
        .word gdt_end - gdt - 1
        .long gdt
ap_trampoline_end:

        .code32
ap_start32:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $1, %eax
        lock xadd %eax, ap_next            # this AP's index: 1, 2, ...
        mov %eax, %ecx
        shl $12, %ecx
        lea ap_stacks(%ecx), %esp          # the top of the (index - 1)th 4-KiB stack
        push %eax
        call ap_main
1:      cli
        hlt
        jmp 1b

        .data
        .align 8
        .globl gdt
gdt:    .quad 0
        .quad 0x00cf9a000000ffff           # 08H: flat 32-bit code
        .quad 0x00cf92000000ffff           # 10H: flat data
gdt_end:
ap_next: .long 1                   # the BSP is CPU 0

        .bss
        .align 4096
ap_stacks:
        .skip 4096 * 32
