// SHLD / SHRD: double-precision shifts. The destination is shifted by `count` and the bits shifted in come from
// the source register (SHLD: its high bits, from the right; SHRD: its low bits, from the left).
// See SDM Vol. 2B, "SHLD—Double Precision Shift Left" and "SHRD—Double Precision Shift Right".
//
// Opcodes: 0F A4 /r ib (SHLD r/m, r, imm8), 0F A5 /r (SHLD r/m, r, CL), 0F AC /r ib and 0F AD /r (SHRD).
//
// Flags: the count is masked to 5 bits (6 with a 64-bit operand); a masked count of 0 changes nothing, flags
// included. CF = the last bit shifted out of the destination; SF ZF PF from the result. OF is defined for a
// count of 1 (a sign change); for larger counts the SDM leaves it undefined and VMX Lab keeps the same rule
// (sign of the result ≠ sign of the destination), as its SHL/SHR do (see alu.ts `shiftRotate`). AF is
// undefined and left 0, as for the other shifts.
//
// A 16-bit operand with a masked count of 17–31: the SDM leaves result and flags undefined. VMX Lab shifts the
// 48-bit concatenation destination:source:destination (the behaviour Bochs models for x86 processors), so the
// result is deterministic and, for counts up to 16, identical to the defined case.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CF, OF, STATUS_MASK } from '../lazy-flags.ts';
import { shl64, shr64, szp } from '../alu.ts';
import { getReg, readRM, readRMForWrite, scratch, writeRM } from '../operands.ts';
import { RCX } from '../../x86/registers.ts';

const TWO16 = 65536;
const TWO32 = 4294967296;

/** Execute SHLD/SHRD (`op` is the opcode key 1A4H/1A5H/1ACH/1ADH). */
export function shiftDouble(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const left = d.op === 0x1a4 || d.op === 0x1a5;
  const byCl = d.op === 0x1a5 || d.op === 0x1ad;
  const size = d.opSize;
  const raw = byCl ? lp.regLo[RCX]! & 0xff : d.imm & 0xff;
  const n = raw & (size === 8 ? 0x3f : 0x1f);
  // A shift by a nonzero count writes the destination back: a read-modify-write (see readRMForWrite).
  const dst = n !== 0 ? readRMForWrite(lp, d, size) : readRM(lp, d, size);
  const dstHi = scratch.hi;
  const la = scratch.la;
  const src = getReg(lp, d.reg, size, d.rex);
  const srcHi = scratch.hi;
  if (n !== 0) {
    const r = shiftDoubleValue(left, size, dst, dstHi, src, srcHi, n);
    const rh = scratch.hi;
    const cf = scratch.la;
    const signChanged = size === 8 ? (rh ^ dstHi) < 0 : (((r ^ dst) >>> (size * 8 - 1)) & 1) === 1;
    writeRM(lp, d, size, r, rh, la);
    lp.lazy.op = 0;
    lp.rflagsRaw = (lp.rflagsRaw & ~STATUS_MASK) | szp(size, r, rh) | (cf ? CF : 0) | (signChanged ? OF : 0);
  }
  lp.rip = next;
  return false;
}

/**
 * The shifted value for a masked count `n` (1–63): returns the low 32 bits, the high 32 bits in `scratch.hi`
 * and CF (0/1) in `scratch.la`. Sizes 2 and 4 take and return non-negative masked / int32 values.
 */
export function shiftDoubleValue(left: boolean, size: number, dst: number, dstHi: number, src: number, srcHi: number, n: number): number {
  if (size === 8) {
    let lo: number, hi: number, cf: number;
    if (left) {
      lo = shl64(dst, dstHi, n); hi = scratch.hi;
      lo |= shr64(src, srcHi, 64 - n); hi |= scratch.hi;
      const k = 64 - n; // the last bit shifted out is bit 64 − n of the destination
      cf = k < 32 ? (dst >>> k) & 1 : (dstHi >>> (k - 32)) & 1;
    } else {
      lo = shr64(dst, dstHi, n); hi = scratch.hi;
      lo |= shl64(src, srcHi, 64 - n); hi |= scratch.hi;
      const k = n - 1; // … bit n − 1 for SHRD
      cf = k < 32 ? (dst >>> k) & 1 : (dstHi >>> (k - 32)) & 1;
    }
    scratch.hi = hi;
    scratch.la = cf;
    return lo;
  }
  if (size === 4) {
    scratch.hi = 0;
    if (left) {
      scratch.la = (dst >>> (32 - n)) & 1;
      return (dst << n) | (src >>> (32 - n));
    }
    scratch.la = (dst >>> (n - 1)) & 1;
    return (dst >>> n) | (src << (32 - n));
  }
  // 16-bit: the 48-bit value dst:src:dst (exact in a double), shifted within 48 bits.
  const d16 = dst & 0xffff, s16 = src & 0xffff;
  const x = d16 * TWO32 + s16 * TWO16 + d16;
  scratch.hi = 0;
  if (left) {
    const y = (x % 2 ** (48 - n)) * 2 ** n; // the bits that stay, moved up: exact (below 2^48)
    scratch.la = Math.floor(x / 2 ** (48 - n)) & 1;
    return Math.floor(y / TWO32) & 0xffff;
  }
  scratch.la = Math.floor(x / 2 ** (n - 1)) & 1;
  return Math.floor(x / 2 ** n) & 0xffff;
}
