// The memory type the MTRRs give a physical address, by the SDM's precedence rules, with the rule that decided:
//   SMRR range outside SMM → UC (writes ignored, reads return a fixed value), even over the MTRRs;
//   MTRRs disabled (E = 0) → UC;
//   below 1 MiB with fixed ranges enabled (E = FE = 1) → the fixed-range type;
//   variable ranges: one match → its type; identical types → that type; any UC → UC; only WT and WB → WT;
//   any other overlap → undefined (the SDM: "processor behavior is undefined");
//   no match → the default type.
// And for a large page: whether one type covers it, or where it must be split.
// See SDM Vol. 3A, "MTRR Precedences" and "System-Management Range Register Interface".
import { FIXED_RANGES_END, physAddressBits } from '../../x86/mtrr.ts';
import { MEMORY_TYPE, type MtrrMemoryType } from '../../x86/memory-types.ts';
import {
  defaultTypeOf, fixedFieldOf, fixedFieldType, fixedRangesEnabled, mtrrsEnabled, pairMatches, pairType, pairValid,
  type MtrrPair, type MtrrState,
} from './mtrr-state.ts';

/** 'undefined': variable ranges overlap in a way the SDM leaves undefined. */
export type MtrrResolvedType = MtrrMemoryType | 'undefined';

/** The precedence rules, in the order the processor applies them; each with the words the explanation uses. */
export const MTRR_RULES = {
  'smrr': { sdm: 'SDM Vol. 3A, "System-Management Range Register Interface"', text: 'the SMRR range outside SMM: UC, writes are ignored and reads return a fixed value' },
  'smrr-smm': { sdm: 'SDM Vol. 3A, "System-Management Range Register Interface"', text: 'the SMRR range in SMM: the type in IA32_SMRR_PHYSBASE' },
  'disabled': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'MTRRs disabled (IA32_MTRR_DEF_TYPE.E = 0): UC for all of physical memory' },
  'fixed': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'below 1 MiB with the fixed ranges enabled (E = FE = 1): the fixed-range type' },
  'variable-one': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'one variable range matches: its type' },
  'variable-identical': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'several variable ranges of one type match: that type' },
  'variable-uc': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'several variable ranges match and one is UC: UC' },
  'variable-wt-wb': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'several variable ranges match, only WT and WB: WT' },
  'variable-undefined': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'variable ranges of these types overlap: the SDM leaves the behavior undefined' },
  'default': { sdm: 'SDM Vol. 3A, "MTRR Precedences"', text: 'no MTRR maps the address: the default type (IA32_MTRR_DEF_TYPE)' },
} as const;
export type MtrrRule = keyof typeof MTRR_RULES;

export interface MtrrTypeResult {
  readonly type: MtrrResolvedType;
  readonly rule: MtrrRule;
  /** The variable pairs whose range holds the address (for the variable rules; empty otherwise). */
  readonly matches: readonly number[];
  /** The fixed-range MTRR (index in FIXED_RANGE_MTRRS) and byte that decided, for rule 'fixed'. */
  readonly fixed?: { readonly index: number; readonly field: number };
}

export interface MtrrTypeOptions {
  /** The access is made in SMM (this machine has none; the default is false). */
  readonly smm?: boolean;
}

export function mtrrType(s: MtrrState, pa: bigint, opts: MtrrTypeOptions = {}): MtrrTypeResult {
  const none: readonly number[] = [];
  if (s.smrr !== null && pairMatchesSmrr(s.smrr, pa)) {
    return opts.smm === true ? { type: pairType(s.smrr) as MtrrMemoryType, rule: 'smrr-smm', matches: none } : { type: MEMORY_TYPE.UC, rule: 'smrr', matches: none };
  }
  if (!mtrrsEnabled(s)) return { type: MEMORY_TYPE.UC, rule: 'disabled', matches: none };
  if (fixedRangesEnabled(s) && pa < BigInt(FIXED_RANGES_END)) {
    const fixed = fixedFieldOf(Number(pa));
    return { type: fixedFieldType(s.fixed[fixed.index]!, fixed.field) as MtrrMemoryType, rule: 'fixed', matches: none, fixed };
  }
  const matches = s.variable.flatMap((p, n) => (pairMatches(p, s.maxPhysAddr, pa) ? [n] : []));
  if (matches.length === 0) return { type: defaultTypeOf(s) as MtrrMemoryType, rule: 'default', matches };
  return { ...combineVariableTypes(matches.map((n) => pairType(s.variable[n]!) as MtrrMemoryType)), matches };
}

