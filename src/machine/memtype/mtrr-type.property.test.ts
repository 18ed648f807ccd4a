// mtrrType and mtrrRuns against a reference written differently: each variable range as an interval [base, base +
// size) with the size read off the mask's lowest set bit, the fixed ranges by arithmetic on the SDM's unit sizes,
// and the precedence rules over the set of matching types.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MEMORY_TYPE, type MtrrMemoryType } from '../../x86/memory-types.ts';
import type { MtrrPair, MtrrState } from './mtrr-state.ts';
import { mtrrRuns, mtrrType, type MtrrResolvedType } from './mtrr-type.ts';
import { rangePair } from './test-layouts.ts';

const { UC, WC, WT, WP, WB } = MEMORY_TYPE;
const TYPES: readonly MtrrMemoryType[] = [UC, WC, WT, WP, WB];
const SPAN = 1n << 33n; // ranges and addresses stay in the low 8 GiB, so they overlap often

function lowestBit(v: bigint): bigint {
  return v & -v;
}

function inRange(p: MtrrPair, addressBits: bigint, pa: bigint): boolean {
  if ((p.mask & 0x800n) === 0n) return false;
  const base = p.base & addressBits, size = lowestBit(p.mask & addressBits);
  return pa >= base && pa < base + size;
}

function reference(s: MtrrState, pa: bigint): MtrrResolvedType {
  if (s.smrr !== null && inRange(s.smrr, 0xfffff000n, pa)) return UC;
  if ((s.defType & 0x800n) === 0n) return UC;
  if ((s.defType & 0x400n) !== 0n && (s.cap & 0x100n) !== 0n && pa < 0x100000n) {
    const p = Number(pa);
    // 8 units of 64 KiB, then 16 of 16 KiB, then 64 of 4 KiB; unit k is byte k % 8 of fixed MSR k / 8.
    const k = p < 0x80000 ? p >> 16 : p < 0xc0000 ? 8 + ((p - 0x80000) >> 14) : 24 + ((p - 0xc0000) >> 12);
    return Number((s.fixed[k >> 3]! >> BigInt((k & 7) * 8)) & 0xffn) as MtrrMemoryType;
  }
  const addressBits = ((1n << BigInt(s.maxPhysAddr)) - 1n) & ~0xfffn;
  const types = new Set(s.variable.filter((p) => inRange(p, addressBits, pa)).map((p) => Number(p.base & 0xffn) as MtrrMemoryType));
  if (types.size === 0) return Number(s.defType & 0xffn) as MtrrMemoryType;
  if (types.size === 1) return [...types][0]!;
  if (types.has(UC)) return UC;
  if (types.size === 2 && types.has(WT) && types.has(WB)) return WT;
  return 'undefined';
}

const type = fc.constantFrom(...TYPES);
const range = (minLog: number, maxLog: number, span: bigint) =>
  fc.record({ log: fc.integer({ min: minLog, max: maxLog }), at: fc.bigInt({ min: 0n, max: span - 1n }), type, valid: fc.boolean() })
    .map((r) => ({ ...r, size: 1n << BigInt(r.log), base: r.at & ~((1n << BigInt(r.log)) - 1n) }));

const states = fc.record({
  maxPhysAddr: fc.constantFrom(36, 39, 46),
  fix: fc.boolean(),
  enabled: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  fixedEnabled: fc.boolean(),
  defaultType: type,
  fixedTypes: fc.array(type, { minLength: 88, maxLength: 88 }),
  variable: fc.array(range(12, 32, SPAN), { maxLength: 10 }),
  smrr: fc.option(range(12, 23, 1n << 32n), { nil: undefined }),
}).map((g): MtrrState => {
  const pair = (r: { base: bigint; size: bigint; type: MtrrMemoryType; valid: boolean }, bits: number) => {
    const p = rangePair(r.base, r.size, r.type, bits);
    return r.valid ? p : { base: p.base, mask: p.mask & ~0x800n };
  };
  const fixed = Array.from({ length: 11 }, (_, i) => g.fix ? g.fixedTypes.slice(i * 8, i * 8 + 8).reduce((a, t, f) => a | (BigInt(t) << BigInt(8 * f)), 0n) : 0n);
  return {
    maxPhysAddr: g.maxPhysAddr,
    cap: BigInt(g.variable.length) | (g.fix ? 0x100n : 0n) | 0x400n | (g.smrr !== undefined ? 0x800n : 0n),
    defType: BigInt(g.defaultType) | (g.enabled ? 0x800n : 0n) | (g.fixedEnabled ? 0x400n : 0n),
    fixed,
    variable: g.variable.map((r) => pair(r, g.maxPhysAddr)),
    smrr: g.smrr === undefined ? null : pair(g.smrr, 32),
  };
});

/** The addresses where an answer can change: every range's first and last byte and their neighbours. */
function edges(s: MtrrState): bigint[] {
  const out = [0n, 0x9ffffn, 0xa0000n, 0xfffffn, 0x100000n];
  for (const p of [...s.variable, ...(s.smrr ? [s.smrr] : [])]) {
    const base = p.base & ~0xfffn, size = lowestBit(p.mask & ~0xfffn);
    out.push(base, base + size - 1n, base + size);
    if (base > 0n) out.push(base - 1n);
  }
  return out.filter((a) => a >= 0n && a < SPAN);
}

describe('MTRR precedence (generated layouts)', () => {
  it('mtrrType agrees with the interval reference at every range edge and at random addresses', () => {
    fc.assert(fc.property(states, fc.array(fc.bigInt({ min: 0n, max: SPAN - 1n }), { minLength: 8, maxLength: 8 }), (s, random) => {
      for (const pa of [...edges(s), ...random]) expect(mtrrType(s, pa).type, `pa ${pa.toString(16)}`).toBe(reference(s, pa));
    }), { numRuns: 300, seed: 1 });
  });

  it('mtrrRuns of a 2-MByte page: contiguous runs of distinct adjacent types, each 4-KByte page as the reference says', () => {
    fc.assert(fc.property(states, fc.nat(), (s, pick) => {
      const bases = edges(s).map((a) => a & ~0x1fffffn);
      const base = bases[pick % bases.length]!;
      const runs = mtrrRuns(s, base, 0x200000n);
      expect(runs[0]!.base).toBe(base);
      expect(runs[runs.length - 1]!.end).toBe(base + 0x200000n);
      runs.forEach((r, i) => {
        if (i > 0) {
          expect(r.base).toBe(runs[i - 1]!.end);
          expect(r.result.type).not.toBe(runs[i - 1]!.result.type);
        }
        for (let pa = r.base; pa < r.end; pa += 0x1000n) expect(reference(s, pa), `pa ${pa.toString(16)}`).toBe(r.result.type);
      });
    }), { numRuns: 150, seed: 1 });
  });
});
