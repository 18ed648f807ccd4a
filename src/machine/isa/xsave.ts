// XSAVE / XRSTOR (0F AE /4, /5; REX.W: XSAVE64/XRSTOR64), standard (non-compacted) form, for the state components
// VMX Lab has: x87 (0) and SSE (1); AVX (2) may be enabled in XCR0, but the machine keeps no upper YMM halves, so
// that component is always in its initial configuration (saved as zeros, XSTATE_BV[2] = 0; a loaded image is
// dropped). The models report no XSAVEOPT/XSAVEC/XSAVES (CPUID.(EAX=0DH,ECX=1) = 0), so those stay #UD.
// See SDM Vol. 1, "Managing State Using the XSAVE Feature Set" ("Operation of XSAVE", "Standard Form of XRSTOR"),
// and Vol. 2C, "XSAVE—Save Processor Extended States" and "XRSTOR—Restore Processor Extended States".
//
// RFBM (requested-feature bitmap) = XCR0 AND EDX:EAX. The legacy region (bytes 0–511) has the FXSAVE layout; the
// XSAVE header follows at 512 (XSTATE_BV, then XCOMP_BV, then 48 reserved bytes); AVX state at 576.
// Exceptions, in order: #UD without CPUID.01H:ECX.XSAVE or with CR4.OSXSAVE = 0 (and for LOCK); #NM with CR0.TS = 1;
// #GP(0) when the area is not 64-byte aligned; the access's own faults; XRSTOR: #GP(0) for a header bit
// XCR0 does not allow, a non-zero XCOMP_BV or reserved header byte, or MXCSR bits outside MXCSR_MASK.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CpuFault, gp, ud } from '../fault.ts';
import { linearAddress } from '../operands.ts';
import { ACCESS_READ, ACCESS_WRITE } from '../paging.ts';
import { CR0, CR4, XCR0 } from '../../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { RAX } from '../../x86/registers.ts';
import { FCW_INIT, MXCSR_MASK, type FpuState } from './fpu-state.ts';
import { FX, abridgedTagWord, fullTagWord } from './fxsave.ts';

const XSAVE_SDM = 'SDM Vol. 2C, "XSAVE—Save Processor Extended States"';
const XRSTOR_SDM = 'SDM Vol. 2C, "XRSTOR—Restore Processor Extended States"';
/** XSAVE header offsets. See SDM Vol. 1, "XSAVE Header". */
export const XSAVE_HEADER = { XSTATE_BV: 512, XCOMP_BV: 520, END: 576 } as const;
/** Offset and size of the AVX component in the standard format (CPUID.(EAX=0DH,ECX=2)). */
export const XSAVE_AVX = { OFFSET: 576, SIZE: 256 } as const;

