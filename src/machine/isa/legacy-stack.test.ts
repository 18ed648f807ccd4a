// PUSHA/POPA, ENTER and SAHF/LAHF against models written from their SDM pseudocode: SDM Vol. 2B, "PUSHA/PUSHAD",
// "POPA/POPAD", "SAHF", Vol. 2A, "ENTER", "LAHF"; the 64-bit-mode #UDs.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION } from './testing-harness.ts';
import { CPUID_FEATURE } from '../../x86/cpuid.ts';
import { LONG_MODE_LAYOUT } from '../testing/long-mode.ts';

const h = harness();
const SP0 = BigInt(LONG_MODE_LAYOUT.stackTop);
const ORDER = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi'] as const;
const M32 = 0xffffffffn;
const word = fc.bigInt({ min: 0n, max: M32 });

describe('PUSHA / POPA', () => {
  for (const size of [4, 2] as const) {
    const prefix = size === 2 ? [0x66] : [];
    const mask = size === 4 ? M32 : 0xffffn;
    it(`PUSHA${size === 4 ? 'D' : ''} pushes AX CX DX BX, the original SP, BP SI DI (${size * 8}-bit)`, () => {
      fc.assert(fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (values) => {
        const regs = Object.fromEntries(ORDER.filter((r) => r !== 'rsp').map((r, i) => [r, values[i]!]));
        expect(h.run([...prefix, 0x60], regs, { compat: true })).toBe(NO_EXCEPTION);
        const sp = h.lp.getReg('rsp');
        expect(sp).toBe(SP0 - BigInt(8 * size));
        const expected = ORDER.map((r) => (r === 'rsp' ? SP0 : regs[r]!) & mask).reverse(); // DI at the lowest address
        const got = expected.map((_, i) => h.machine.memory.read(Number(sp) + i * size, size) );
        expect(got).toEqual(expected);
      }), { numRuns: 100, seed: size });
    });
    it(`POPA${size === 4 ? 'D' : ''} pops DI SI BP, skips the SP image, then BX DX CX AX (${size * 8}-bit)`, () => {
      fc.assert(fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), fc.array(word, { minLength: 8, maxLength: 8 }), (stack, old) => {
        const base = Number(SP0) - 8 * size;
        stack.forEach((v, i) => h.machine.memory.write(base + i * size, size, v & mask));
        const regs = Object.fromEntries(ORDER.filter((r) => r !== 'rsp').map((r, i) => [r, old[i]!]));
        expect(h.run([0x83, 0xec, 8 * size, ...prefix, 0x61], regs, { compat: true })).toBe(NO_EXCEPTION); // sub esp, 8·size; popa
        expect(h.lp.getReg('rsp')).toBe(SP0);
        const popped = [...ORDER].reverse(); // DI first
        popped.forEach((r, i) => {
          if (r === 'rsp') return;
          const v = size === 4 ? stack[i]! : (old[ORDER.indexOf(r) - (ORDER.indexOf(r) > 4 ? 1 : 0)]! & ~0xffffn) | (stack[i]! & 0xffffn);
          expect(h.lp.getReg(r), r).toBe(v);
        });
      }), { numRuns: 100, seed: 10 + size });
    });
  }
  it('are #UD in 64-bit mode', () => {
    expect(h.run([0x60])).toBe(6);
    expect(h.run([0x61])).toBe(6);
  });
});

describe('SAHF / LAHF', () => {
  const STATUS = 0x8d5n;
  it('SAHF loads SF ZF AF PF CF from AH (OF kept); LAHF stores them, with bit 1 set, into AH', () => {
    h.forceCpuid(new Map());
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: STATUS }), fc.boolean(), (rax, flagsIn, compat) => {
      flagsIn &= STATUS;
      if (compat) rax &= M32;
      expect(h.run([0x9e], { rax }, { rflags: flagsIn, compat })).toBe(NO_EXCEPTION);
      expect(h.lp.getReg('rflags') & STATUS).toBe((flagsIn & 0x800n) | ((rax >> 8n) & 0xd5n));
      expect(h.run([0x9f], { rax }, { rflags: flagsIn, compat })).toBe(NO_EXCEPTION);
      expect(h.lp.getReg('rax')).toBe((rax & ~0xff00n) | (((flagsIn & 0xd5n) | 2n) << 8n));
    }), { numRuns: 200, seed: 9 });
  });
  it('are #UD in 64-bit mode without CPUID.80000001H:ECX.LAHF-SAHF, valid in 32-bit code regardless', () => {
    h.forceCpuid(new Map([[CPUID_FEATURE.LAHF_LM, false]]));
    expect(h.run([0x9e])).toBe(6);
    expect(h.run([0x9f])).toBe(6);
    expect(h.run([0x9f], {}, { compat: true })).toBe(NO_EXCEPTION);
    h.forceCpuid(new Map());
  });
});

describe('ENTER', () => {
  /** SDM Vol. 2A, "ENTER" Operation, for StackSize = OperandSize. Returns the expected stack words (from SP0 down), RBP, RSP. */
  function model(size: number, alloc: number, levelByte: number, rbp: bigint, oldFrame: bigint[]): { pushed: bigint[]; rbp: bigint; rsp: bigint } {
    const level = levelByte % 32;
    const pushed = [rbp];
    const frameTemp = SP0 - BigInt(size);
    if (level > 0) {
      for (let i = 1; i < level; i++) pushed.push(oldFrame[i - 1]!);
      pushed.push(frameTemp);
    }
    return { pushed, rbp: frameTemp, rsp: SP0 - BigInt(size * pushed.length) - BigInt(alloc) };
  }
  for (const [size, compat] of [[8, false], [4, true]] as const) {
    it(`builds the frame the SDM pseudocode describes, nesting levels 0–31 (${size * 8}-bit)`, () => {
      const OLD_BP = 0x70000n;
      fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }),
        fc.array(fc.bigInt({ min: 0n, max: size === 8 ? (1n << 64n) - 1n : M32 }), { minLength: 31, maxLength: 31 }), (alloc, levelByte, frame) => {
          frame.forEach((v, i) => h.machine.memory.write(Number(OLD_BP) - (i + 1) * size, size as 4 | 8, v));
          expect(h.run([0xc8, alloc & 0xff, alloc >> 8, levelByte], { rbp: OLD_BP }, { compat })).toBe(NO_EXCEPTION);
          const m = model(size, alloc, levelByte, OLD_BP, frame);
          expect(h.lp.getReg('rbp')).toBe(m.rbp);
          expect(h.lp.getReg('rsp')).toBe(m.rsp);
          m.pushed.forEach((v, i) => expect(h.machine.memory.read(Number(SP0) - (i + 1) * size, size as 4 | 8), `stack word ${i}`).toBe(v));
        }), { numRuns: 150, seed: size });
    });
  }
  it('restores RSP and RBP when it faults part way (here: the enclosing frame is not mapped)', () => {
    const unmapped = 0x200000000n; // above the 4 GiB the test page tables map
    expect(h.run([0xc8, 0x10, 0x00, 0x03], { rbp: unmapped })).toBe(14);
    expect(h.lp.getReg('rbp')).toBe(unmapped);
    expect(h.machine.memory.read(Number(SP0) - 16, 8), 'the RSP the #PF frame saved').toBe(SP0);
  });
});
