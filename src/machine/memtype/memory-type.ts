// The memory type of one access, from every input the processor uses, and which rule decided:
//   1. CR0.CD = 1 → UC (caching disabled for new fills).
//   2. Under EPT the MTRRs are ignored: with "ignore PAT" the EPT memory type; otherwise the EPT type combined with
//      the PAT type as the MTRR type would be.
//   3. Otherwise the MTRR type (mtrr-type.ts) combined with the PAT type (pat.ts) by the effective-type table.
// With paging off no leaf entry selects a PAT entry; this model then uses the MTRR (or EPT) type alone, as a PAT
// type of WB would. See SDM Vol. 3A, "Precedence of Cache Controls" and Vol. 3C, "EPT and Memory Typing".
import { MEMORY_TYPE, isMtrrMemoryType, type MemoryType, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { effectiveType, type Effective } from './effective.ts';
import { mtrrType, type MtrrTypeResult } from './mtrr-type.ts';
import type { MtrrState } from './mtrr-state.ts';
import { patSelection, patType, type PatSelection } from './pat.ts';

export interface MemoryTypeInput {
  /** The physical address (under EPT: the guest-physical address the EPT entry maps). */
  readonly pa: bigint;
  readonly cr0Cd: boolean;
  /** The LP's MTRRs (readMtrrState); null when it has none. Ignored under EPT. */
  readonly mtrrs: MtrrState | null;
  /** The leaf paging entry that mapped the access and IA32_PAT (the guest's, under EPT); null with paging off. */
  readonly paging: { readonly leaf: bigint; readonly largePage: boolean; readonly pat: bigint } | null;
  /** The EPT leaf's memory type (bits 5:3) and "ignore PAT" (bit 6) when the access was translated by EPT. */
  readonly ept?: { readonly memoryType: MtrrMemoryType; readonly ignorePat: boolean };
  readonly smm?: boolean;
}

export type MemoryTypeRule = 'cr0-cd' | 'ept-ignore-pat' | 'ept-and-pat' | 'mtrr-and-pat' | 'mtrr-undefined' | 'pat-reserved';

export interface MemoryTypeDecision {
  /** 'undefined': the SDM leaves the behavior undefined (overlapping MTRRs) or the PAT entry is reserved. */
  readonly type: MtrrMemoryType | 'undefined';
  readonly rule: MemoryTypeRule;
  /** The MTRR resolution (null under EPT or without MTRRs). */
  readonly mtrr: MtrrTypeResult | null;
  /** The type that plays the MTRR's role in the effective-type table: the MTRR type, or the EPT type under EPT. */
  readonly rangeType: MtrrMemoryType | 'undefined';
  /** The PAT entry selected and its type (null with paging off). */
  readonly pat: { readonly selection: PatSelection; readonly type: MemoryType | { reserved: number } } | null;
  /** The table cell used (absent when CR0.CD, "ignore PAT" or an undefined input decided). */
  readonly effective?: Effective;
}

export function resolveMemoryType(input: MemoryTypeInput): MemoryTypeDecision {
  const pat = input.paging === null ? null : (() => {
    const selection = patSelection(input.paging.leaf, input.paging.largePage);
    return { selection, type: patType(input.paging.pat, selection.index) };
  })();
  const mtrr = input.ept === undefined && input.mtrrs !== null ? mtrrType(input.mtrrs, input.pa, { smm: input.smm }) : null;
  // A processor without MTRRs leaves the page-level type in charge, as an MTRR type of WB would.
  const rangeType = input.ept?.memoryType ?? mtrr?.type ?? MEMORY_TYPE.WB;
  const base = { mtrr, rangeType, pat };
  if (input.cr0Cd) return { ...base, type: MEMORY_TYPE.UC, rule: 'cr0-cd' };
  if (input.ept?.ignorePat === true) return { ...base, type: input.ept.memoryType, rule: 'ept-ignore-pat' };
  const rule: MemoryTypeRule = input.ept !== undefined ? 'ept-and-pat' : 'mtrr-and-pat';
  if (rangeType === 'undefined') return { ...base, type: 'undefined', rule: 'mtrr-undefined' };
  const patValue = pat === null ? MEMORY_TYPE.WB : pat.type;
  if (typeof patValue !== 'number') return { ...base, type: 'undefined', rule: 'pat-reserved' };
  const effective = effectiveType(rangeType, patValue);
  return { ...base, type: effective.type, rule, effective };
}

/** The EPT memory type field of a leaf is an MTRR type (others are misconfigurations). */
export function asEptMemoryType(v: number): MtrrMemoryType | null {
  return isMtrrMemoryType(v) ? v : null;
}
