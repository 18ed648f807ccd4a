// F3 0F BC / F3 0F BD: TZCNT/LZCNT where CPUID reports BMI1/LZCNT, else BSF/BSR (the prefix is ignored), against
// a BigInt model of SDM Vol. 2B, "TZCNT", Vol. 2A, "LZCNT" and "BSF"/"BSR".
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION } from './testing-harness.ts';
import { CPUID_FEATURE } from '../../x86/cpuid.ts';

const CF = 1n, PF = 4n, AF = 16n, ZF = 64n, SF = 128n, OF = 2048n;
const STATUS = CF | PF | AF | ZF | SF | OF;
const h = harness();

function tz(v: bigint, bits: number): number {
  for (let i = 0; i < bits; i++) if ((v >> BigInt(i)) & 1n) return i;
  return bits;
}
function lz(v: bigint, bits: number): number {
  for (let i = bits - 1; i >= 0; i--) if ((v >> BigInt(i)) & 1n) return bits - 1 - i;
  return bits;
}

const SIZES = [[16, [0x66]], [32, []], [64, [0x48]]] as const;
/** A source with few bits set (so counts vary), or an arbitrary one, or 0. */
const source = (bits: number) => fc.oneof(
  fc.constant(0n),
  fc.integer({ min: 0, max: bits - 1 }).map((i) => 1n << BigInt(i)),
  fc.tuple(fc.integer({ min: 0, max: bits - 1 }), fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n })).map(([i, r]) => (r << BigInt(i)) & ((1n << BigInt(bits)) - 1n)),
);

describe('TZCNT / LZCNT and their BSF / BSR fallback', () => {
  for (const withFeature of [true, false]) {
    for (const [bits, prefix] of SIZES) {
      for (const trailing of [true, false]) {
        const name = withFeature ? (trailing ? 'TZCNT' : 'LZCNT') : `F3 ${trailing ? 'BSF' : 'BSR'}`;
        it(`${name} ${bits}-bit matches the model ${withFeature ? 'with' : 'without'} CPUID.${trailing ? 'BMI1' : 'LZCNT'}`, () => {
          h.forceCpuid(new Map([[CPUID_FEATURE.BMI1, withFeature], [CPUID_FEATURE.LZCNT, withFeature]]));
          const mask = (1n << BigInt(bits)) - 1n;
          fc.assert(fc.property(source(bits), fc.bigInt({ min: 0n, max: STATUS }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (src, flagsIn, oldDst) => {
            flagsIn &= STATUS;
            // F3 [66|REX.W] 0F BC/BD ebx, edx
            const bytes = [...(bits === 64 ? [0xf3, ...prefix] : [...prefix, 0xf3]), 0x0f, trailing ? 0xbc : 0xbd, 0xda];
            expect(h.run(bytes, { rdx: src, rbx: oldDst }, { rflags: flagsIn })).toBe(NO_EXCEPTION);
            const got = h.lp.getReg('rbx');
            const flags = h.lp.getReg('rflags') & STATUS;
            if (withFeature) {
              const n = BigInt(trailing ? tz(src, bits) : lz(src, bits));
              expect(got & mask).toBe(n);
              expect(flags & (CF | ZF)).toBe((src === 0n ? CF : 0n) | (n === 0n ? ZF : 0n));
              expect(flags & (OF | SF | AF | PF), 'undefined flags are left unchanged').toBe(flagsIn & (OF | SF | AF | PF));
            } else if (src === 0n) {
              expect(flags & ZF).toBe(ZF);
              expect(got, 'BSF/BSR leave the destination unchanged for a zero source').toBe(oldDst);
            } else {
              expect(got & mask).toBe(BigInt(trailing ? tz(src, bits) : bits - 1 - lz(src, bits)));
              expect(flags & ZF).toBe(0n);
            }
            if (bits === 16) expect(got >> 16n).toBe(oldDst >> 16n);
          }), { numRuns: 200, seed: bits + (trailing ? 1 : 2) + (withFeature ? 10 : 20) });
        });
      }
    }
  }

  it('the CPU models do not report BMI1/LZCNT, so on them F3 0F BC runs as BSF', () => {
    h.forceCpuid(new Map());
    h.run([0xf3, 0x0f, 0xbc, 0xda], { rdx: 0x10n, rbx: 0n });
    expect(h.lp.getReg('rbx')).toBe(4n);
    h.run([0xf3, 0x0f, 0xbd, 0xda], { rdx: 0x10n, rbx: 0n });
    expect(h.lp.getReg('rbx'), 'BSR: index of the highest set bit, not LZCNT (27)').toBe(4n);
  });

  it('reads a memory source', () => {
    h.forceCpuid(new Map([[CPUID_FEATURE.BMI1, true]]));
    h.machine.memory.write(0x300000, 4, 0x100n);
    expect(h.run([0xf3, 0x0f, 0xbc, 0x1e], { rsi: 0x300000n })).toBe(NO_EXCEPTION);
    expect(h.lp.getReg('rbx')).toBe(8n);
  });
});

describe('POPCNT', () => {
  for (const [bits, prefix] of SIZES) {
    it(`${bits}-bit: the number of 1 bits; ZF = source 0, OF SF AF CF PF cleared`, () => {
      h.forceCpuid(new Map());
      fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n }), fc.bigInt({ min: 0n, max: STATUS }), (src, flagsIn) => {
        const bytes = [...(bits === 64 ? [0xf3, ...prefix] : [...prefix, 0xf3]), 0x0f, 0xb8, 0xda]; // popcnt ebx, edx
        expect(h.run(bytes, { rdx: src, rbx: -1n & ((1n << 64n) - 1n) }, { rflags: flagsIn & STATUS })).toBe(NO_EXCEPTION);
        const n = BigInt([...src.toString(2)].filter((c) => c === '1').length);
        const mask = (1n << BigInt(bits)) - 1n;
        expect(h.lp.getReg('rbx') & mask).toBe(n);
        if (bits === 32) expect(h.lp.getReg('rbx') >> 32n).toBe(0n);
        expect(h.lp.getReg('rflags') & STATUS).toBe(src === 0n ? ZF : 0n);
      }), { numRuns: 150, seed: 23 + bits });
    });
  }
  it('#UD without CPUID.01H:ECX.POPCNT; 0F B8 without F3H (JMPE) is #UD', () => {
    h.forceCpuid(new Map([[CPUID_FEATURE.POPCNT, false]]));
    expect(h.run([0xf3, 0x0f, 0xb8, 0xda])).toBe(6);
    h.forceCpuid(new Map());
    expect(h.run([0x0f, 0xb8, 0xda])).toBe(6);
  });
});
