// Values in failure messages, written the way the notes write them: hex, and the names of the bits that are
// set — "CR0 = 0x80050013 (PE MP ET WP AM PG)" — rather than vitest's decimal ("expected 2147811347n …").
import { CR0, CR4 } from '../../src/x86/control-registers.ts';
import type { LoadResult } from '../../src/kernel/kernel.ts';
import { RFLAGS } from '../../src/x86/flags.ts';

/** `0x`-prefixed hex; anything that is not a number (a learner's `undefined`) is shown as it is. */
export const hex = (v: unknown): string => (typeof v === 'number' || typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v));

/** The names of the one-bit masks of `table` that are set in `value`, e.g. "PE NE PG"; "none" if none is. */
export function setBits(value: number | bigint, table: Readonly<Record<string, number>>): string {
  if (typeof value !== 'number' && typeof value !== 'bigint') return String(value);
  const v = BigInt(value);
  const names = Object.entries(table)
    .filter(([, mask]) => Number.isInteger(Math.log2(mask)) && (v & BigInt(mask)) !== 0n)
    .map(([name]) => name);
  return names.length === 0 ? 'none' : names.join(' ');
}

/** A control register or RFLAGS value with its named bits: "0x80050033 (PE MP ET NE WP AM PG)". */
export const showCr0 = (v: number | bigint): string => `${hex(v)} (${setBits(v, CR0)})`;
export const showCr4 = (v: number | bigint): string => `${hex(v)} (${setBits(v, CR4)})`;
export const showRflags = (v: number | bigint): string => `${hex(v)} (${setBits(v, { ...RFLAGS, FIXED1: 0 })})`;

/** An insmod/rmmod result as a learner reads it: "ok", or the error (an oops report is in dmesg, which explain() shows). */
export function showLoad(r: LoadResult): string {
  if (r.ok) return 'ok';
  return r.oops === undefined ? r.message : `${r.message} — ${r.oops.cause} (the whole report is in dmesg)`;
}

/** A learner's result as one line of JSON, bigints in hex (plain JSON.stringify throws on a bigint). */
export function showValue(v: unknown): string {
  return JSON.stringify(v, (_key, x: unknown) => (typeof x === 'bigint' ? hex(x) : x)) ?? String(v);
}
