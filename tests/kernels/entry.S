# The entry stub every test kernel shares: the multiboot header, a stack, then kmain(magic, info).
# kmain's return value is written to isa-debug-exit (port F4H), so the run ends with status (value << 1) | 1.
# Assembled with `as --32` (no C preprocessor).
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00000003          # page-align modules, memory info
        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .text
        .globl _start
_start:
        mov $stack_top, %esp
        push %ebx                          # multiboot information structure
        push %eax                          # 2BADB002H
        call kmain
        outb %al, $0xf4                    # isa-debug-exit
1:      cli
        hlt
        jmp 1b

        .bss
        .align 16
        .skip 16384
stack_top:
