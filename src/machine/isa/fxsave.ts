// FXSAVE / FXRSTOR (0F AE /0, /1; with REX.W the FXSAVE64/FXRSTOR64 layout): save and restore the x87, MMX and
// SSE state in a 512-byte, 16-byte aligned area. See SDM Vol. 2A, "FXSAVE—Save x87 FPU, MMX Technology, and SSE
// State" and "FXRSTOR—Restore x87 FPU, MMX Technology, and SSE State" (table "Non-64-Bit-Mode Layout of FXSAVE and
// FXRSTOR Memory Region").
//
// The area: FCW (0), FSW (2), the abridged tag word (4: one bit per register, 1 = not empty), FOP (6), FPU IP
// (8) and DP (16) — 0 here, as no x87 arithmetic runs — MXCSR (24), MXCSR_MASK (28), ST0–ST7 (32, 16 bytes
// each), XMM0–XMM7 (160), and in 64-bit mode XMM8–XMM15 (288). Bytes 416–511 are neither written nor read.
//
// Exceptions, in order: #UD when CPUID.01H:EDX.FXSR = 0 (and for LOCK, refused by the decoder); #NM when
// CR0.TS = 1 or CR0.EM = 1; #GP(0) when the area is not 16-byte aligned; the segment and page faults of the
// access; FXRSTOR: #GP(0) when the MXCSR image sets a bit outside MXCSR_MASK. The whole area is checked
// before anything is stored or loaded.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CpuFault, gp, ud } from '../fault.ts';
import { linearAddress } from '../operands.ts';
import { ACCESS_READ, ACCESS_WRITE } from '../paging.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { MXCSR_MASK, type FpuState } from './fpu-state.ts';

const FXSAVE_SDM = 'SDM Vol. 2A, "FXSAVE—Save x87 FPU, MMX Technology, and SSE State"';
const FXRSTOR_SDM = 'SDM Vol. 2A, "FXRSTOR—Restore x87 FPU, MMX Technology, and SSE State"';
export const FXSAVE_AREA_SIZE = 512;
/** Offsets in the area. */
export const FX = { FCW: 0, FSW: 2, FTW: 4, FOP: 6, FIP: 8, FDP: 16, MXCSR: 24, MXCSR_MASK: 28, ST: 32, XMM: 160 } as const;

/** FXSAVE (`restore` false) or FXRSTOR (true). */
export function fxsaveRestore(lp: LogicalProcessor, d: Insn, next: number, restore: boolean): boolean {
  const name = restore ? 'FXRSTOR' : 'FXSAVE';
  const sdm = restore ? FXRSTOR_SDM : FXSAVE_SDM;
  const f = CPUID_FEATURE.FXSR;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) throw ud(`${name}: CPUID.01H:EDX.FXSR[bit 24] = 0 on this processor`, sdm);
  if (lp.cr0 & (CR0.TS | CR0.EM)) {
    throw new CpuFault(7, -1, `${name} with CR0.${lp.cr0 & CR0.EM ? 'EM' : 'TS'} = 1`, sdm);
  }
  const la = linearAddress(lp, d, FXSAVE_AREA_SIZE);
  if (la % 16 !== 0) throw gp(0, `${name} area at ${la.toString(16).toUpperCase()}H is not 16-byte aligned`, sdm);
  const xmmCount = lp.bits === 64 ? 16 : 8;
  const used = FX.XMM + xmmCount * 16;
  // Every page of the area must be accessible before the first byte moves.
  for (let off = 0; off < used; off += 4096 - ((la + off) & 4095)) lp.translate(la + off, restore ? ACCESS_READ : ACCESS_WRITE);
  lp.translate(la + used - 1, restore ? ACCESS_READ : ACCESS_WRITE);
  const fpu = lp.fpu;
  if (restore) {
    const mxcsr = lp.read32(la + FX.MXCSR) >>> 0;
    if ((mxcsr & ~MXCSR_MASK) !== 0) throw gp(0, `FXRSTOR with MXCSR image ${mxcsr.toString(16).toUpperCase()}H: bits outside MXCSR_MASK ${MXCSR_MASK.toString(16).toUpperCase()}H`, sdm);
    fpu.fcw = lp.read16(la + FX.FCW) & 0xffff;
    fpu.fsw = lp.read16(la + FX.FSW) & 0xffff;
    fpu.fop = lp.read16(la + FX.FOP) & 0x7ff;
    fpu.mxcsr = mxcsr;
    for (let i = 0; i < 8 * 16; i++) fpu.st[i] = lp.read8(la + FX.ST + i);
    for (let i = 0; i < xmmCount * 16; i++) fpu.xmm[i] = lp.read8(la + FX.XMM + i);
    fpu.ftw = fullTagWord(fpu, lp.read8(la + FX.FTW) & 0xff);
  } else {
    lp.write16(la + FX.FCW, fpu.fcw);
    lp.write16(la + FX.FSW, fpu.fsw);
    lp.write8(la + FX.FTW, abridgedTagWord(fpu.ftw));
    lp.write8(la + FX.FTW + 1, 0);
    lp.write16(la + FX.FOP, fpu.fop);
    for (let i = FX.FIP; i < FX.MXCSR; i += 4) lp.write32(la + i, 0); // FIP, FCS, FDP, FDS (or 64-bit FIP/FDP)
    lp.write32(la + FX.MXCSR, fpu.mxcsr | 0);
    lp.write32(la + FX.MXCSR_MASK, MXCSR_MASK);
    for (let i = 0; i < 8 * 16; i++) lp.write8(la + FX.ST + i, fpu.st[i]!);
    for (let i = 0; i < xmmCount * 16; i++) lp.write8(la + FX.XMM + i, fpu.xmm[i]!);
  }
  lp.rip = next;
  return false;
}

/** Bit i = 1 when physical register i is not empty (its 2-bit tag ≠ 11B). */
export function abridgedTagWord(ftw: number): number {
  let t = 0;
  for (let i = 0; i < 8; i++) if (((ftw >>> (2 * i)) & 3) !== 3) t |= 1 << i;
  return t;
}

/**
 * FXRSTOR rebuilds the full tag word: empty (11B) where the abridged bit is 0, else from the register's value —
 * zero (01B), special (10B: NaN, infinity, denormal, unnormal) or valid (00B). The registers are stored in
 * stack order (ST0 first) and tags are per physical register, so TOP (FSW bits 13:11) maps one to the other.
 * See SDM Vol. 1, "x87 FPU Tag Word".
 */
export function fullTagWord(fpu: FpuState, abridged: number): number {
  const top = (fpu.fsw >>> 11) & 7;
  let ftw = 0;
  for (let phys = 0; phys < 8; phys++) {
    let tag = 3;
    if (abridged & (1 << phys)) {
      const o = ((phys - top + 8) & 7) * 16;
      const r = fpu.st;
      const exponent = (r[o + 8]! | (r[o + 9]! << 8)) & 0x7fff;
      const integerBit = (r[o + 7]! & 0x80) !== 0;
      let mantissaZero = true;
      for (let i = 0; i < 8; i++) if (r[o + i] !== 0) mantissaZero = false;
      if (exponent === 0 && mantissaZero) tag = 1;
      else if (exponent === 0x7fff || exponent === 0 || !integerBit) tag = 2;
      else tag = 0;
    }
    ftw |= tag << (2 * phys);
  }
  return ftw;
}
