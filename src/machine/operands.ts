// Operand access for the interpreter: registers by size, effective addresses, segmentation checks, stack.
// See SDM Vol. 1, "Operand Addressing" and "Segmentation in IA-32e Mode"; Vol. 3A, "Canonical Addressing".

import { AR } from '../x86/segments.ts';
import { RSP, SS } from '../x86/registers.ts';
import { CpuFault } from './fault.ts';
import type { Insn } from './insn.ts';
import type { LogicalProcessor } from './lp.ts';
import { ACCESS_WRITE } from './paging.ts';
import { TLB_MASK } from './tlb.ts';
import { intelHex } from '../util/hex.ts';

export const TWO32 = 4294967296;
const CANON_LIMIT = 2 ** 47;

/** High half of the last 64-bit value an operand helper returned. */
export const scratch = { hi: 0, la: 0 };

// ---------------------------------------------------------------- registers
export function getReg(lp: LogicalProcessor, r: number, size: number, rex: number): number {
  switch (size) {
    case 1:
      if (rex === 0 && r >= 4 && r < 8) return (lp.regLo[r - 4]! >>> 8) & 0xff;
      return lp.regLo[r]! & 0xff;
    case 2:
      return lp.regLo[r]! & 0xffff;
    case 4:
      return lp.regLo[r]!;
    default:
      scratch.hi = lp.regHi[r]!;
      return lp.regLo[r]!;
  }
}

/** Write a register. 32-bit writes zero the upper half; 8/16-bit writes merge. See SDM Vol. 1, "General-Purpose Registers in 64-Bit Mode". */
export function setReg(lp: LogicalProcessor, r: number, size: number, rex: number, lo: number, hi: number): void {
  switch (size) {
    case 1:
      if (rex === 0 && r >= 4 && r < 8) lp.regLo[r - 4] = (lp.regLo[r - 4]! & ~0xff00) | ((lo & 0xff) << 8);
      else lp.regLo[r] = (lp.regLo[r]! & ~0xff) | (lo & 0xff);
      return;
    case 2:
      lp.regLo[r] = (lp.regLo[r]! & ~0xffff) | (lo & 0xffff);
      return;
    case 4:
      lp.regLo[r] = lo;
      lp.regHi[r] = 0;
      return;
    default:
      lp.regLo[r] = lo;
      lp.regHi[r] = hi;
  }
}

/** A register's value as a signed JS number (exact when |value| < 2^53). */
export function regNumber(lp: LogicalProcessor, r: number): number {
  return lp.regHi[r]! * TWO32 + (lp.regLo[r]! >>> 0);
}

// ---------------------------------------------------------------- effective and linear addresses
/** Effective address (offset in the segment), truncated to the address size. */
export function effectiveAddress(lp: LogicalProcessor, d: Insn): number {
  let off: number;
  if (d.addrSize === 8) {
    if (d.ripRel) return lp.rip + d.len + d.disp;
    off = d.disp;
    // Double arithmetic is exact while every register is below 2^48 in magnitude (high half within ±2^16):
    // the sum stays below 2^53. Otherwise compute modulo 2^64 exactly.
    if (d.base >= 0) {
      const h = lp.regHi[d.base]!;
      if (((h + 0x10000) >>> 0) >= 0x20000) return exactAddress(lp, d);
      off += h * TWO32 + (lp.regLo[d.base]! >>> 0);
    }
    if (d.index >= 0) {
      const h = lp.regHi[d.index]!;
      if (((h + 0x10000) >>> 0) >= 0x20000) return exactAddress(lp, d);
      off += (h * TWO32 + (lp.regLo[d.index]! >>> 0)) * (1 << d.scale);
    }
    return off;
  }
  if (d.ripRel) return (lp.rip + d.len + d.disp) >>> 0; // 67H + RIP-relative: 32-bit
  off = d.disp;
  if (d.base >= 0) off += lp.regLo[d.base]! >>> 0;
  if (d.index >= 0) off += (lp.regLo[d.index]! >>> 0) * (1 << d.scale);
  return d.addrSize === 4 ? off >>> 0 : off & 0xffff;
}

/**
 * 64-bit wrap-around for huge register values (rare): exact arithmetic, result as a signed number. Results of
 * 2^53 or more are not exact as numbers, but such addresses are non-canonical anyway (LEA uses effectiveAddressBig).
 */
function exactAddress(lp: LogicalProcessor, d: Insn): number {
  return Number(BigInt.asIntN(64, effectiveAddressBig(lp, d)));
}

