// The minimal x87 FPU and FXSAVE/FXRSTOR: FNINIT's state, FLDCW/FNSTCW/FNSTSW/FNCLEX, the CR0.EM/MP/TS #NM table
// (SDM Vol. 3A, "Action Taken By x87 FPU Instructions for Different Combinations of EM, MP, and TS"), #MF on a
// waiting instruction, and the FXSAVE area (SDM Vol. 2A, "FXSAVE") with its #UD/#NM/#GP conditions.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION, DATA } from './testing-harness.ts';
import { CPUID_FEATURE } from '../../x86/cpuid.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { FX } from './fxsave.ts';

const h = harness();
const RSI = { rsi: BigInt(DATA) };
const FNINIT = [0xdb, 0xe3], FNSTCW = [0xd9, 0x3e], FLDCW = [0xd9, 0x2e], FNSTSW_AX = [0xdf, 0xe0], FNSTSW_M = [0xdd, 0x3e];
const FNCLEX = [0xdb, 0xe2], FNOP = [0xd9, 0xd0], WAIT = [0x9b], FADD = [0xd8, 0xc1];
const FXSAVE = [0x0f, 0xae, 0x06], FXRSTOR = [0x0f, 0xae, 0x0e], FXSAVE64 = [0x48, 0x0f, 0xae, 0x06], FXRSTOR64 = [0x48, 0x0f, 0xae, 0x0e];
const mem16 = (a: number) => Number(h.machine.memory.read(a, 2));

describe('x87 control and status', () => {
  it('FNINIT sets FCW = 037FH, FSW = 0 and empties every register; FNSTCW/FNSTSW store them', () => {
    h.lp.fpu.fsw = 0x3800 | 0x81; h.lp.fpu.fcw = 0x40; h.lp.fpu.ftw = 0x5555;
    expect(h.run([...FNINIT, ...FNSTCW, ...FNSTSW_AX], { ...RSI, rax: 0xffffn })).toBe(NO_EXCEPTION);
    expect(mem16(DATA)).toBe(0x037f);
    expect(h.lp.getReg('rax')).toBe(0n);
    expect(h.lp.fpu.ftw).toBe(0xffff);
    h.lp.fpu.fsw = 0x1234;
    expect(h.run(FNSTSW_M, RSI)).toBe(NO_EXCEPTION);
    expect(mem16(DATA)).toBe(0x1234);
  });

  it('FLDCW loads what FNSTCW stores (every value), and FNCLEX clears the exception flags, SF, ES and B', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (cw) => {
      h.lp.fpu.fsw = 0;
      h.machine.memory.write(DATA, 2, BigInt(cw));
      expect(h.run([...FLDCW, 0xd9, 0x7e, 0x02], RSI)).toBe(NO_EXCEPTION); // fldcw [rsi]; fnstcw [rsi+2]
      expect(mem16(DATA + 2)).toBe(cw);
    }), { numRuns: 100, seed: 87 });
    h.lp.fpu.fsw = 0xb8ff;
    expect(h.run([...FNCLEX, ...FNSTSW_AX])).toBe(NO_EXCEPTION);
    expect(Number(h.lp.getReg('rax') & 0xffffn)).toBe(0x3800); // TOP (bits 13:11) stays
  });

  it('CR0.EM = 1 or CR0.TS = 1: every x87 instruction is #NM — the unimplemented ones too; otherwise those are #UD', () => {
    for (const insn of [FNINIT, FNSTCW, FLDCW, FNSTSW_AX, FNSTSW_M, FNCLEX, FNOP, FADD]) {
      for (const bit of [CR0.EM, CR0.TS]) expect(h.run(insn, RSI, { cr0: { set: bit } }), `${insn} with CR0 ${bit}`).toBe(7);
    }
    expect(h.run(FADD)).toBe(6);
    expect(h.lp.lastFault?.explanation).toContain('not implemented');
  });

  it('WAIT: #NM only with CR0.MP = 1 and CR0.TS = 1; CR0.EM is ignored', () => {
    expect(h.run(WAIT, {}, { cr0: { set: CR0.MP | CR0.TS } })).toBe(7);
    expect(h.run(WAIT, {}, { cr0: { set: CR0.TS, clear: CR0.MP } })).toBe(NO_EXCEPTION);
    expect(h.run(WAIT, {}, { cr0: { set: CR0.EM } })).toBe(NO_EXCEPTION);
  });

  it('a pending unmasked exception is #MF on the next waiting instruction (CR0.NE = 1), not on FNSTSW', () => {
    h.run(FNINIT);
    h.lp.fpu.fsw = 0x01; // IE, masked by 037FH
    h.machine.memory.write(DATA, 2, 0x037en); // unmask IE
    expect(h.run([...FLDCW, ...FNSTSW_AX], RSI)).toBe(NO_EXCEPTION);
    expect(Number(h.lp.getReg('rax') & 0xffffn), 'ES and B now set').toBe(0x8081);
    expect(h.run(WAIT)).toBe(16);
    expect(h.run(FNOP)).toBe(16);
    expect(h.run(WAIT, {}, { cr0: { clear: CR0.NE } }), 'CR0.NE = 0: FERR#/IRQ 13 is not modelled').toBe(NO_EXCEPTION);
    expect(h.run([...FNCLEX, ...WAIT])).toBe(NO_EXCEPTION);
  });
});

