// Integer arithmetic with exact flags: the eight classic ALU operations, shifts/rotates, multiply, divide.
// Sizes are in bytes (1, 2, 4, 8). Values of size 1/2 are passed masked (non-negative), size 4 as int32,
// size 8 as (lo, hi) int32 halves; 64-bit results leave the high half in `scratch.hi`.
// See SDM Vol. 1, "Binary Arithmetic Instructions" and Vol. 2 entries for each instruction ("Flags Affected").

import { CpuFault } from './fault.ts';
import { AF, CF, OF, PF, SF, ZF, STATUS_MASK, LAZY_ADD, LAZY_DEC, LAZY_INC, LAZY_LOGIC, LAZY_SUB, lazyCF, parity } from './lazy-flags.ts';
import type { LogicalProcessor } from './lp.ts';
import { scratch } from './operands.ts';

export const SIZE_MASK = [0, 0xff, 0xffff, 0, -1, 0, 0, 0, -1];

/** ALU operation numbers = ModRM.reg of opcodes 80–83 and bits 5:3 of 00–3F. */
export const ALU_ADD = 0, ALU_OR = 1, ALU_ADC = 2, ALU_SBB = 3, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7;

function setLazy(lp: LogicalProcessor, op: number, size: number, a: number, ah: number, b: number, bh: number, r: number, rh: number, cin: number): void {
  const f = lp.lazy;
  f.op = op;
  f.size = size;
  f.dst = a;
  f.dstHi = ah;
  f.src = b;
  f.srcHi = bh;
  f.res = r;
  f.resHi = rh;
  f.cin = cin;
}

/** One of ADD OR ADC SBB AND SUB XOR CMP. Returns the result (CMP: the difference, not written back by callers). */
export function alu(lp: LogicalProcessor, op: number, size: number, a: number, ah: number, b: number, bh: number): number {
  const mask = SIZE_MASK[size]!;
  let r = 0, rh = 0, cin = 0;
  if (op === ALU_ADC || op === ALU_SBB) cin = lazyCF(lp.lazy, lp.rflagsRaw) ? 1 : 0;
  switch (op) {
    case ALU_ADC:
    case ALU_ADD:
      if (size === 8) {
        r = (a + b + cin) | 0;
        const carry = cin ? ((r >>> 0) <= (a >>> 0) ? 1 : 0) : ((r >>> 0) < (a >>> 0) ? 1 : 0);
        rh = (ah + bh + carry) | 0;
      } else r = (a + b + cin) & mask;
      setLazy(lp, LAZY_ADD, size, a, ah, b, bh, r, rh, cin);
      break;
    case ALU_SBB:
    case ALU_SUB:
    case ALU_CMP:
      if (size === 8) {
        r = (a - b - cin) | 0;
        const borrow = cin ? ((a >>> 0) <= (b >>> 0) ? 1 : 0) : ((a >>> 0) < (b >>> 0) ? 1 : 0);
        rh = (ah - bh - borrow) | 0;
      } else r = (a - b - cin) & mask;
      setLazy(lp, LAZY_SUB, size, a, ah, b, bh, r, rh, cin);
      break;
    case ALU_OR:
      r = (a | b) & mask; rh = ah | bh;
      setLazy(lp, LAZY_LOGIC, size, a, ah, b, bh, r, rh, 0);
      break;
    case ALU_AND:
      r = a & b & mask; rh = ah & bh;
      setLazy(lp, LAZY_LOGIC, size, a, ah, b, bh, r, rh, 0);
      break;
    default: // XOR
      r = (a ^ b) & mask; rh = ah ^ bh;
      setLazy(lp, LAZY_LOGIC, size, a, ah, b, bh, r, rh, 0);
      break;
  }
  scratch.hi = rh;
  return r;
}

/** INC/DEC: like ADD/SUB 1 but CF is preserved. */
export function incDec(lp: LogicalProcessor, dec: boolean, size: number, a: number, ah: number): number {
  // Freeze CF into rflagsRaw before the lazy state is replaced.
  const cf = lazyCF(lp.lazy, lp.rflagsRaw);
  lp.rflagsRaw = cf ? lp.rflagsRaw | CF : lp.rflagsRaw & ~CF;
  let r: number, rh = 0;
  if (size === 8) {
    r = (a + (dec ? -1 : 1)) | 0;
    rh = dec ? (a === 0 ? (ah - 1) | 0 : ah) : (r === 0 ? (ah + 1) | 0 : ah);
  } else r = (a + (dec ? -1 : 1)) & SIZE_MASK[size]!;
  setLazy(lp, dec ? LAZY_DEC : LAZY_INC, size, a, ah, 1, 0, r, rh, 0);
  scratch.hi = rh;
  return r;
}

/** Set the status flags eagerly (after materialising), replacing those in `mask`. */
export function setFlags(lp: LogicalProcessor, mask: number, bits: number): void {
  lp.materializeFlags();
  lp.rflagsRaw = (lp.rflagsRaw & ~mask) | (bits & mask);
}

