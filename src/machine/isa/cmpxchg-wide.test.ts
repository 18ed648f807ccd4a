// CMPXCHG8B / CMPXCHG16B against SDM Vol. 2A, "CMPXCHG8B/CMPXCHG16B—Compare and Exchange Bytes": the exchange,
// ZF (the only flag changed), the 16-byte alignment #GP, the CPUID #UD and the register-operand #UD.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION, DATA } from './testing-harness.ts';
import { CPUID_FEATURE } from '../../x86/cpuid.ts';

const ZF = 64n, STATUS = 0x8d5n;
const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n;
const h = harness();

describe('CMPXCHG8B / CMPXCHG16B', () => {
  for (const [name, bytes, compat] of [
    ['CMPXCHG8B (64-bit mode)', [0x0f, 0xc7, 0x0e], false], ['LOCK CMPXCHG8B (32-bit code)', [0xf0, 0x0f, 0xc7, 0x0e], true],
    ['CMPXCHG16B', [0x48, 0x0f, 0xc7, 0x0e], false], ['LOCK CMPXCHG16B', [0xf0, 0x48, 0x0f, 0xc7, 0x0e], false],
  ] as const) {
    const wide = name.includes('16B');
    const half = wide ? M64 : M32;
    it(`${name}: exchanges when EDX:EAX matches, loads EDX:EAX otherwise; only ZF changes`, () => {
      h.forceCpuid(new Map());
      const word = fc.bigInt({ min: 0n, max: M64 });
      fc.assert(fc.property(word, word, word, word, word, word, fc.boolean(), fc.bigInt({ min: 0n, max: STATUS }), (m0, m1, rax, rdx, rbx, rcx, same, flagsIn) => {
        flagsIn &= STATUS;
        const mem0 = m0 & half, mem1 = m1 & half;
        if (same) { rax = (rax & ~half) | mem0; rdx = (rdx & ~half) | mem1; }
        if (compat) { rax &= M32; rdx &= M32; rbx &= M32; rcx &= M32; }
        const memBefore = wide ? [mem0, mem1] : [mem0 | (mem1 << 32n)];
        memBefore.forEach((v, i) => h.machine.memory.write(DATA + i * 8, 8, v));
        h.machine.memory.write(DATA + 16, 8, 0x1122334455667788n);
        expect(h.run([...bytes], { rax, rdx, rbx, rcx, rsi: BigInt(DATA) }, { rflags: flagsIn, compat })).toBe(NO_EXCEPTION);
        const equal = (rax & half) === mem0 && (rdx & half) === mem1;
        const after0 = h.machine.memory.read(DATA, 8), after1 = h.machine.memory.read(DATA + 8, 8);
        const flags = h.lp.getReg('rflags') & STATUS;
        expect(flags).toBe((flagsIn & ~ZF) | (equal ? ZF : 0n));
        if (equal) {
          if (wide) { expect(after0).toBe(rbx); expect(after1).toBe(rcx); } else expect(after0).toBe((rbx & M32) | ((rcx & M32) << 32n));
          expect(h.lp.getReg('rax')).toBe(rax);
          expect(h.lp.getReg('rdx')).toBe(rdx);
        } else {
          expect([after0, ...(wide ? [after1] : [])]).toEqual(memBefore);
          // A 32-bit load zero-extends into RAX/RDX.
          expect(h.lp.getReg('rax')).toBe(mem0);
          expect(h.lp.getReg('rdx')).toBe(mem1);
        }
        if (!wide) expect(after1, 'CMPXCHG8B touches 8 bytes only').toBe(0n);
        expect(h.machine.memory.read(DATA + 16, 8)).toBe(0x1122334455667788n);
      }), { numRuns: 200, seed: bytes.length * 7 + (compat ? 1 : 0) });
    });
  }

  it('CMPXCHG16B: #GP(0) for an operand that is not 16-byte aligned (memory unchanged); CMPXCHG8B has no such rule', () => {
    h.forceCpuid(new Map());
    h.machine.memory.write(DATA + 8, 8, 5n);
    expect(h.run([0x48, 0x0f, 0xc7, 0x0e], { rsi: BigInt(DATA + 8), rax: 5n, rdx: 0n })).toBe(13);
    expect(h.lp.getReg('r14'), 'error code 0').toBe(0n);
    expect(h.machine.memory.read(DATA + 8, 8)).toBe(5n);
    expect(h.run([0x0f, 0xc7, 0x0e], { rsi: BigInt(DATA + 4) })).toBe(NO_EXCEPTION);
  });

  it('#UD without CPUID.01H:ECX.CX16 (CMPXCHG16B) or CPUID.01H:EDX.CX8 (CMPXCHG8B), and for a register operand', () => {
    h.forceCpuid(new Map([[CPUID_FEATURE.CX16, false]]));
    expect(h.run([0x48, 0x0f, 0xc7, 0x0e], { rsi: BigInt(DATA) })).toBe(6);
    expect(h.run([0x0f, 0xc7, 0x0e], { rsi: BigInt(DATA) }), 'CMPXCHG8B does not need CX16').toBe(NO_EXCEPTION);
    h.forceCpuid(new Map([[CPUID_FEATURE.CX8, false]]));
    expect(h.run([0x0f, 0xc7, 0x0e], { rsi: BigInt(DATA) })).toBe(6);
    h.forceCpuid(new Map());
    expect(h.run([0x0f, 0xc7, 0xce])).toBe(6);
    expect(h.lp.lastFault?.explanation).toContain('memory operand');
  });
});