/** The effective address modulo 2^64, exactly (LEA with huge values). */
export function effectiveAddressBig(lp: LogicalProcessor, d: Insn): bigint {
  let v = BigInt(d.ripRel ? lp.rip + d.len + d.disp : d.disp);
  if (!d.ripRel && d.base >= 0) v += lp.getGpr(d.base);
  if (!d.ripRel && d.index >= 0) v += lp.getGpr(d.index) << BigInt(d.scale);
  return BigInt.asUintN(d.addrSize * 8, v);
}

/**
 * Linear address of the memory operand, with the segmentation checks: canonical form in 64-bit mode,
 * limit and usability outside it. Faults are #SS(0) for stack-segment references, #GP(0) otherwise.
 */
export function linearAddress(lp: LogicalProcessor, d: Insn, size: number): number {
  const off = effectiveAddress(lp, d);
  return segmentLinear(lp, d.seg, off, size);
}

export function segmentLinear(lp: LogicalProcessor, seg: number, off: number, size: number): number {
  if (lp.bits === 64) {
    const la = lp.segEffBase[seg]! + off;
    if (la >= CANON_LIMIT || la < -CANON_LIMIT) {
      throw new CpuFault(seg === SS ? 12 : 13, 0, `non-canonical address ${intelHex(la)}`, 'SDM Vol. 3A, "Canonical Addressing"');
    }
    return la;
  }
  const ar = lp.segAr[seg]!;
  if (lp.cr0 & 1 && ar & AR.UNUSABLE) {
    throw new CpuFault(seg === SS ? 12 : 13, 0, 'memory access through a null segment register', 'SDM Vol. 3A, "Segment Selectors"');
  }
  // Expand-up segments: every byte must be within the limit. See SDM Vol. 3A, "Limit Checking".
  if (!(ar & AR.S && !(ar & AR.CODE) && ar & AR.DC) && off + size - 1 > lp.segLimit[seg]!) {
    throw new CpuFault(seg === SS ? 12 : 13, 0, `offset ${intelHex(off)} beyond segment limit ${intelHex(lp.segLimit[seg]!)}`, 'SDM Vol. 3A, "Limit Checking"');
  }
  return (lp.segBase[seg]! + off) >>> 0;
}

// ---------------------------------------------------------------- memory by size
export function readMem(lp: LogicalProcessor, la: number, size: number): number {
  switch (size) {
    case 1: return lp.read8(la);
    case 2: return lp.read16(la);
    case 4: return lp.read32(la);
    default: {
      const lo = lp.read64(la);
      scratch.hi = lp.hi;
      return lo;
    }
  }
}
export function writeMem(lp: LogicalProcessor, la: number, size: number, lo: number, hi: number): void {
  switch (size) {
    case 1: lp.write8(la, lo); return;
    case 2: lp.write16(la, lo); return;
    case 4: lp.write32(la, lo); return;
    default: lp.write64(la, lo, hi);
  }
}

/** Read the r/m operand. The linear address (memory case) is left in scratch.la for a later write. */
export function readRM(lp: LogicalProcessor, d: Insn, size: number): number {
  if (!d.mem) return getReg(lp, d.rm, size, d.rex);
  const la = linearAddress(lp, d, size);
  scratch.la = la;
  return readMem(lp, la, size);
}
/**
 * Read the r/m operand of a read-modify-write instruction (ADD [m], r; INC; XCHG; CMPXCHG; …) as readRM does, but
 * translated as a write: the processor reads such an operand with write intent, so a page fault reports W/R = 1
 * and an EPT violation "data write" even when the read is what finds the page missing. (Bit 0, "data read", is
 * implementation-specific for a read-modify-write; this processor leaves it 0.) See SDM Vol. 3A, "Interrupt 14—
 * Page-Fault Exception (#PF)" and Vol. 3C, "Exit Qualification for EPT Violations".
 */
export function readRMForWrite(lp: LogicalProcessor, d: Insn, size: number): number {
  if (!d.mem) return getReg(lp, d.rm, size, d.rex);
  // A LOCK-prefixed read-modify-write drains the write-combining buffers first (SDM Vol. 3A, "Buffering of Write
  // Combining Memory Locations"). The block compiler never compiles locked instructions.
  if (d.lock) lp.caches.fence();
  const la = linearAddress(lp, d, size);
  scratch.la = la;
  return readMemForWrite(lp, la, size);
}

