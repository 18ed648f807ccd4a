// The block compiler must be invisible: random programs give the same registers, flags, memory and
// instruction counts with the JIT, with only the block cache, and decoding every instruction.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assembleOrThrow } from '../guest/assembler.ts';
import { Machine } from './machine.ts';
import { Executor } from './cpu.ts';
import { enterLongMode, writeIdtGate, LONG_MODE_LAYOUT as L } from './testing/long-mode.ts';
import { GPR64 } from '../x86/registers.ts';
import { jitStats } from './jit.ts';

const R64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11'] as const;
const R32 = ['eax', 'ecx', 'edx', 'ebx', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d'] as const;
const DATA = 0x9000;

/** One random instruction the JIT supports (plus a few it does not, so mixed blocks are covered). */
const insnArb = fc.oneof(
  fc.record({ op: fc.constantFrom('add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor', 'cmp', 'test', 'mov'), w: fc.boolean(), a: fc.nat(9), b: fc.nat(9) })
    .map(({ op, w, a, b }) => `${op} ${(w ? R64 : R32)[a]}, ${(w ? R64 : R32)[b]}`),
  fc.record({ op: fc.constantFrom('add', 'sub', 'and', 'or', 'xor', 'cmp', 'adc', 'sbb'), w: fc.boolean(), a: fc.nat(9), imm: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) })
    .map(({ op, w, a, imm }) => `${op} ${(w ? R64 : R32)[a]}, ${imm}`),
  fc.record({ op: fc.constantFrom('inc', 'dec'), w: fc.boolean(), a: fc.nat(9) }).map(({ op, w, a }) => `${op} ${(w ? R64 : R32)[a]}`),
  fc.record({ w: fc.boolean(), a: fc.nat(9), slot: fc.nat(15), store: fc.boolean() })
    .map(({ w, a, slot, store }) => store ? `mov [${DATA + slot * 8}], ${(w ? R64 : R32)[a]}` : `mov ${(w ? R64 : R32)[a]}, [${DATA + slot * 8}]`),
  fc.record({ op: fc.constantFrom('add', 'xor', 'sub', 'cmp'), a: fc.nat(9), slot: fc.nat(15), toMem: fc.boolean() })
    .map(({ op, a, slot, toMem }) => toMem ? `${op} qword [${DATA + slot * 8}], ${R64[a]}` : `${op} ${R64[a]}, [${DATA + slot * 8}]`),
  fc.record({ a: fc.nat(9), b: fc.nat(9), d: fc.integer({ min: -100, max: 100 }) }).map(({ a, b, d }) => `lea ${R64[a]}, [${R64[b]} + ${R64[a]}*4 + ${d}]`),
  fc.record({ a: fc.nat(9), v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }).map(({ a, v }) => `mov ${R64[a]}, ${v}`),
  fc.nat(9).map((a) => `push ${R64[a]}`),
  fc.nat(9).map((a) => `pop ${R64[a]}`),
  fc.constantFrom('nop', 'stc', 'clc', 'cmc', 'call helper'),
  fc.record({ a: fc.nat(9), b: fc.nat(9), sx: fc.boolean(), word: fc.boolean() })
    .map(({ a, b, sx, word }) => `${sx ? 'movsx' : 'movzx'} ${!word && b >= 4 && b < 8 ? R32[a % 6] : R64[a]}, ${word ? ['ax', 'cx', 'dx', 'bx', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w'][b] : ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh', 'sil', 'dil'][b]}`),
  fc.record({ a: fc.nat(3), b: fc.nat(7), slot: fc.nat(15), st: fc.boolean() })
    .map(({ a, b, slot, st }) => st ? `mov byte [${DATA + slot * 8 + (b & 7)}], ${['al', 'cl', 'ah', 'bh'][a]}` : `mov ${['al', 'cl', 'ah', 'bh'][a]}, [${DATA + slot * 8 + (b & 7)}]`),
  fc.record({ a: fc.nat(3), b: fc.nat(3) }).map(({ a, b }) => `mov ${['al', 'cl', 'ah', 'bh'][a]}, ${['dl', 'bl', 'ch', 'dh'][b]}`),
  fc.record({ a: fc.nat(9), cc: fc.constantFrom('c', 'z', 's', 'o', 'p', 'be', 'l', 'le') }).map(({ a, cc }) => `set${cc} ${['al', 'cl', 'dl', 'bl'][a % 4]}`),
);

