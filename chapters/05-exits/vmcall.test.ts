// Exercise 5.6 — a VMCALL ABI: RAX = function, arguments in RBX/RCX, results in RAX/RBX, everything else (RFLAGS
// included) unchanged, RIP past the VMCALL, guest pointers checked, no hypercalls from CPL 3. The part runs on the
// kit's hypervisor (not yours) on every CPU model.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import {
  inGuestMemory, vmcallPart, VMCALL_EFAULT, VMCALL_EINVAL, VMCALL_ENOSYS, VMCALL_EPERM, VMCALL_SIGNATURE,
} from '#impl/05-exits/vmcall';
import { CPU_MODELS, poke, read, runPart } from './support.ts';

const VMCALL = 18;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

describe('inGuestMemory', () => {
  test('a buffer is inside the guest block exactly when all of its bytes are', () => {
    const base = 0x2008000n, order = 3, size = 4096n << 3n;
    const guest = { va: 0n, pa: base, order, cr3: base, gdtBase: 0n, gdtLimit: 0, rip: 0n, rsp: 0n, labels: new Map<string, number>() };
    const near = fc.oneof(fc.bigInt({ min: base - 64n, max: base + size + 64n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
    fc.assert(fc.property(near, fc.oneof(fc.bigInt({ min: 0n, max: 64n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), (pa, len) => {
      const want = pa >= base && pa + len <= base + size;
      expect(inGuestMemory(guest, pa, len), `[${hex(pa)}, ${hex(pa)} + ${len}) in a guest of ${size} bytes at ${hex(base)}: a hypervisor must check every guest pointer (and not overflow doing it)`).toBe(want);
    }));
  });
});

// Each call leaves RAX and RBX in `results`; the first also checks that nothing else changed.
const VMCALL_GUEST = `
bits 64
default rel
start:
        lea rdi, [results]
        ; PING, with every other register and the flags set to known values
        mov rcx, 0x1111111111111111
        mov rdx, 0x2222222222222222
        mov rsi, 0x3333333333333333
        mov rbp, 0x5555555555555555
        mov r8, 0x8888888888888888
        mov r9, 0x9999999999999999
        mov r10, 0xaaaaaaaaaaaaaaaa
        mov r11, 0xbbbbbbbbbbbbbbbb
        mov r12, 0xcccccccccccccccc
        mov r13, 0xdddddddddddddddd
        mov r14, 0xeeeeeeeeeeeeeeee
        mov r15, -1
        add r15, 1                      ; CF, ZF, PF, AF set
        pushfq
        pop qword [flags_before]
        xor eax, eax                    ; (XOR changes the flags: set them again)
        mov r15, -1
        add r15, 1
        mov r15, 0x7777777777777777
        vmcall
        pushfq
        pop qword [flags_after]
        mov [rdi], rax
        mov [rdi + 8], rbx
        mov [saved + 0], rcx
        mov [saved + 8], rdx
        mov [saved + 16], rsi
        mov [saved + 24], rbp
        mov [saved + 32], r8
        mov [saved + 40], r9
        mov [saved + 48], r10
        mov [saved + 56], r11
        mov [saved + 64], r12
        mov [saved + 72], r13
        mov [saved + 80], r14
        mov [saved + 88], r15
        mov [saved + 96], rsp
        lea rdi, [results + 16]
        mov eax, 1                      ; WRITE msg
        lea rbx, [msg]
        mov ecx, msg_end - msg
        call hypercall
        mov eax, 1                      ; WRITE from outside the guest: EFAULT
        mov ebx, 0x1000
        mov ecx, 4
        call hypercall
        mov eax, 1                      ; WRITE that runs past the end of the guest: EFAULT
        lea rbx, [start + 0x4000 - 2]
        mov ecx, 4
        call hypercall
        mov eax, 1                      ; WRITE of more than 4096 bytes: EINVAL
        lea rbx, [msg]
        mov ecx, 4097
        call hypercall
        mov eax, 2                      ; EXIT_COUNT
        call hypercall
        mov eax, 0xdead                 ; no such function: ENOSYS
        call hypercall
        mov rax, 0x100000000            ; the function number is all of RAX: not PING
        call hypercall
        db 0x2e                         ; a prefixed VMCALL (CS override, 4 bytes): RIP moves by the length
        vmcall
        mov [rdi], rax
        hlt
hypercall:
        vmcall
        mov [rdi], rax
        mov [rdi + 8], rbx
        add rdi, 16
        ret
msg:    db 'hello from a hypercall', 10
msg_end:
align 8
flags_before: dq 0
flags_after: dq 0
saved:  times 13 dq 0
results: times 20 dq 0
`;

describe('the VMCALL part, in a guest', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: every function, errors for bad pointers and unknown functions, nothing else changed', (model) => {
    const hc = vmcallPart();
    const run = runPart({ model, part: hc.part, source: VMCALL_GUEST });
    expect(run.outcome.kind, run.why('the guest should reach its HLT: every VMCALL answered with SKIP')).toBe('halted');
    expect(run.exits.filter((e) => e.reason === VMCALL).length, run.why('VMCALL always causes a VM exit in VMX non-root operation: 9 calls')).toBe(9);
    const result = (i: number): [string, string] => [hex(readAt(run, 'results', 16 * i)), hex(readAt(run, 'results', 16 * i + 8))];
    expect(result(0), run.why(`PING: RAX = 0, RBX = ${hex(VMCALL_SIGNATURE)}`)).toEqual(['0x0', hex(VMCALL_SIGNATURE)]);
    expect(hex(run.qword('flags_after')), run.why('RFLAGS after a VMCALL must be what the guest had before it: the hypervisor does not touch GUEST_RFLAGS')).toBe(hex(run.qword('flags_before')));
    const canaries = [0x1111111111111111n, 0x2222222222222222n, 0x3333333333333333n, 0x5555555555555555n, 0x8888888888888888n, 0x9999999999999999n,
      0xaaaaaaaaaaaaaaaan, 0xbbbbbbbbbbbbbbbbn, 0xccccccccccccccccn, 0xddddddddddddddddn, 0xeeeeeeeeeeeeeeeen, 0x7777777777777777n];
    const names = ['RCX', 'RDX', 'RSI', 'RBP', 'R8', 'R9', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15'];
    canaries.forEach((want, i) => {
      expect(hex(readAt(run, 'saved', 8 * i)), run.why(`${names[i]} after VMCALL: only RAX and RBX carry results; every other register must come back unchanged`)).toBe(hex(want));
    });
    expect(hex(readAt(run, 'saved', 96)), run.why('RSP after VMCALL: unchanged')).toBe(hex(run.guest.rsp));
    const msg = 'hello from a hypercall\n';
    expect(result(1)[0], run.why('WRITE returns the number of bytes written')).toBe(hex(BigInt(msg.length)));
    expect(hc.output(), run.why('WRITE: the bytes at the guest-physical address in RBX, RCX of them')).toBe(msg);
    expect(result(2)[0], run.why('WRITE from 1000H, which is not guest memory: EFAULT (-14). A guest pointer is never trusted')).toBe(hex(VMCALL_EFAULT));
    expect(result(3)[0], run.why('WRITE of 4 bytes starting 2 bytes before the end of the guest block: EFAULT')).toBe(hex(VMCALL_EFAULT));
    expect(result(4)[0], run.why('WRITE of 4097 bytes: EINVAL (-22)')).toBe(hex(VMCALL_EINVAL));
    expect(result(5), run.why('EXIT_COUNT: RAX = 0, RBX = the VM exits so far, this one included (6 VMCALLs)')).toEqual(['0x0', '0x6']);
    expect(result(6)[0], run.why('function DEADH does not exist: ENOSYS (-38)')).toBe(hex(VMCALL_ENOSYS));
    expect(result(7)[0], run.why('RAX = 1_00000000H is not PING: the function number is the whole of RAX')).toBe(hex(VMCALL_ENOSYS));
    expect(hex(readAt(run, 'results', 16 * 8)), run.why('a CS-prefixed VMCALL (4 bytes) with RAX = ENOSYS from before: skipping it by VM_EXIT_INSTRUCTION_LEN lands on the next instruction')).toBe(hex(VMCALL_ENOSYS));
  });

  test.each(CPU_MODELS.map((m) => [m.name]))('%s: a VMCALL from CPL 3 is refused with EPERM', (model) => {
    const hc = vmcallPart();
    const source = `
bits 64
default rel
        mov eax, 0                      ; PING, from user mode
        mov rbx, 0x1234
        vmcall
        mov [result], rax
        mov [result + 8], rbx
        cpuid                           ; ends the run (the part has no CPUID handler)
align 8
result: dq 0, 0
`;
    const run = runPart({
      model, part: hc.part, source,
      // Enter the guest at CPL 3: SS.DPL and CS.DPL 3 (RPL 3 selectors), user-accessible pages.
      before: (host, cpu, g) => {
        const k = host.kernel;
        for (const at of [0n, 0x1000n]) k.write64(g.va + at, k.read64(g.va + at) | 4n);
        for (let i = 0n; i < 512n; i++) k.write64(g.va + 0x2000n + 8n * i, k.read64(g.va + 0x2000n + 8n * i) | 4n);
        poke(cpu, 'GUEST_CS_SELECTOR', 0x0b);
        poke(cpu, 'GUEST_CS_AR_BYTES', read(cpu, 'GUEST_CS_AR_BYTES') | (3n << 5n));
        poke(cpu, 'GUEST_SS_SELECTOR', 0x13);
        poke(cpu, 'GUEST_SS_AR_BYTES', read(cpu, 'GUEST_SS_AR_BYTES') | (3n << 5n));
      },
    });
    expect(run.exits[0]?.reason, run.why('the VM entry at CPL 3 should succeed and the VMCALL exit (VMCALL exits at any CPL)')).toBe(VMCALL);
    expect([hex(readAt(run, 'result', 0)), hex(readAt(run, 'result', 8))], run.why('CPL is SS.DPL (bits 6:5 of GUEST_SS_AR_BYTES; SDM Vol. 3C, "Checks on Guest Segment Registers"). From CPL 3: RAX = EPERM (-1), nothing done, RBX unchanged. (The run ends at the CPUID that follows, on purpose.)')).toEqual([hex(VMCALL_EPERM), '0x1234']);
  });
});

function readAt(run: { guest: { va: bigint; pa: bigint; labels: ReadonlyMap<string, number> }; host: { kernel: { read64(va: bigint): bigint } } }, label: string, offset: number): bigint {
  const at = run.guest.labels.get(label);
  if (at === undefined) throw new Error(`test bug: no label ${label}`);
  return run.host.kernel.read64(run.guest.va + BigInt(at) - run.guest.pa + BigInt(offset));
}