export function xsaveRestore(lp: LogicalProcessor, d: Insn, next: number, restore: boolean): boolean {
  const name = restore ? 'XRSTOR' : 'XSAVE';
  const sdm = restore ? XRSTOR_SDM : XSAVE_SDM;
  const f = CPUID_FEATURE.XSAVE;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) throw ud(`${name}: CPUID.01H:ECX.XSAVE[bit 26] = 0 on this processor`, sdm);
  if (!(lp.cr4 & CR4.OSXSAVE)) throw ud(`${name} with CR4.OSXSAVE = 0`, sdm);
  if (lp.cr0 & CR0.TS) throw new CpuFault(7, -1, `${name} with CR0.TS = 1`, sdm);
  const rfbm = lp.xcr0 & lp.regLo[RAX]!; // XCR0 has no bits above 31 here, so EDX does not matter
  const size = rfbm & XCR0.AVX ? XSAVE_AVX.OFFSET + XSAVE_AVX.SIZE : XSAVE_HEADER.END;
  const la = linearAddress(lp, d, size);
  if (la % 64 !== 0) throw gp(0, `${name} area at ${la.toString(16).toUpperCase()}H is not 64-byte aligned`, sdm);
  for (let off = 0; off < size; off += 4096 - ((la + off) & 4095)) lp.translate(la + off, restore ? ACCESS_READ : ACCESS_WRITE);
  lp.translate(la + size - 1, restore ? ACCESS_READ : ACCESS_WRITE);
  const xmmCount = lp.bits === 64 ? 16 : 8;
  const fpu = lp.fpu;
  const mxcsrToo = (rfbm & (XCR0.SSE | XCR0.AVX)) !== 0;
  if (!restore) {
    if (rfbm & XCR0.X87) {
      lp.write16(la + FX.FCW, fpu.fcw);
      lp.write16(la + FX.FSW, fpu.fsw);
      lp.write8(la + FX.FTW, abridgedTagWord(fpu.ftw));
      lp.write8(la + FX.FTW + 1, 0);
      lp.write16(la + FX.FOP, fpu.fop);
      for (let i = FX.FIP; i < FX.MXCSR; i += 4) lp.write32(la + i, 0);
      for (let i = 0; i < 8 * 16; i++) lp.write8(la + FX.ST + i, fpu.st[i]!);
    }
    if (mxcsrToo) {
      lp.write32(la + FX.MXCSR, fpu.mxcsr | 0);
      lp.write32(la + FX.MXCSR_MASK, MXCSR_MASK);
    }
    if (rfbm & XCR0.SSE) for (let i = 0; i < xmmCount * 16; i++) lp.write8(la + FX.XMM + i, fpu.xmm[i]!);
    if (rfbm & XCR0.AVX) for (let i = 0; i < XSAVE_AVX.SIZE; i += 4) lp.write32(la + XSAVE_AVX.OFFSET + i, 0);
    // XSTATE_BV[i] ← XINUSE[i] for i in RFBM; its other bits, and the rest of the header, are not written.
    const inUse = (x87InUse(fpu) ? XCR0.X87 : 0) | (sseInUse(fpu, xmmCount) ? XCR0.SSE : 0);
    const bv = lp.read32(la + XSAVE_HEADER.XSTATE_BV);
    lp.write32(la + XSAVE_HEADER.XSTATE_BV, (bv & ~rfbm) | (inUse & rfbm));
    lp.rip = next;
    return false;
  }
  // XRSTOR: every check before any state changes.
  const bvLo = lp.read32(la + XSAVE_HEADER.XSTATE_BV) >>> 0, bvHi = lp.read32(la + XSAVE_HEADER.XSTATE_BV + 4);
  if ((bvLo & ~lp.xcr0) !== 0 || bvHi !== 0) throw gp(0, `XRSTOR with XSTATE_BV bits that XCR0 (${lp.xcr0.toString(16).toUpperCase()}H) does not enable`, sdm);
  for (let off = XSAVE_HEADER.XCOMP_BV; off < XSAVE_HEADER.END; off += 4) {
    if (lp.read32(la + off) !== 0) throw gp(0, `XRSTOR: header byte ${off - 512} is not 0 (XCOMP_BV must be 0: the compacted format needs XSAVEC, which this processor lacks)`, sdm);
  }
  const mxcsr = lp.read32(la + FX.MXCSR) >>> 0;
  if (mxcsrToo && (mxcsr & ~MXCSR_MASK) !== 0) throw gp(0, `XRSTOR with MXCSR image ${mxcsr.toString(16).toUpperCase()}H: bits outside MXCSR_MASK`, sdm);
  if (rfbm & XCR0.X87) {
    if (bvLo & XCR0.X87) {
      fpu.fcw = lp.read16(la + FX.FCW) & 0xffff;
      fpu.fsw = lp.read16(la + FX.FSW) & 0xffff;
      fpu.fop = lp.read16(la + FX.FOP) & 0x7ff;
      for (let i = 0; i < 8 * 16; i++) fpu.st[i] = lp.read8(la + FX.ST + i);
      fpu.ftw = fullTagWord(fpu, lp.read8(la + FX.FTW) & 0xff);
    } else {
      // The x87 initial configuration. See SDM Vol. 1, "x87 State".
      fpu.fcw = FCW_INIT; fpu.fsw = 0; fpu.ftw = 0xffff; fpu.fop = 0; fpu.st.fill(0);
    }
  }
  if (rfbm & XCR0.SSE) {
    if (bvLo & XCR0.SSE) for (let i = 0; i < xmmCount * 16; i++) fpu.xmm[i] = lp.read8(la + FX.XMM + i);
    else fpu.xmm.fill(0, 0, xmmCount * 16);
  }
  // MXCSR comes from memory whenever RFBM[1] or RFBM[2] is set, whatever XSTATE_BV[1] says.
  if (mxcsrToo) fpu.mxcsr = mxcsr;
  lp.rip = next;
  return false;
}

/** XINUSE[0]: the x87 state is not in its initial configuration. */
function x87InUse(fpu: FpuState): boolean {
  return fpu.fcw !== FCW_INIT || fpu.fsw !== 0 || fpu.ftw !== 0xffff || fpu.fop !== 0 || fpu.st.some((b) => b !== 0);
}
/** XINUSE[1]: some XMM register is not zero. */
function sseInUse(fpu: FpuState, xmmCount: number): boolean {
  for (let i = 0; i < xmmCount * 16; i++) if (fpu.xmm[i] !== 0) return true;
  return false;
}