/** readMem with write intent (see readRMForWrite): the TLB fast path needs a writable entry. */
export function readMemForWrite(lp: LogicalProcessor, la: number, size: number): number {
  const t = lp.tlb;
  const i = (la >>> 12) & TLB_MASK;
  const off = la & 0xfff;
  if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (4 << lp.user)) !== 0 && off <= 4096 - size) {
    const v = t.views[i];
    if (v !== null) {
      switch (size) {
        case 1: return v!.getUint8(off);
        case 2: return v!.getUint16(off, true);
        case 4: return v!.getInt32(off, true);
        default:
          scratch.hi = v!.getInt32(off + 4, true);
          return v!.getInt32(off, true);
      }
    }
  }
  const lo = lp.slowRead(la, size, ACCESS_WRITE, lp.user);
  if (size === 8) scratch.hi = lp.hi;
  return lo;
}

/** Write the r/m operand; for memory, `la` from a previous readRM (or -1 to compute it now). */
export function writeRM(lp: LogicalProcessor, d: Insn, size: number, lo: number, hi: number, la: number): void {
  if (!d.mem) {
    setReg(lp, d.rm, size, d.rex, lo, hi);
    return;
  }
  writeMem(lp, la === -1 ? linearAddress(lp, d, size) : la, size, lo, hi);
}

// ---------------------------------------------------------------- stack
/** Stack-pointer width: 8 in 64-bit mode, else SS.B ? 4 : 2. See SDM Vol. 1, "Address-Size Attributes for Stack Accesses". */
export function stackAddrSize(lp: LogicalProcessor): number {
  if (lp.bits === 64) return 8;
  return lp.segAr[SS]! & AR.DB ? 4 : 2;
}

export function push(lp: LogicalProcessor, size: number, lo: number, hi: number): void {
  const sas = stackAddrSize(lp);
  if (sas === 8) {
    const rsp = regNumber(lp, RSP) - size;
    if (rsp >= CANON_LIMIT || rsp < -CANON_LIMIT) throw new CpuFault(12, 0, 'non-canonical stack address', 'SDM Vol. 3A, "Canonical Addressing"');
    writeMem(lp, rsp, size, lo, hi);
    lp.regLo[RSP] = rsp >>> 0 | 0;
    lp.regHi[RSP] = Math.floor(rsp / TWO32) | 0;
    return;
  }
  const sp = sas === 4 ? ((lp.regLo[RSP]! >>> 0) - size) >>> 0 : ((lp.regLo[RSP]! & 0xffff) - size) & 0xffff;
  writeMem(lp, segmentLinear(lp, SS, sp, size), size, lo, hi);
  if (sas === 4) lp.regLo[RSP] = sp | 0;
  else lp.regLo[RSP] = (lp.regLo[RSP]! & ~0xffff) | sp;
}

/** Read the value at the top of the stack (+ `offset` bytes) without popping. */
export function peek(lp: LogicalProcessor, size: number, offset: number): number {
  const sas = stackAddrSize(lp);
  if (sas === 8) {
    const la = regNumber(lp, RSP) + offset;
    if (la >= CANON_LIMIT || la < -CANON_LIMIT) throw new CpuFault(12, 0, 'non-canonical stack address', 'SDM Vol. 3A, "Canonical Addressing"');
    return readMem(lp, la, size);
  }
  const sp = sas === 4 ? ((lp.regLo[RSP]! >>> 0) + offset) >>> 0 : ((lp.regLo[RSP]! & 0xffff) + offset) & 0xffff;
  return readMem(lp, segmentLinear(lp, SS, sp, size), size);
}

export function adjustSp(lp: LogicalProcessor, delta: number): void {
  const sas = stackAddrSize(lp);
  if (sas === 8) {
    const rsp = regNumber(lp, RSP) + delta;
    lp.regLo[RSP] = rsp >>> 0 | 0;
    lp.regHi[RSP] = Math.floor(rsp / TWO32) | 0;
  } else if (sas === 4) lp.regLo[RSP] = (lp.regLo[RSP]! + delta) | 0;
  else lp.regLo[RSP] = (lp.regLo[RSP]! & ~0xffff) | ((lp.regLo[RSP]! + delta) & 0xffff);
}

export function pop(lp: LogicalProcessor, size: number): number {
  const lo = peek(lp, size, 0);
  const hi = scratch.hi;
  adjustSp(lp, size);
  scratch.hi = hi;
  return lo;
}
