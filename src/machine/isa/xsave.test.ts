// XSAVE / XRSTOR, standard form, for x87 and SSE (AVX kept in its initial configuration), against a model of
// SDM Vol. 1, "Operation of XSAVE" and "Standard Form of XRSTOR", with the #UD/#NM/#GP conditions of Vol. 2C.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION, DATA } from './testing-harness.ts';
import { CPUID_FEATURE } from '../../x86/cpuid.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { FX } from './fxsave.ts';

const h = harness();
const AREA = DATA + 0x1000, AREA2 = DATA + 0x2000;
const XSAVE = [0x0f, 0xae, 0x26], XRSTOR = [0x0f, 0xae, 0x2e], XSAVE_RDI = [0x48, 0x0f, 0xae, 0x27]; // [rsi], [rsi], xsave64 [rdi]
const clear = (at: number, n = 1024) => { for (let i = 0; i < n; i += 8) h.machine.memory.write(at + i, 8, 0n); };
const bytesAt = (at: number, n: number) => Array.from({ length: n }, (_, i) => h.machine.memory.read8(at + i));

function withXsave(xcr0: number, body: () => void): void {
  h.forceCpuid(new Map());
  const cr4 = h.lp.cr4, x = h.lp.xcr0;
  h.lp.cr4 |= CR4.OSXSAVE;
  h.lp.xcr0 = xcr0;
  try { body(); } finally { h.lp.cr4 = cr4; h.lp.xcr0 = x; }
}

