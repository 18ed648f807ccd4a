// A 64-bit program on the default model that does what a kernel does: a Linux-style GDT, IA32_EFER.SCE, IA32_STAR,
// IA32_LSTAR and IA32_FMASK, then user → kernel → user with SYSCALL/SYSRETQ, and again with SYSENTER/SYSEXITQ,
// before a last SYSCALL that halts in the kernel. See SDM Vol. 3A, "Fast System Calls in 64-Bit Mode" and
// "Performing Fast Calls to System Procedures with the SYSENTER and SYSEXIT Instructions".
import { describe, expect, it } from 'vitest';
import { assembleOrThrow } from '../../guest/assembler.ts';
import { Machine } from '../machine.ts';
import { DEFAULT_CPU_MODEL } from '../cpu-model.ts';
import { enterLongMode, LONG_MODE_LAYOUT as L } from '../testing/long-mode.ts';

const PROGRAM = `
bits 64
kernel_start:
        lgdt [gdtr]
        mov ecx, 0xc0000080        ; IA32_EFER.SCE = 1
        rdmsr
        or eax, 1
        wrmsr
        mov ecx, 0xc0000081        ; IA32_STAR: SYSCALL CS 08H (SS 10H); SYSRET base 18H (SS 23H, 64-bit CS 2BH)
        xor eax, eax
        mov edx, 0x00180008
        wrmsr
        mov ecx, 0xc0000082        ; IA32_LSTAR
        mov rax, syscall_entry
        mov rdx, rax
        shr rdx, 32
        wrmsr
        mov ecx, 0xc0000084        ; IA32_FMASK: TF DF IF IOPL NT AC, as Linux
        mov eax, 0x47700
        xor edx, edx
        wrmsr
        mov ecx, 0x174             ; IA32_SYSENTER_CS (SS 10H; SYSEXITQ CS 2BH, SS 33H)
        mov eax, 0x08
        wrmsr
        mov ecx, 0x176             ; IA32_SYSENTER_EIP
        mov rax, sysenter_entry
        mov rdx, rax
        shr rdx, 32
        wrmsr
        mov ecx, 0x175             ; IA32_SYSENTER_ESP
        mov eax, 0x70000
        xor edx, edx
        wrmsr
        mov rcx, user_start        ; first entry to user mode
        mov r11d, 0x2
        sysretq

syscall_entry:                      ; CPL 0, user RSP, RCX = user RIP, R11 = user RFLAGS
        cmp eax, 60
        je .exit
        mov [k_rcx], rcx
        mov [k_r11], r11
        pushfq
        pop qword [k_rflags]
        mov [k_cs], cs
        mov [k_ss], ss
        lea rax, [rdi + 1]
        sysretq
.exit:  mov [k_exit_rcx], rcx
        hlt

sysenter_entry:                     ; CPL 0, RSP = IA32_SYSENTER_ESP
        mov [k2_rsp], rsp
        mov [k2_cs], cs
        mov rdx, r12                ; the user's return RIP and RSP, by this program's convention
        mov rcx, r13
        sysexitq

user_start:
        mov rdi, 41
        mov eax, 1
        std
        syscall
after_syscall:
        cld
        mov [u_rax], rax
        mov [u_cs], cs
        mov [u_ss], ss
        mov r12, after_sysenter
        mov r13, rsp
        sysenter
after_sysenter:
        mov [u2_cs], cs
        mov [u2_ss], ss
        mov [u2_rsp], rsp
        mov eax, 60
        syscall
after_exit_syscall:

align 8
gdt:    dq 0
        dq 0x00af9b000000ffff       ; 08H kernel code, 64-bit
        dq 0x00cf93000000ffff       ; 10H kernel data
        dq 0x00cffb000000ffff       ; 18H user code, 32-bit
        dq 0x00cff3000000ffff       ; 20H user data
        dq 0x00affb000000ffff       ; 28H user code, 64-bit
        dq 0x00cff3000000ffff       ; 30H user data (SYSEXITQ's SS)
gdt_end:
gdtr:   dw gdt_end - gdt - 1
        dq gdt
align 8
k_rcx:    dq 0
k_r11:    dq 0
k_rflags: dq 0
k_cs:     dq 0
k_ss:     dq 0
k_exit_rcx: dq 0
k2_rsp:   dq 0
k2_cs:    dq 0
u_rax:    dq 0
u_cs:     dq 0
u_ss:     dq 0
u2_cs:    dq 0
u2_ss:    dq 0
u2_rsp:   dq 0
`;

describe('fast system calls: a user → kernel → user round trip', () => {
  it('SYSCALL/SYSRETQ and SYSENTER/SYSEXITQ move between CPL 3 and CPL 0 with the selectors, RIP and RFLAGS the MSRs give', () => {
    const m = new Machine({ model: DEFAULT_CPU_MODEL });
    const lp = m.cpus[0]!;
    enterLongMode(lp, { userPages: true });
    const { bytes, labels } = assembleOrThrow(PROGRAM, { origin: L.code });
    m.memory.writeBytes(L.code, bytes);
    lp.rip = L.code;
    m.run({ maxInstructions: 1000 });
    const q = (name: string) => m.memory.read(labels.get(name)!, 8);
    expect(lp.lastFault).toBeNull();
    expect(lp.activity).toBe('hlt');
    expect(lp.cpl).toBe(0);
    // RCX: the address after each SYSCALL; R11: the user's RFLAGS at the first one (DF set by STD).
    expect(q('k_rcx')).toBe(BigInt(labels.get('after_syscall')!));
    expect(q('k_exit_rcx')).toBe(BigInt(labels.get('after_exit_syscall')!));
    expect(q('k_r11')).toBe(0x402n);
    expect(q('u_rax')).toBe(42n);
    expect([q('u_cs'), q('u_ss')]).toEqual([0x2bn, 0x23n]);
    expect([q('k_cs'), q('k_ss')]).toEqual([0x08n, 0x10n]);
    expect(q('k2_cs')).toBe(0x08n);
    expect(q('k2_rsp')).toBe(0x70000n);
    expect([q('u2_cs'), q('u2_ss')]).toEqual([0x2bn, 0x33n]);
    expect(q('u2_rsp')).toBe(BigInt(L.stackTop));
    // IA32_FMASK cleared DF (and would have cleared TF IF IOPL NT AC) in the kernel.
    expect(q('k_rflags') & 0x47700n).toBe(0n);
  });
});