/** SF, ZF, PF of a result (size-aware). */
export function szp(size: number, r: number, rh: number): number {
  let f = parity(r);
  if (size === 8) {
    if ((r | rh) === 0) f |= ZF;
    if (rh < 0) f |= SF;
  } else {
    const t = r << (32 - size * 8);
    if (t === 0) f |= ZF;
    if (t < 0) f |= SF;
  }
  return f;
}

// ---------------------------------------------------------------- 64-bit pair shifts (count 0..63)
export function shl64(lo: number, hi: number, n: number): number {
  if (n === 0) { scratch.hi = hi; return lo; }
  if (n >= 32) { scratch.hi = lo << (n - 32); return 0; }
  scratch.hi = (hi << n) | (lo >>> (32 - n));
  return lo << n;
}
export function shr64(lo: number, hi: number, n: number): number {
  if (n === 0) { scratch.hi = hi; return lo; }
  if (n >= 32) { scratch.hi = 0; return hi >>> (n - 32) | 0; }
  scratch.hi = hi >>> n | 0;
  return ((lo >>> n) | (hi << (32 - n))) | 0;
}
export function sar64(lo: number, hi: number, n: number): number {
  if (n === 0) { scratch.hi = hi; return lo; }
  if (n >= 32) { scratch.hi = hi >> 31; return hi >> (n - 32); }
  scratch.hi = hi >> n;
  return ((lo >>> n) | (hi << (32 - n))) | 0;
}
/** Bit `n` (0..63) of a value. */
function bit(lo: number, hi: number, n: number): number {
  return n < 32 ? (lo >>> n) & 1 : (hi >>> (n - 32)) & 1;
}
function msb(size: number, lo: number, hi: number): number {
  return size === 8 ? hi >>> 31 : (lo >>> (size * 8 - 1)) & 1;
}

/**
 * Group-2 shift/rotate (ModRM.reg: 0 ROL 1 ROR 2 RCL 3 RCR 4 SHL 5 SHR 6 SAL(=SHL) 7 SAR).
 * The count is masked to 5 bits (6 with 64-bit operands); a masked count of 0 changes nothing, flags included.
 * See SDM Vol. 2B, "SAL/SAR/SHL/SHR—Shift" and "RCL/RCR/ROL/ROR—Rotate".
 */
export function shiftRotate(lp: LogicalProcessor, kind: number, size: number, a: number, ah: number, count: number): number {
  const width = size * 8;
  const n = count & (size === 8 ? 0x3f : 0x1f);
  if (n === 0) {
    scratch.hi = ah;
    return a;
  }
  const mask = SIZE_MASK[size]!;
  let r = 0, rh = 0, cf = 0, of = 0;
  switch (kind) {
    case 0: // ROL
    case 1: { // ROR
      const k = n % width;
      if (size === 8) {
        const l = shl64(a, ah, kind === 0 ? k : (64 - k) % 64);
        const lh = scratch.hi;
        const rr = shr64(a, ah, kind === 0 ? (64 - k) % 64 : k);
        const rrh = scratch.hi;
        r = k === 0 ? a : l | rr;
        rh = k === 0 ? ah : lh | rrh;
      } else {
        const v = a & mask;
        r = k === 0 ? v : kind === 0 ? ((v << k) | (v >>> (width - k))) & mask : ((v >>> k) | (v << (width - k))) & mask;
      }
      if (kind === 0) {
        cf = r & 1;
        of = msb(size, r, rh) ^ cf;
      } else {
        cf = msb(size, r, rh);
        of = cf ^ (size === 8 ? (rh >>> 30) & 1 : (r >>> (width - 2)) & 1);
      }
      setFlags(lp, CF | OF, (cf ? CF : 0) | (of ? OF : 0));
      scratch.hi = rh;
      return r;
    }
    case 2: // RCL
    case 3: { // RCR: rotate through CF, (width + 1)-bit rotation
      const k = size === 1 ? n % 9 : size === 2 ? n % 17 : n;
      lp.materializeFlags();
      let c = lp.rflagsRaw & CF ? 1 : 0;
      r = a; rh = ah;
      for (let i = 0; i < k; i++) {
        if (kind === 2) {
          const out = msb(size, r, rh);
          if (size === 8) { rh = (rh << 1) | (r >>> 31); r = (r << 1) | c; } else r = ((r << 1) | c) & mask;
          c = out;
        } else {
          const out = r & 1;
          if (size === 8) { r = ((r >>> 1) | (rh << 31)) | 0; rh = (rh >>> 1) | (c << 31); } else r = ((r >>> 1) | (c << (width - 1))) & mask;
          c = out;
        }
      }
      cf = c;
      of = kind === 2 ? msb(size, r, rh) ^ cf : msb(size, r, rh) ^ (size === 8 ? (rh >>> 30) & 1 : (r >>> (width - 2)) & 1);
      if (k !== 0) setFlags(lp, CF | OF, (cf ? CF : 0) | (of ? OF : 0));
      scratch.hi = rh;
      return r;
    }
    case 4:
    case 6: // SHL/SAL
      if (size === 8) {
        cf = bit(a, ah, 64 - n);
        r = shl64(a, ah, n); rh = scratch.hi;
      } else {
        cf = n <= width ? ((a & mask) >>> (width - n)) & 1 : 0;
        r = n >= 32 ? 0 : (a << n) & mask;
      }
      of = msb(size, r, rh) ^ cf;
      break;
    case 5: // SHR
      if (size === 8) {
        cf = bit(a, ah, n - 1);
        r = shr64(a, ah, n); rh = scratch.hi;
      } else {
        const v = size === 4 ? a >>> 0 : a & mask;
        cf = n <= width ? (v >>> (n - 1)) & 1 : 0;
        r = n >= 32 ? 0 : (v >>> n) & mask;
      }
      of = msb(size, a, ah);
      break;
    default: { // SAR
      if (size === 8) {
        cf = bit(a, ah, n - 1);
        r = sar64(a, ah, n); rh = scratch.hi;
      } else {
        const v = (a << (32 - width)) >> (32 - width); // sign-extend
        cf = (v >> Math.min(n - 1, 31)) & 1;
        r = (v >> Math.min(n, 31)) & mask;
      }
      of = 0;
      break;
    }
  }
  // Shifts: CF, OF (defined for count 1; we keep the same formula for larger counts), SF ZF PF from the result;
  // AF is undefined (left 0).
  lp.lazy.op = 0;
  lp.rflagsRaw = (lp.rflagsRaw & ~STATUS_MASK) | szp(size, r, rh) | (cf ? CF : 0) | (of ? OF : 0);
  scratch.hi = rh;
  return r;
}