function runProgram(body: string[], mode: 'jit' | 'cache' | 'decode', seedValues: bigint[]): { regs: bigint[]; flags: bigint; mem: bigint[]; n: number } {
  const m = new Machine({ apic: false });
  const lp = m.cpus[0]!;
  enterLongMode(lp);
  const exec = lp.executor as Executor;
  exec.useJit = mode === 'jit';
  exec.useCache = mode !== 'decode';
  // A loop so the block gets hot (JIT threshold), ending with a conditional branch that reads the flags.
  const src = `bits 64
    mov r15, 60
  top:
    ${body.join('\n    ')}
    jnc .skip
    inc r14
  .skip:
    dec r15
    jnz top
    hlt
  helper:
    add r13, 3
    ret`;
  const { bytes } = assembleOrThrow(src, { origin: L.code });
  m.memory.writeBytes(L.code, bytes);
  GPR64.forEach((n, i) => { if (n !== 'rsp' && n !== 'r15') lp.setReg(n, seedValues[i % seedValues.length]!); });
  lp.setReg('r14', 0n);
  for (let i = 0; i < 16; i++) m.memory.write64(DATA + i * 8, seedValues[(i + 3) % seedValues.length]!);
  const r = m.run({ maxInstructions: 200_000 });
  expect(r.reason).toBe('all-halted');
  return {
    regs: GPR64.map((n) => lp.getReg(n)),
    flags: lp.getReg('rflags'),
    mem: Array.from({ length: 16 }, (_, i) => m.memory.read64(DATA + i * 8)),
    n: lp.instructions,
  };
}

describe('block compiler', () => {
  it('random straight-line programs: JIT = block cache = decode-every-instruction', () => {
    const before = jitStats.instructions;
    fc.assert(fc.property(
      fc.array(insnArb, { minLength: 1, maxLength: 20 }),
      fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 4, maxLength: 4 }),
      (body, seeds) => {
        // Keep the stack balanced so the loop does not walk RSP away.
        const pushes = body.filter((s) => s.startsWith('push')).length - body.filter((s) => s.startsWith('pop')).length;
        const fixed = pushes > 0 ? [...body, ...Array(pushes).fill('pop r12')] : pushes < 0 ? [...Array(-pushes).fill('push r12'), ...body] : body;
        const a = runProgram(fixed, 'jit', seeds);
        const b = runProgram(fixed, 'cache', seeds);
        const c = runProgram(fixed, 'decode', seeds);
        expect(a).toEqual(b);
        expect(b).toEqual(c);
      }), { numRuns: 100, seed: 1234 });
    // The JIT really ran: many instructions were compiled.
    expect(jitStats.instructions - before).toBeGreaterThan(300);
  }, 120_000);

  it('a fault inside a compiled block is delivered exactly as by the interpreter', () => {
    const run = (jit: boolean) => {
      const m = new Machine({ apic: false });
      const lp = m.cpus[0]!;
      enterLongMode(lp);
      (lp.executor as Executor).useJit = jit;
      // After 50 iterations RBX is moved to an unmapped address: the load in the hot loop page-faults.
      const { bytes } = assembleOrThrow(`bits 64
        mov ecx, 100
        mov rbx, 0x9000
      top:
        add rax, rcx
        mov [rbx], rax
        inc rdx
        cmp ecx, 50
        jne .ok
        mov rbx, 0x7ff00000000
      .ok:
        dec ecx
        jnz top
        hlt`, { origin: L.code });
      m.memory.writeBytes(L.code, bytes);
      const h = assembleOrThrow('bits 64\npop r13\nmov r12, cr2\nmov r11, [rsp]\nhlt', { origin: 0x200000 });
      m.memory.writeBytes(0x200000, h.bytes);
      writeIdtGate(m.memory, L.idt, 14, 0x200000);
      m.run({ maxInstructions: 10_000 });
      return { regs: GPR64.map((n) => lp.getReg(n)), flags: lp.getReg('rflags'), n: lp.instructions };
    };
    const a = run(true), b = run(false);
    expect(a).toEqual(b);
    expect(a.regs[12]).toBe(0x7ff00000000n); // CR2
  });

  it('self-modifying code inside a hot compiled loop', () => {
    const g = (jit: boolean) => {
      const m = new Machine({ apic: false });
      const lp = m.cpus[0]!;
      enterLongMode(lp);
      (lp.executor as Executor).useJit = jit;
      const { bytes, labels } = assembleOrThrow(`bits 64
        mov ecx, 200
        xor edx, edx
      top:
        mov eax, 1
        add rdx, rax
        cmp ecx, 100
        jne .n
        mov dword [rel top + 1], 5
      .n:
        dec ecx
        jnz top
        hlt`, { origin: L.code });
      void labels;
      m.memory.writeBytes(L.code, bytes);
      m.run({ maxInstructions: 10_000 });
      return lp.getReg('rdx');
    };
    // ECX = 200 … 100 add 1 (the patch happens after the ADD at ECX = 100), ECX = 99 … 1 add 5.
    expect(g(true)).toBe(101n * 1n + 99n * 5n);
    expect(g(false)).toBe(596n);
  });
});