describe('FXSAVE / FXRSTOR', () => {
  const AREA = DATA + 0x1000, AREA2 = DATA + 0x2000;
  const fill = (at: number, byte: number) => { for (let i = 0; i < 512; i++) h.machine.memory.write8(at + i, byte); };

  it('FXSAVE stores FCW FSW, the abridged tag word, MXCSR = 1F80H, MXCSR_MASK and 16 XMM slots (8 in 32-bit code)', () => {
    h.forceCpuid(new Map());
    for (const [insn, compat, xmm] of [[FXSAVE64, false, 16], [FXSAVE, false, 16], [FXSAVE, true, 8]] as const) {
      fill(AREA, 0xcc);
      h.run(FNINIT);
      h.lp.fpu.fsw = 0x0800; // TOP = 1
      expect(h.run([...insn], { rsi: BigInt(AREA) }, { compat })).toBe(NO_EXCEPTION);
      expect(mem16(AREA + FX.FCW)).toBe(0x037f);
      expect(mem16(AREA + FX.FSW)).toBe(0x0800);
      expect(h.machine.memory.read8(AREA + FX.FTW), 'all empty').toBe(0);
      expect(Number(h.machine.memory.read(AREA + FX.MXCSR, 4))).toBe(0x1f80);
      expect(Number(h.machine.memory.read(AREA + FX.MXCSR_MASK, 4))).toBe(0xffff);
      expect(h.machine.memory.read8(AREA + FX.XMM + xmm * 16 - 1)).toBe(0);
      expect(h.machine.memory.read8(AREA + FX.XMM + xmm * 16), 'beyond the saved XMM registers: untouched').toBe(0xcc);
      expect(h.machine.memory.read8(AREA + 511)).toBe(0xcc);
    }
  });

  it('FXRSTOR then FXSAVE gives back FCW FSW FTW(abridged) MXCSR ST0–7 and XMM0–15', () => {
    h.forceCpuid(new Map());
    fc.assert(fc.property(fc.uint8Array({ minLength: 416, maxLength: 416 }), fc.integer({ min: 0, max: 0xffff }), fc.boolean(), (bytes, mxcsr, rexW) => {
      h.machine.memory.writeBytes(AREA, bytes);
      h.machine.memory.write(AREA + FX.MXCSR, 4, BigInt(mxcsr));
      fill(AREA2, 0);
      expect(h.run([...(rexW ? FXRSTOR64 : FXRSTOR), 0x0f, 0xae, 0x07], { rsi: BigInt(AREA), rdi: BigInt(AREA2) })).toBe(NO_EXCEPTION);
      expect(mem16(AREA2 + FX.FCW)).toBe(mem16(AREA + FX.FCW));
      expect(mem16(AREA2 + FX.FSW)).toBe(mem16(AREA + FX.FSW));
      expect(h.machine.memory.read8(AREA2 + FX.FTW)).toBe(bytes[FX.FTW]);
      expect(Number(h.machine.memory.read(AREA2 + FX.MXCSR, 4))).toBe(mxcsr);
      for (let i = FX.ST; i < 416; i++) if (h.machine.memory.read8(AREA2 + i) !== bytes[i]) expect.fail(`byte ${i}`);
    }), { numRuns: 60, seed: 512 });
  });

  it('FXRSTOR rebuilds the full tag word: zero, special and valid registers, empty where the abridged bit is 0', () => {
    fill(AREA, 0);
    h.machine.memory.write(AREA + FX.MXCSR, 4, 0x1f80n);
    h.machine.memory.write8(AREA + FX.FTW, 0b0000_0111); // ST0 ST1 ST2 not empty (TOP = 0)
    h.machine.memory.write(AREA + FX.ST + 16 + 7, 1, 0x80n); // ST1: integer bit …
    h.machine.memory.write(AREA + FX.ST + 16 + 8, 2, 0x3fffn); // … exponent 3FFFH: 1.0, valid
    h.machine.memory.write(AREA + FX.ST + 32 + 8, 2, 0x7fffn); // ST2: infinity/NaN exponent, special
    expect(h.run(FXRSTOR, { rsi: BigInt(AREA) })).toBe(NO_EXCEPTION);
    expect(h.lp.fpu.ftw).toBe(0b11_11_11_11_11_10_00_01);
  });

  it('#GP(0) for an area not 16-byte aligned, #GP(0) for MXCSR bits outside MXCSR_MASK, #NM for CR0.TS/EM, #UD without FXSR', () => {
    h.forceCpuid(new Map());
    expect(h.run(FXSAVE, { rsi: BigInt(AREA + 8) })).toBe(13);
    expect(h.run(FXRSTOR, { rsi: BigInt(AREA + 4) })).toBe(13);
    fill(AREA, 0);
    h.machine.memory.write(AREA + FX.MXCSR, 4, 0x10000n);
    h.machine.memory.write(AREA + FX.FCW, 2, 0x1234n);
    h.run(FNINIT);
    expect(h.run(FXRSTOR, { rsi: BigInt(AREA) })).toBe(13);
    expect(h.lp.fpu.fcw, 'nothing restored').toBe(0x037f);
    for (const bit of [CR0.TS, CR0.EM]) {
      expect(h.run(FXSAVE, { rsi: BigInt(AREA) }, { cr0: { set: bit } })).toBe(7);
      expect(h.run(FXRSTOR, { rsi: BigInt(AREA) }, { cr0: { set: bit } })).toBe(7);
    }
    h.forceCpuid(new Map([[CPUID_FEATURE.FXSR, false]]));
    expect(h.run(FXSAVE, { rsi: BigInt(AREA) })).toBe(6);
    h.forceCpuid(new Map());
    expect(h.run([0xf0, ...FXSAVE], { rsi: BigInt(AREA) }), 'LOCK FXSAVE').toBe(6);
  });
});

