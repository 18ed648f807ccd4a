// The memory type the MTRRs give a physical address, by the SDM's precedence rules, in the order the processor
// applies them:
//   1. the SMRR range, outside SMM → UC (writes ignored, reads return a fixed value), whatever the MTRRs say;
//   2. MTRRs disabled (IA32_MTRR_DEF_TYPE.E = 0) → UC;
//   3. below 1 MiB with the fixed ranges enabled (E = FE = 1, and FIX = 1) → the fixed-range type;
//   4. the variable ranges that match: one type → that type; any UC → UC; only WT and WB → WT; other mixes are
//      undefined;
//   5. no match → the default type.
// And for a large page: where one type stops and another begins, so a page over several types can be split.
// See SDM Vol. 3A, "MTRR Precedences", "Variable Range MTRRs", "System-Management Range Register Interface" and
// "Large Page Size Considerations".
import type { MtrrMap, VariableRange } from './read-mtrrs.ts';

/** An MTRR memory type (0 UC, 1 WC, 4 WT, 5 WP, 6 WB), or 'undefined' where the SDM leaves it undefined. */
export type MtrrType = number | 'undefined';

/** Addresses [base, end) that have one MTRR type. */
export interface TypeRun {
  readonly base: bigint;
  readonly end: bigint;
  readonly type: MtrrType;
}

const UC = 0, WT = 4, WB = 6;
const ONE_MIB = 0x100000n;
const FOUR_GIB = 1n << 32n;
const PAGE_4K = 0x1000n;

/** A variable range (or the SMRR) matches pa when PhysMask & pa = PhysMask & PhysBase. */
function matches(r: VariableRange, pa: bigint): boolean {
  return r.valid && (pa & r.mask) === (r.base & r.mask);
}

/** The SMRR compares bits 31:12 only: SMRAM lies below 4 GiB. */
function smrrMatches(map: MtrrMap, pa: bigint): boolean {
  return map.smrr !== null && pa < FOUR_GIB && matches(map.smrr, pa);
}

const fixedActive = (map: MtrrMap): boolean => map.enabled && map.fixedEnabled && map.fixedSupported;

/** The MTRR type of physical address `pa`, outside SMM. */
export function resolveMemoryType(map: MtrrMap, pa: bigint): MtrrType {
  if (smrrMatches(map, pa)) return UC;
  if (!map.enabled) return UC;
  if (fixedActive(map) && pa < ONE_MIB) {
    const f = map.fixed.find((r) => pa >= BigInt(r.base) && pa < BigInt(r.base + r.size));
    if (f !== undefined) return f.type;
  }
  const types = new Set(map.variable.filter((r) => matches(r, pa)).map((r) => r.type));
  if (types.size === 0) return map.defaultType;
  if (types.size === 1) return [...types][0]!;
  if (types.has(UC)) return UC;
  if (types.size === 2 && types.has(WT) && types.has(WB)) return WT;
  return 'undefined';
}

/**
 * The MTRR types across the page [base, base + size) (`size` a power of two ≥ 4 KiB, `base` aligned to it), as
 * runs of one type, lowest first, adjacent runs of the same type merged: one run means a page of this size may
 * map it with that type; more mean it must be split. Every MTRR boundary is 4-KByte aligned, so 4-KByte pages
 * always have one type.
 */
export function memoryTypeRuns(map: MtrrMap, base: bigint, size: bigint): TypeRun[] {
  const runs: TypeRun[] = [];
  const visit = (b: bigint, n: bigint): void => {
    if (n === PAGE_4K || uniform(map, b, n)) {
      const type = resolveMemoryType(map, b);
      const last = runs[runs.length - 1];
      if (last !== undefined && last.end === b && last.type === type) runs[runs.length - 1] = { ...last, end: b + n };
      else runs.push({ base: b, end: b + n, type });
      return;
    }
    // Not every MTRR treats the whole page alike: look at each half.
    visit(b, n / 2n);
    visit(b + n / 2n, n / 2n);
  };
  visit(base, size);
  return runs;
}

/** Does every MTRR treat all of [b, b + n) alike: each range holds all of it or none of it? */
function uniform(map: MtrrMap, b: bigint, n: bigint): boolean {
  if (fixedActive(map) && b < ONE_MIB) return false; // the fixed ranges decide in units down to 4 KiB
  if (map.smrr !== null && map.smrr.valid && b < FOUR_GIB) {
    if (b + n > FOUR_GIB || !allOrNone(map.smrr, b, n)) return false;
  }
  return !map.enabled || map.variable.every((r) => !r.valid || allOrNone(r, b, n));
}

/**
 * A range misses all of [b, b + n) when a mask bit at or above log2(n) differs between b and the base; otherwise
 * it holds all of it only if the mask has no bit below log2(n) (a mask that looks inside the page splits it).
 */
function allOrNone(r: VariableRange, b: bigint, n: bigint): boolean {
  const above = r.mask & ~(n - 1n);
  if (((b ^ r.base) & above) !== 0n) return true;
  return (r.mask & (n - 1n)) === 0n;
}
