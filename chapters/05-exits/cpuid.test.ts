// Exercise 5.2 — CPUID emulation: VMX hidden (CPUID.1:ECX[5] = 0), a hypervisor announced (CPUID.1:ECX[31] = 1,
// leaf 40000000H with a signature), everything else as the host CPU answers. The part runs on the kit's hypervisor
// (not yours), so this grades the part alone. Expectations are computed here from the host's own CPUID and the
// rules in the notes, never from the reference solution.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { cpuidPart, HYPERVISOR_SIGNATURE, virtualCpuid, type CpuidRegs } from '#impl/05-exits/cpuid';
import { CPU_MODELS, runPart } from './support.ts';

const VMX = 1 << 5;
const HYPERVISOR_BIT = 2 ** 31;
const EXIT_REASON_CPUID = 10;

/** What the guest's CPUID must return, from the host's answer and the rules of the exercise. */
function expected(host: (l: number, s: number) => CpuidRegs, leaf: number, subleaf: number): CpuidRegs {
  if (leaf === 0x40000000) {
    const word = (at: number): number => [0, 1, 2, 3].reduce((w, i) => w | (HYPERVISOR_SIGNATURE.charCodeAt(at + i) << (8 * i)), 0) >>> 0;
    return { eax: 0x40000000, ebx: word(0), ecx: word(4), edx: word(8) };
  }
  if (leaf > 0x40000000 && leaf <= 0x4fffffff) return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  const r = host(leaf, subleaf);
  const u = { eax: r.eax >>> 0, ebx: r.ebx >>> 0, ecx: r.ecx >>> 0, edx: r.edx >>> 0 };
  return leaf === 1 ? { ...u, ecx: ((u.ecx & ~VMX) | HYPERVISOR_BIT) >>> 0 } : u;
}

const hex = (r: CpuidRegs): string[] => [r.eax, r.ebx, r.ecx, r.edx].map((v) => `0x${(v >>> 0).toString(16)}`);

describe('virtualCpuid', () => {
  test('the signature is 12 printable ASCII characters (EBX, ECX, EDX spell it)', () => {
    expect(HYPERVISOR_SIGNATURE, `HYPERVISOR_SIGNATURE is ${JSON.stringify(HYPERVISOR_SIGNATURE)}: CPUID 40000000H returns it in EBX, ECX, EDX, 4 ASCII bytes each, so it must be exactly 12 printable characters`).toMatch(/^[\x20-\x7e]{12}$/);
  });

  test('any host, any leaf: VMX hidden in leaf 1, hypervisor bit set, 40000000H answered, the rest passed through', () => {
    const leaves = fc.oneof(
      fc.constantFrom(0, 1, 7, 0xb, 0x40000000, 0x40000001, 0x4fffffff, 0x50000000, 0x80000000, 0x80000001),
      fc.integer({ min: 0, max: 0xffffffff }),
    );
    fc.assert(fc.property(leaves, fc.integer({ min: 0, max: 0xffffffff }), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), (leaf, subleaf, words) => {
      // A made-up host CPU whose answer depends on the leaf and subleaf.
      const host = (l: number, s: number): CpuidRegs => ({
        eax: (words[0]! ^ l) >>> 0, ebx: (words[1]! ^ s) >>> 0, ecx: (words[2]! ^ l ^ s) >>> 0, edx: words[3]! >>> 0,
      });
      const got = virtualCpuid(host, leaf, subleaf);
      const want = expected(host, leaf, subleaf);
      expect(hex(got), `CPUID leaf 0x${leaf.toString(16)} subleaf 0x${subleaf.toString(16)}: expected [EAX, EBX, ECX, EDX] = ${hex(want)}. ` +
        'Leaf 1: the host\'s answer with ECX[5] (VMX) clear and ECX[31] (hypervisor present) set. Leaf 40000000H: EAX = 40000000H and the signature. ' +
        '40000001H–4FFFFFFFH: zeros. Anything else: the host\'s answer for the same leaf and subleaf, unchanged.').toEqual(hex(want));
    }));
  });
});