describe('LDMXCSR / STMXCSR', () => {
  const LDMXCSR = [0x0f, 0xae, 0x16], STMXCSR = [0x0f, 0xae, 0x1e];
  it('load and store MXCSR (the register FXSAVE saves); #GP(0) for bits outside MXCSR_MASK', () => {
    h.forceCpuid(new Map());
    h.lp.cr4 |= CR4.OSFXSR;
    try {
      fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (v) => {
        h.machine.memory.write(DATA, 4, BigInt(v));
        expect(h.run([...LDMXCSR, 0x0f, 0xae, 0x5e, 0x04], RSI)).toBe(NO_EXCEPTION); // ldmxcsr [rsi]; stmxcsr [rsi+4]
        expect(Number(h.machine.memory.read(DATA + 4, 4))).toBe(v);
        expect(h.lp.fpu.mxcsr).toBe(v);
      }), { numRuns: 50, seed: 3 });
      h.machine.memory.write(DATA, 4, 0x1f80n | 0x10000n);
      expect(h.run(LDMXCSR, RSI)).toBe(13);
      expect(h.run(STMXCSR, RSI, { cr0: { set: CR0.TS } })).toBe(7);
      expect(h.run(STMXCSR, RSI, { cr0: { set: CR0.EM } }), 'CR0.EM = 1 is #UD for SSE').toBe(6);
      h.forceCpuid(new Map([[CPUID_FEATURE.SSE, false]]));
      expect(h.run(STMXCSR, RSI)).toBe(6);
      h.forceCpuid(new Map());
    } finally {
      h.lp.cr4 &= ~CR4.OSFXSR;
    }
    expect(h.run(STMXCSR, RSI), 'CR4.OSFXSR = 0').toBe(6);
  });
});