describe('XSAVE / XRSTOR', () => {
  it('XRSTOR loads (XSTATE_BV[i] = 1) or initialises (0) each requested component, then XSAVE stores the result', () => {
    withXsave(7, () => {
      fc.assert(fc.property(fc.uint8Array({ minLength: 416, maxLength: 416 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }),
        (legacy, mxcsr, bv, rfbm) => {
          // A known state before: FCW 1234H, FSW 0, all registers empty, XMM bytes 0x11, MXCSR 1F80H.
          const f = h.lp.fpu;
          f.fcw = 0x1234; f.fsw = 0; f.ftw = 0xffff; f.fop = 0; f.st.fill(0); f.xmm.fill(0x11); f.mxcsr = 0x1f80;
          clear(AREA); clear(AREA2);
          h.machine.memory.writeBytes(AREA, legacy);
          h.machine.memory.write(AREA + FX.MXCSR, 4, BigInt(mxcsr));
          h.machine.memory.write(AREA + 512, 8, BigInt(bv));
          expect(h.run([...XRSTOR, 0xb8, 7, 0, 0, 0, ...XSAVE_RDI], { rsi: BigInt(AREA), rdi: BigInt(AREA2), rax: BigInt(rfbm), rdx: 0n })).toBe(NO_EXCEPTION);
          // The model: what each component holds after XRSTOR (then XSAVE with RFBM = 7 shows it all).
          const x87Loaded = (rfbm & 1) !== 0 && (bv & 1) !== 0, x87Init = (rfbm & 1) !== 0 && (bv & 1) === 0;
          const fcw = x87Loaded ? legacy[0]! | (legacy[1]! << 8) : x87Init ? 0x037f : 0x1234;
          const fsw = x87Loaded ? legacy[2]! | (legacy[3]! << 8) : 0;
          const ftw = x87Loaded ? legacy[4]! : 0;
          const st = x87Loaded ? [...legacy.slice(32, 160)] : new Array(128).fill(0);
          const xmm = (rfbm & 2) === 0 ? new Array(256).fill(0x11) : (bv & 2) !== 0 ? [...legacy.slice(160, 416)] : new Array(256).fill(0);
          const mx = (rfbm & 6) !== 0 ? mxcsr : 0x1f80;
          const saved = bytesAt(AREA2, 576);
          expect(saved[0]! | (saved[1]! << 8)).toBe(fcw);
          expect(saved[2]! | (saved[3]! << 8)).toBe(fsw);
          expect(saved[4]).toBe(ftw);
          expect(saved.slice(32, 160)).toEqual(st);
          expect(saved.slice(160, 416)).toEqual(xmm);
          expect(Number(h.machine.memory.read(AREA2 + FX.MXCSR, 4))).toBe(mx);
          const inUse = (fcw !== 0x037f || fsw !== 0 || ftw !== 0 || st.some((b) => b !== 0) ? 1 : 0) | (xmm.some((b) => b !== 0) ? 2 : 0);
          expect(Number(h.machine.memory.read(AREA2 + 512, 8)), 'XSTATE_BV = XINUSE (AVX always initial)').toBe(inUse);
        }), { numRuns: 120, seed: 64 });
    });
  });

  it('XSAVE writes only the requested components and XSTATE_BV bits, and nothing else of the header', () => {
    withXsave(3, () => {
      for (let i = 0; i < 1024; i++) h.machine.memory.write8(AREA + i, 0xee);
      h.machine.memory.write(AREA + 512, 8, 0xffn);
      expect(h.run(XSAVE, { rsi: BigInt(AREA), rax: 2n, rdx: 0n })).toBe(NO_EXCEPTION); // SSE only
      expect(h.machine.memory.read8(AREA + FX.FCW), 'x87 not requested: not written').toBe(0xee);
      expect(Number(h.machine.memory.read(AREA + FX.MXCSR, 4))).toBe(h.lp.fpu.mxcsr);
      expect(Number(h.machine.memory.read(AREA + 512, 8) & 0xffn), 'bits outside RFBM kept').toBe(0xfd | (h.lp.fpu.xmm.some((b) => b !== 0) ? 2 : 0));
      expect(h.machine.memory.read8(AREA + 520), 'XCOMP_BV untouched').toBe(0xee);
    });
  });

  it('XRSTOR #GP(0): XSTATE_BV bit outside XCR0, XCOMP_BV ≠ 0, a reserved header byte, MXCSR reserved bits; nothing restored', () => {
    withXsave(3, () => {
      const cases: [number, bigint][] = [[512, 4n], [520, 1n], [540, 1n], [FX.MXCSR, 0x10000n]];
      for (const [at, v] of cases) {
        clear(AREA);
        h.machine.memory.write(AREA + FX.MXCSR, 4, 0x1f80n);
        h.machine.memory.write(AREA + FX.FCW, 2, 0x0040n);
        h.machine.memory.write(AREA + 512, 8, 1n);
        h.machine.memory.write(AREA + at, 4, v);
        h.lp.fpu.fcw = 0x037f;
        expect(h.run(XRSTOR, { rsi: BigInt(AREA), rax: 3n, rdx: 0n }), `byte ${at} = ${v}`).toBe(13);
        expect(h.lp.fpu.fcw).toBe(0x037f);
      }
    });
  });

  it('#UD without CPUID.XSAVE or with CR4.OSXSAVE = 0, #NM with CR0.TS = 1 (not CR0.EM), #GP(0) unless 64-byte aligned', () => {
    withXsave(3, () => {
      expect(h.run(XSAVE, { rsi: BigInt(AREA + 16), rax: 3n })).toBe(13);
      expect(h.run(XSAVE, { rsi: BigInt(AREA), rax: 3n }, { cr0: { set: CR0.TS } })).toBe(7);
      expect(h.run(XSAVE, { rsi: BigInt(AREA), rax: 3n }, { cr0: { set: CR0.EM } })).toBe(NO_EXCEPTION);
      h.forceCpuid(new Map([[CPUID_FEATURE.XSAVE, false]]));
      expect(h.run(XSAVE, { rsi: BigInt(AREA), rax: 3n })).toBe(6);
      h.forceCpuid(new Map());
    });
    expect(h.run(XSAVE, { rsi: BigInt(AREA), rax: 3n }), 'CR4.OSXSAVE = 0').toBe(6);
  });
});
