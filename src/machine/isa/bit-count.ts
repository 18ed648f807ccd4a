// TZCNT / LZCNT: F3 0F BC and F3 0F BD. On a processor without the feature the F3H prefix is ignored and the
// bytes execute as BSF / BSR (older processors decode them that way), so which instruction runs depends on the
// model's CPUID: TZCNT needs CPUID.(EAX=07H,ECX=0):EBX.BMI1[bit 3], LZCNT needs CPUID.80000001H:ECX.LZCNT[bit 5].
// See SDM Vol. 2B, "TZCNT—Count the Number of Trailing Zero Bits" and Vol. 2A, "LZCNT—Count the Number of
// Leading Zero Bits".
//
// Result: the number of trailing (leading) zero bits; the operand size in bits when the source is 0.
// Flags: CF = the source was 0, ZF = the result is 0. OF SF PF AF are undefined; VMX Lab leaves them unchanged,
// as its BSF/BSR do for their undefined flags.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CF, ZF } from '../lazy-flags.ts';
import { readRM, scratch, setReg } from '../operands.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';

/** True when F3 0F BC (`op` 1BCH) is TZCNT, or F3 0F BD (1BDH) is LZCNT, on this LP's model. */
export function zeroCountEnabled(lp: LogicalProcessor, op: number): boolean {
  const f = op === 0x1bc ? CPUID_FEATURE.BMI1 : CPUID_FEATURE.LZCNT;
  return cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit);
}

/** Execute TZCNT (op 1BCH) or LZCNT (op 1BDH). */
export function zeroCount(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const size = d.opSize;
  const v = readRM(lp, d, size);
  const hi = size === 8 ? scratch.hi : 0;
  const lo = size === 2 ? v & 0xffff : v;
  const n = d.op === 0x1bc ? trailingZeros(size, lo, hi) : leadingZeros(size, lo, hi);
  setReg(lp, d.reg, size, d.rex, n, 0);
  lp.materializeFlags();
  lp.rflagsRaw = (lp.rflagsRaw & ~(CF | ZF)) | (n === size * 8 ? CF : 0) | (n === 0 ? ZF : 0);
  lp.rip = next;
  return false;
}

/** Trailing zero bits of a `size`-byte value (lo, hi halves), `size` × 8 for 0. */
export function trailingZeros(size: number, lo: number, hi: number): number {
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  if (size === 8 && hi !== 0) return 63 - Math.clz32(hi & -hi);
  return size * 8;
}

/** Leading zero bits of a `size`-byte value (lo, hi halves), `size` × 8 for 0. */
export function leadingZeros(size: number, lo: number, hi: number): number {
  if (size === 8) return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  return Math.clz32(lo) - (32 - size * 8);
}