/** Several matching variable ranges: which rule applies to their types. */
export function combineVariableTypes(types: readonly MtrrMemoryType[]): { type: MtrrResolvedType; rule: MtrrRule } {
  const first = types[0]!;
  if (types.length === 1) return { type: first, rule: 'variable-one' };
  if (types.every((t) => t === first)) return { type: first, rule: 'variable-identical' };
  if (types.includes(MEMORY_TYPE.UC)) return { type: MEMORY_TYPE.UC, rule: 'variable-uc' };
  if (types.every((t) => t === MEMORY_TYPE.WT || t === MEMORY_TYPE.WB)) return { type: MEMORY_TYPE.WT, rule: 'variable-wt-wb' };
  return { type: 'undefined', rule: 'variable-undefined' };
}

/** The SMRR compares bits 31:12 only: SMRAM lies below 4 GiB. */
function pairMatchesSmrr(p: MtrrPair, pa: bigint): boolean {
  return pa < 1n << 32n && pairMatches(p, 32, pa);
}

/** A run of addresses [base, end) that one MTRR result covers. */
export interface MtrrRun {
  readonly base: bigint;
  readonly end: bigint;
  readonly result: MtrrTypeResult;
}

/**
 * The MTRR types across [base, base + size) as runs of one type, lowest first: one run means one type covers the
 * range (a large page may map it); more mean a page there must be split (every MTRR boundary is 4-KByte aligned,
 * so 4-KByte pages always work). `size` is a power of two ≥ 4 KiB and `base` is aligned to it, like a page.
 * See SDM Vol. 3A, "Large Page Size Considerations" (a large page over several types is undefined behavior).
 */
export function mtrrRuns(s: MtrrState, base: bigint, size: bigint, opts: MtrrTypeOptions = {}): MtrrRun[] {
  const runs: MtrrRun[] = [];
  const visit = (b: bigint, n: bigint): void => {
    if (n === 0x1000n || uniformlyMapped(s, b, n)) {
      const result = mtrrType(s, b, opts);
      const last = runs[runs.length - 1];
      if (last !== undefined && last.end === b && last.result.type === result.type) runs[runs.length - 1] = { ...last, end: b + n };
      else runs.push({ base: b, end: b + n, result });
      return;
    }
    visit(b, n / 2n);
    visit(b + n / 2n, n / 2n);
  };
  visit(base, size);
  return runs;
}

/** Does every MTRR input treat all of [b, b + n) alike (each range covers all of it or none of it)? */
function uniformlyMapped(s: MtrrState, b: bigint, n: bigint): boolean {
  if (fixedRangesEnabled(s) && b < BigInt(FIXED_RANGES_END)) return false; // decided 4 KiB at a time
  const allOrNone = (p: MtrrPair, maskBits: bigint): boolean => {
    if (!pairValid(p)) return true;
    const mask = p.mask & maskBits;
    const above = mask & ~(n - 1n);
    if (((b ^ p.base) & above) !== 0n) return true; // misses all of it
    return (mask & (n - 1n)) === 0n; // hits all of it, unless the mask looks inside
  };
  if (s.smrr !== null && !(b >= 1n << 32n || allOrNone(s.smrr, 0xfffff000n))) return false;
  return s.variable.every((p) => allOrNone(p, physAddressBits(s.maxPhysAddr)));
}