// ---------------------------------------------------------------- multiply and divide
/** Unsigned 32×32 → 64 product (lo returned, hi in scratch.hi). */
export function mulu32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  scratch.hi = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
  return ((mid << 16) | (p00 & 0xffff)) | 0;
}

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
function fromBig(v: bigint): number {
  scratch.hi = Number((v >> 32n) & 0xffffffffn) | 0;
  return Number(v & 0xffffffffn) | 0;
}

/**
 * MUL/IMUL with one operand: rDX:rAX = rAX × src. CF = OF = the upper half is significant.
 * SF ZF PF are undefined (we set them from the low half), AF undefined (0).
 * Returns [low, high] halves as lo/hi pairs via the callbacks' registers — handled by the caller.
 */
export function multiply(signed: boolean, size: number, a: number, ah: number, b: number, bh: number): { lo: bigint; hi: bigint; overflow: boolean } {
  const bits = BigInt(size * 8);
  let x = size === 8 ? toBig(a, ah) : BigInt(size === 4 ? a >>> 0 : a);
  let y = size === 8 ? toBig(b, bh) : BigInt(size === 4 ? b >>> 0 : b);
  if (signed) {
    x = BigInt.asIntN(Number(bits), x);
    y = BigInt.asIntN(Number(bits), y);
  }
  const p = x * y;
  const lo = BigInt.asUintN(Number(bits), p);
  const hi = BigInt.asUintN(Number(bits), p >> bits);
  const overflow = signed ? BigInt.asIntN(Number(bits), lo) !== p : hi !== 0n;
  return { lo, hi, overflow };
}

/** DIV/IDIV: (hi:lo dividend) / divisor → quotient, remainder; #DE on zero or overflow. See SDM Vol. 2A, "DIV—Unsigned Divide". */
export function divide(signed: boolean, size: number, dividend: bigint, divisor: bigint): { q: bigint; r: bigint } {
  const bits = size * 8;
  let n = BigInt.asUintN(bits * 2, dividend);
  let d = BigInt.asUintN(bits, divisor);
  if (d === 0n) throw new CpuFault(0, -1, 'division by zero', 'SDM Vol. 2A, "DIV—Unsigned Divide"');
  if (signed) {
    n = BigInt.asIntN(bits * 2, n);
    d = BigInt.asIntN(bits, d);
  }
  const q = n / d; // BigInt division truncates toward zero, as IDIV does
  const r = n % d;
  const fits = signed ? q >= -(1n << BigInt(bits - 1)) && q < 1n << BigInt(bits - 1) : q < 1n << BigInt(bits);
  if (!fits) throw new CpuFault(0, -1, `quotient does not fit in ${bits} bits`, signed ? 'SDM Vol. 2A, "IDIV—Signed Divide"' : 'SDM Vol. 2A, "DIV—Unsigned Divide"');
  return { q: BigInt.asUintN(bits, q), r: BigInt.asUintN(bits, r) };
}

export { toBig, fromBig, AF, CF, OF, PF, SF, ZF, LAZY_LOGIC };
