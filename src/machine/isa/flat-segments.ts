// The fixed CS and SS that SYSCALL/SYSRET and SYSENTER/SYSEXIT load: only the selector comes from an MSR; the
// descriptor caches get flat 4-GByte values and the GDT is never read. Software must make its GDT entries match.
// See SDM Vol. 2B, "SYSCALL—Fast System Call" (Operation) and Vol. 3A, "Fast System Calls in 64-Bit Mode".

import type { LogicalProcessor } from '../lp.ts';
import { AR } from '../../x86/segments.ts';
import { CS, SS } from '../../x86/registers.ts';

/** Limit FFFFFH with 4-KByte granularity: 4 GBytes, as a byte limit. */
const FLAT_LIMIT = 0xffffffff;
/** Type 11 (execute/read, accessed), S = 1, P = 1, G = 1. */
const CODE_AR = AR.CODE | AR.RW | AR.ACCESSED | AR.S | AR.P | AR.G;
/** Type 3 (read/write, accessed), S = 1, P = 1, B = 1, G = 1. */
const STACK_AR = AR.RW | AR.ACCESSED | AR.S | AR.P | AR.DB | AR.G;

/**
 * Load CS (64-bit code when `long`, else 32-bit) and SS with DPL `dpl`, base 0 and a 4-GByte limit. The CPL
 * becomes `dpl` (loading SS sets CPL = SS.DPL); the caller has already cleared RFLAGS.VM where the SDM does.
 */
export function loadFlatCsSs(lp: LogicalProcessor, csSelector: number, ssSelector: number, dpl: 0 | 3, long: boolean): void {
  const dplBits = dpl << AR.DPL_SHIFT;
  lp.setSegmentAt(CS, csSelector & 0xffff, 0, FLAT_LIMIT, CODE_AR | dplBits | (long ? AR.L : AR.DB));
  lp.setSegmentAt(SS, ssSelector & 0xffff, 0, FLAT_LIMIT, STACK_AR | dplBits);
}

/** A 64-bit value as a signed number (exact for canonical addresses, the convention for linear addresses). */
export function signedAddress(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

/** Write a signed-number address to a 64-bit register's two halves. */
export function setReg64(lp: LogicalProcessor, r: number, v: number): void {
  const hi = Math.floor(v / 4294967296);
  lp.regHi[r] = hi | 0;
  lp.regLo[r] = (v - hi * 4294967296) | 0;
}

/** A 64-bit register's value as a signed number. */
export function getReg64(lp: LogicalProcessor, r: number): number {
  return lp.regHi[r]! * 4294967296 + (lp.regLo[r]! >>> 0);
}

const CANONICAL_LIMIT = 2 ** 47;
/** Canonical with 48-bit linear addresses. See SDM Vol. 1, "Canonical Addressing". */
export function isCanonical(v: number): boolean {
  return v >= -CANONICAL_LIMIT && v < CANONICAL_LIMIT;
}
