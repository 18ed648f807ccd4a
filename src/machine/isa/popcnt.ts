// POPCNT r, r/m (F3 0F B8 /r, 16/32/64-bit): the number of 1 bits of the source. ZF = the source was 0; OF SF AF
// CF PF are cleared. #UD when CPUID.01H:ECX.POPCNT[bit 23] = 0. Without F3H, 0F B8 is JMPE (Itanium only): #UD.
// See SDM Vol. 2B, "POPCNT—Return the Count of Number of Bits Set to 1".

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { ZF, STATUS_MASK } from '../lazy-flags.ts';
import { ud } from '../fault.ts';
import { readRM, scratch, setReg } from '../operands.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';

export function popcnt(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const f = CPUID_FEATURE.POPCNT;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) {
    throw ud('POPCNT: CPUID.01H:ECX.POPCNT[bit 23] = 0 on this processor', 'SDM Vol. 2B, "POPCNT—Return the Count of Number of Bits Set to 1"');
  }
  const size = d.opSize;
  const v = readRM(lp, d, size);
  const hi = size === 8 ? scratch.hi : 0;
  const n = bitCount(size === 2 ? v & 0xffff : v) + bitCount(hi);
  setReg(lp, d.reg, size, d.rex, n, 0);
  lp.lazy.op = 0;
  lp.rflagsRaw = (lp.rflagsRaw & ~STATUS_MASK) | (n === 0 ? ZF : 0);
  lp.rip = next;
  return false;
}

/** 1 bits of a 32-bit value (the classic SWAR sum). */
export function bitCount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
