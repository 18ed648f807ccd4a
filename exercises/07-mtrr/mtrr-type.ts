// Exercise 7.2 — the memory type the MTRRs give a physical address, by the SDM's precedence rules, in the order the
// processor applies them:
//   1. the SMRR range, outside SMM → UC (writes ignored, reads return a fixed value), whatever the MTRRs say;
//   2. MTRRs disabled (IA32_MTRR_DEF_TYPE.E = 0) → UC;
//   3. below 1 MiB with the fixed ranges enabled (E = FE = 1, and FIX = 1) → the fixed-range type;
//   4. the variable ranges that match: one type → that type; any UC → UC; only WT and WB → WT; other mixes are
//      undefined;
//   5. no match → the default type.
// And for a large page: where one type stops and another begins, so a page over several types can be split.
// Read chapters/07-mtrr/README.md. Yours to write: resolveMemoryType and memoryTypeRuns.
// See SDM Vol. 3A, "MTRR Precedences", "Variable Range MTRRs", "System-Management Range Register Interface" and
// "Large Page Size Considerations".
import type { MtrrMap } from './read-mtrrs.ts';

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

/** The MTRR type of physical address `pa`, outside SMM. */
export function resolveMemoryType(map: MtrrMap, pa: bigint): MtrrType {
  // TODO: the five rules above, in that order. A variable range (or the SMRR) matches when
  // (pa & mask) === (base & mask) and it is valid; the SMRR only below 4 GiB.
  throw new Error('TODO: resolveMemoryType');
}

/**
 * The MTRR types across the page [base, base + size) (`size` a power of two ≥ 4 KiB, `base` aligned to it), as
 * runs of one type, lowest first, adjacent runs of the same type merged: one run means a page of this size may
 * map it with that type; more mean it must be split. Every MTRR boundary is 4-KByte aligned, so 4-KByte pages
 * always have one type.
 */
export function memoryTypeRuns(map: MtrrMap, base: bigint, size: bigint): TypeRun[] {
  // TODO: 4-KByte page by 4-KByte page is correct but slow for a 1-GByte page; split in halves only where some range
  // looks inside the page (see the hints).
  throw new Error('TODO: memoryTypeRuns');
}
