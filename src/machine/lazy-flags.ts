// Lazy evaluation of the arithmetic status flags (CF PF AF ZF SF OF).
//
// Most instructions set the status flags and the next instruction overwrites them unread. So ADD/SUB/logic/
// INC/DEC record their operands and result, and a flag is computed only when something reads it (Jcc, SETcc,
// PUSHF, …). `FlagState.op === LAZY_NONE` means the flags live in `rflags` as plain bits.
// The formulas are the definitions in SDM Vol. 1, "Status Flags", and each instruction's "Flags Affected".

export const LAZY_NONE = 0;
export const LAZY_ADD = 1; // ADD, ADC (cin = carry in)
export const LAZY_SUB = 2; // SUB, SBB, CMP, NEG (cin = borrow in)
export const LAZY_LOGIC = 3; // AND, OR, XOR, TEST: CF = OF = 0
export const LAZY_INC = 4; // CF kept in rflags
export const LAZY_DEC = 5; // CF kept in rflags

export const CF = 1, PF = 4, AF = 16, ZF = 64, SF = 128, OF = 2048;
export const STATUS_MASK = CF | PF | AF | ZF | SF | OF;

/** PF is set when the low byte of the result has an even number of 1 bits. */
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let n = 0;
  for (let b = i; b; b >>= 1) n += b & 1;
  PARITY[i] = n % 2 === 0 ? PF : 0;
}
export function parity(lowByte: number): number {
  return PARITY[lowByte & 0xff]!;
}

/** The lazily kept operands: low and high 32-bit halves (high halves only matter for 64-bit operations). */
export class FlagState {
  op = LAZY_NONE;
  /** Operand size in bytes: 1, 2, 4, 8. */
  size = 4;
  res = 0;
  resHi = 0;
  dst = 0;
  dstHi = 0;
  src = 0;
  srcHi = 0;
  /** Carry/borrow in for ADC/SBB (0 or 1). */
  cin = 0;
}

/** Shift that moves an operand's sign bit to bit 31 (sizes 1, 2, 4). */
function topShift(size: number): number {
  return 32 - size * 8;
}

export function lazyCF(f: FlagState, rflags: number): boolean {
  switch (f.op) {
    case LAZY_ADD: {
      if (f.size === 8) {
        const r = f.resHi >>> 0, d = f.dstHi >>> 0;
        if (r !== d) return r < d;
        const rl = f.res >>> 0, dl = f.dst >>> 0;
        return f.cin ? rl <= dl : rl < dl;
      }
      const sh = topShift(f.size);
      const r = (f.res << sh) >>> 0, d = (f.dst << sh) >>> 0;
      return f.cin ? r <= d : r < d;
    }
    case LAZY_SUB: {
      if (f.size === 8) {
        const d = f.dstHi >>> 0, s = f.srcHi >>> 0;
        if (d !== s) return d < s;
        const dl = f.dst >>> 0, sl = f.src >>> 0;
        return f.cin ? dl <= sl : dl < sl;
      }
      const sh = topShift(f.size);
      const d = (f.dst << sh) >>> 0, s = (f.src << sh) >>> 0;
      return f.cin ? d <= s : d < s;
    }
    case LAZY_LOGIC:
      return false;
    default:
      return (rflags & CF) !== 0;
  }
}

export function lazyZF(f: FlagState, rflags: number): boolean {
  if (f.op === LAZY_NONE) return (rflags & ZF) !== 0;
  if (f.size === 8) return (f.res | f.resHi) === 0;
  return f.res << topShift(f.size) === 0;
}

export function lazySF(f: FlagState, rflags: number): boolean {
  if (f.op === LAZY_NONE) return (rflags & SF) !== 0;
  if (f.size === 8) return f.resHi < 0;
  return f.res << topShift(f.size) < 0;
}

export function lazyOF(f: FlagState, rflags: number): boolean {
  const sh = f.size === 8 ? 0 : topShift(f.size);
  const r = f.size === 8 ? f.resHi : f.res << sh;
  const d = f.size === 8 ? f.dstHi : f.dst << sh;
  const s = f.size === 8 ? f.srcHi : f.src << sh;
  switch (f.op) {
    case LAZY_ADD: return ((d ^ r) & (s ^ r)) < 0;
    case LAZY_SUB: return ((d ^ s) & (d ^ r)) < 0;
    case LAZY_LOGIC: return false;
    // INC overflows only into the most negative value, DEC only into the most positive.
    case LAZY_INC: return r === -0x80000000 && (f.size !== 8 || f.res === 0);
    case LAZY_DEC:
      return f.size === 8 ? r === 0x7fffffff && f.res === -1 : (f.res << sh) >> sh === 2 ** (f.size * 8 - 1) - 1;
    default: return (rflags & OF) !== 0;
  }
}

export function lazyPF(f: FlagState, rflags: number): boolean {
  if (f.op === LAZY_NONE) return (rflags & PF) !== 0;
  return PARITY[f.res & 0xff] !== 0;
}

export function lazyAF(f: FlagState, rflags: number): boolean {
  switch (f.op) {
    case LAZY_ADD: case LAZY_SUB: return ((f.dst ^ f.src ^ f.res) & 0x10) !== 0;
    case LAZY_LOGIC: return false;
    case LAZY_INC: return (f.res & 0xf) === 0;
    case LAZY_DEC: return (f.res & 0xf) === 0xf;
    default: return (rflags & AF) !== 0;
  }
}

/** All six status flags as RFLAGS bits. */
export function lazyStatus(f: FlagState, rflags: number): number {
  if (f.op === LAZY_NONE) return rflags & STATUS_MASK;
  return (lazyCF(f, rflags) ? CF : 0) | (lazyPF(f, rflags) ? PF : 0) | (lazyAF(f, rflags) ? AF : 0) |
    (lazyZF(f, rflags) ? ZF : 0) | (lazySF(f, rflags) ? SF : 0) | (lazyOF(f, rflags) ? OF : 0);
}

/**
 * Condition codes 0–15 (the low nibble of Jcc/SETcc/CMOVcc). See SDM Vol. 1, "Jcc", Table
 * "Conditional Jump Instructions" (O NO B AE E NE BE A S NS P NP L GE LE G).
 */
export function condition(cc: number, f: FlagState, rflags: number): boolean {
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = lazyOF(f, rflags); break;
    case 1: r = lazyCF(f, rflags); break;
    case 2: r = lazyZF(f, rflags); break;
    case 3: r = lazyCF(f, rflags) || lazyZF(f, rflags); break;
    case 4: r = lazySF(f, rflags); break;
    case 5: r = lazyPF(f, rflags); break;
    case 6: r = lazySF(f, rflags) !== lazyOF(f, rflags); break;
    default: r = lazyZF(f, rflags) || lazySF(f, rflags) !== lazyOF(f, rflags); break;
  }
  return (cc & 1) !== 0 ? !r : r;
}