// The guest runs CPUID for each (leaf, subleaf) with garbage in bits 63:32 of RAX, RBX, RCX and RDX, and stores
// all four 64-bit registers after each one.
const QUERIES: readonly [number, number][] = [
  [0, 0], [1, 0], [4, 1], [7, 0], [0xb, 1], [0xd, 1], [0x40000000, 0], [0x40000001, 0], [0x4fffffff, 0],
  [0x80000000, 0], [0x80000001, 0], [0x80000002, 0],
];
const TABLE_GUEST = `
bits 64
default rel
        lea rsi, [queries]
        lea rdi, [results]
        mov r12d, ${QUERIES.length}
        mov r8, 0xdeadbeef00000000
.next:  mov eax, [rsi]
        or rax, r8                      ; bits 63:32 of RAX are not part of the leaf
        mov ecx, [rsi + 4]
        or rcx, r8                      ; nor those of RCX part of the subleaf
        mov rbx, r8
        mov rdx, r8
        cpuid
        mov [rdi], rax
        mov [rdi + 8], rbx
        mov [rdi + 16], rcx
        mov [rdi + 24], rdx
        add rsi, 8
        add rdi, 32
        dec r12d
        jnz .next
        hlt
align 8
queries: ${QUERIES.map(([l, s]) => `dd 0x${l.toString(16)}, 0x${s.toString(16)}`).join('\n        ')}
align 8
results: times ${QUERIES.length * 4} dq 0
`;

describe('the CPUID part, in a guest', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: every CPUID exits, and the guest sees the virtual CPU', (model) => {
    const run = runPart({ model, part: cpuidPart(), source: TABLE_GUEST });
    expect(run.outcome.kind, run.why('the guest should run its CPUID table and reach HLT')).toBe('halted');
    const cpuids = run.exits.filter((e) => e.reason === EXIT_REASON_CPUID).length;
    expect(cpuids, run.why(`CPUID always causes a VM exit in VMX non-root operation (SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally"): ${QUERIES.length} expected`)).toBe(QUERIES.length);
    const cpu = run.host.kernel.cpu();
    const host = (l: number, s: number): CpuidRegs => cpu.cpuid(l, s);
    const base = run.guest.labels.get('results')!;
    QUERIES.forEach(([leaf, subleaf], i) => {
      const at = run.guest.va + BigInt(base - Number(run.guest.pa) + 32 * i);
      const got = [0, 8, 16, 24].map((o) => run.host.kernel.read64(at + BigInt(o)));
      const want = expected(host, leaf, subleaf);
      expect(got.map((v) => `0x${v.toString(16)}`), run.why(
        `CPUID leaf 0x${leaf.toString(16)} subleaf ${subleaf} in the guest: RAX, RBX, RCX, RDX expected ${hex(want)}, ` +
        'with bits 63:32 clear (CPUID writes 32-bit results, and a 32-bit write clears bits 63:32 in 64-bit mode). The leaf is EAX and the subleaf ECX only.',
      )).toEqual(hex(want));
    });
  });

  test('RIP advances by the VM-exit instruction length: a prefixed CPUID is 3 bytes, and the guest goes on after it', () => {
    const guest = `
bits 64
        xor eax, eax
        db 0x2e, 0x0f, 0xa2             ; CS-prefixed CPUID: 3 bytes
        mov al, 'k'
        out 0xe9, al
        hlt`;
    const run = runPart({ part: cpuidPart(), source: guest });
    expect(run.outcome.kind, run.why('return SKIP and let the dispatcher add VM_EXIT_INSTRUCTION_LEN; do not move GUEST_RIP yourself as well, and never by a fixed 2')).toBe('halted');
    expect(run.host.console.text(), run.why()).toBe('k');
  });

  test('a guest kernel checking for VMX finds none, and finds the hypervisor instead', () => {
    const guest = `
bits 64
default rel
        mov eax, 1
        cpuid
        bt ecx, 5                       ; CPUID.1:ECX[5]: VMX
        mov al, 'v'
        jnc .novmx
        mov al, 'V'
.novmx: out 0xe9, al
        bt ecx, 31                      ; CPUID.1:ECX[31]: hypervisor present
        jnc .done
        mov eax, 0x40000000
        cpuid
        mov [sig], ebx
        mov [sig + 4], ecx
        mov [sig + 8], edx
        lea rsi, [sig]
        mov ecx, 12
.out:   lodsb
        out 0xe9, al
        loop .out
.done:  hlt
sig:    times 12 db 0`;
    const run = runPart({ part: cpuidPart(), source: guest });
    expect(run.host.console.text(), run.why('the guest prints v (no VMX) or V (VMX), then the signature if CPUID.1:ECX[31] is set')).toBe(`v${HYPERVISOR_SIGNATURE}`);
  });
});
