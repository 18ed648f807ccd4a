// Loading segment registers: real-mode (base = selector × 16) and protected-mode (descriptor from the
// GDT/LDT with the SDM's checks). See SDM Vol. 3A, "Segment Selectors", "Segment Descriptors",
// "Privilege Level Checking When Accessing Data Segments" and Vol. 2B, "MOV—Move" (segment register loads).

import { AR, decodeDescriptor, SYSTEM_TYPE } from '../x86/segments.ts';
import { CR0 } from '../x86/control-registers.ts';
import { CS, SS } from '../x86/registers.ts';
import { CpuFault } from './fault.ts';
import { modeNotImplementedReason } from './not-implemented.ts';
import { LDTR, type LogicalProcessor } from './lp.ts';
import { intelHex } from '../util/hex.ts';

/** Descriptor type (access-rights bits 3:0) and the 16-bit call gate's type. See SDM Vol. 3A, "System Descriptor Types". */
const AR_TYPE = 0xf;
const CALL_GATE_16 = 0x4;

const SDM_SEG = 'SDM Vol. 2B, "MOV—Move" (Protected Mode Exceptions for segment register loads)';

export interface Descriptor {
  lo: number;
  hi: number;
  base: number;
  limit: number;
  ar: number;
  /** Linear address of the descriptor (for setting the accessed/busy bits). */
  address: number;
}

/**
 * Fetch the descriptor a selector names. `faultVector` is raised (with the selector as error code) when the
 * selector points outside the table. For system descriptors in IA-32e mode (16 bytes), `hi2` is the upper
 * base dword.
 */
export function readDescriptor(lp: LogicalProcessor, sel: number, faultVector = 13): Descriptor & { hi2: number } {
  const ti = (sel & 4) !== 0;
  const index = sel >>> 3;
  const tableBase = ti ? lp.segBase[LDTR]! : lp.gdtrBase;
  const tableLimit = ti ? lp.segLimit[LDTR]! : lp.gdtrLimit;
  if (ti && lp.segAr[LDTR]! & AR.UNUSABLE) throw new CpuFault(faultVector, sel & 0xfffc, 'selector references the LDT but LDTR is null', SDM_SEG);
  if (index * 8 + 7 > tableLimit) {
    throw new CpuFault(faultVector, sel & 0xfffc, `selector ${intelHex(sel)} is beyond the ${ti ? 'LDT' : 'GDT'} limit ${intelHex(tableLimit)}`, SDM_SEG);
  }
  const address = tableBase + index * 8;
  const lo = lp.readSys32(address);
  const hi = lp.readSys32(address + 4);
  const d = decodeDescriptor(lo >>> 0, hi >>> 0);
  let hi2 = 0;
  if (!(d.ar & AR.S) && index * 8 + 15 <= tableLimit && lp.bits === 64) hi2 = lp.readSys32(address + 8);
  return { lo, hi, base: d.base, limit: d.limit, ar: d.ar, address, hi2 };
}

/** Set the accessed bit in a code/data descriptor (a supervisor write to the descriptor table). */
export function setAccessed(lp: LogicalProcessor, desc: Descriptor): void {
  if (!(desc.ar & AR.ACCESSED)) {
    lp.writeSys8(desc.address + 5, (desc.ar | AR.ACCESSED) & 0xff);
    desc.ar |= AR.ACCESSED;
  }
}

/** Load a data segment register (ES, SS, DS, FS, GS) by selector, as MOV Sreg / POP Sreg do. */
export function loadDataSegment(lp: LogicalProcessor, seg: number, sel: number): void {
  sel &= 0xffff;
  if (!(lp.cr0 & CR0.PE) || lp.rflagsRaw & (1 << 17)) {
    // Real mode (and virtual-8086): base = selector × 16, limit and attributes unchanged.
    // See SDM Vol. 3A, "Real-Address Mode Operation".
    lp.segSel[seg] = sel;
    lp.segBase[seg] = sel * 16;
    lp.updateMode();
    return;
  }
  const cpl = lp.cpl;
  if ((sel & 0xfffc) === 0) {
    // A null selector may be loaded into DS, ES, FS, GS (the register becomes unusable); into SS only in
    // 64-bit mode at CPL < 3 with RPL = CPL.
    if (seg === SS && !(lp.bits === 64 && cpl < 3 && (sel & 3) === cpl)) {
      throw new CpuFault(13, 0, 'loading a null selector into SS', SDM_SEG);
    }
    lp.segSel[seg] = sel;
    lp.segAr[seg] = seg === SS ? AR.UNUSABLE | AR.S | AR.RW | AR.P | (cpl << AR.DPL_SHIFT) : AR.UNUSABLE;
    if (lp.bits !== 64) lp.segBase[seg] = 0;
    lp.updateMode();
    return;
  }
  const d = readDescriptor(lp, sel);
  const rpl = sel & 3;
  const dpl = (d.ar >>> AR.DPL_SHIFT) & 3;
  const isCode = (d.ar & AR.CODE) !== 0;
  if (!(d.ar & AR.S)) throw new CpuFault(13, sel & 0xfffc, `selector ${intelHex(sel)} names a system descriptor, not a code/data segment`, SDM_SEG);
  if (seg === SS) {
    if (isCode || !(d.ar & AR.RW)) throw new CpuFault(13, sel & 0xfffc, `SS selector ${intelHex(sel)} is not a writable data segment`, SDM_SEG);
    if (rpl !== cpl || dpl !== cpl) throw new CpuFault(13, sel & 0xfffc, `SS selector ${intelHex(sel)}: RPL (${rpl}) and DPL (${dpl}) must equal CPL (${cpl})`, SDM_SEG);
    if (!(d.ar & AR.P)) throw new CpuFault(12, sel & 0xfffc, `stack segment ${intelHex(sel)} not present`, SDM_SEG);
  } else {
    if (isCode && !(d.ar & AR.RW)) throw new CpuFault(13, sel & 0xfffc, `selector ${intelHex(sel)} names an execute-only code segment`, SDM_SEG);
    const conforming = isCode && (d.ar & AR.DC) !== 0;
    if (!conforming && (rpl > dpl || cpl > dpl)) {
      throw new CpuFault(13, sel & 0xfffc, `selector ${intelHex(sel)}: RPL ${rpl} / CPL ${cpl} exceed DPL ${dpl}`, SDM_SEG);
    }
    if (!(d.ar & AR.P)) throw new CpuFault(11, sel & 0xfffc, `segment ${intelHex(sel)} not present`, SDM_SEG);
  }
  setAccessed(lp, d);
  lp.segSel[seg] = sel;
  lp.segBase[seg] = d.base;
  lp.segLimit[seg] = d.limit;
  lp.segAr[seg] = d.ar;
  lp.updateMode();
}

/**
 * Load CS for a far JMP/CALL/RET to a code segment (no call gates, no task switches).
 * See SDM Vol. 2A, "JMP—Jump" (far jumps in protected mode) and Vol. 3A, "Direct Calls or Jumps to Code Segments".
 */
export function loadCodeSegment(lp: LogicalProcessor, sel: number, newCpl: number, why: string): void {
  sel &= 0xffff;
  if (!(lp.cr0 & CR0.PE)) {
    lp.segSel[CS] = sel;
    lp.segBase[CS] = sel * 16;
    lp.updateMode();
    return;
  }
  if ((sel & 0xfffc) === 0) throw new CpuFault(13, 0, `${why}: null code-segment selector`, SDM_SEG);
  const d = readDescriptor(lp, sel);
  if (!(d.ar & AR.S)) {
    // A call gate (type 4 or CH) would change privilege through the gate; a TSS or task gate would switch tasks.
    const callGate = (d.ar & AR_TYPE) === SYSTEM_TYPE.CALL_GATE || (d.ar & AR_TYPE) === CALL_GATE_16;
    throw new CpuFault(13, sel & 0xfffc, modeNotImplementedReason(callGate ? 'call-gates' : 'task-switch', `${why}: selector ${intelHex(sel)} names a system descriptor`), SDM_SEG);
  }
  if (!(d.ar & AR.CODE)) throw new CpuFault(13, sel & 0xfffc, `${why}: selector ${intelHex(sel)} is not a code segment`, SDM_SEG);
  const dpl = (d.ar >>> AR.DPL_SHIFT) & 3;
  const conforming = (d.ar & AR.DC) !== 0;
  if (conforming ? dpl > newCpl : dpl !== newCpl) {
    throw new CpuFault(13, sel & 0xfffc, `${why}: code segment ${intelHex(sel)} DPL ${dpl} does not allow CPL ${newCpl}`, SDM_SEG);
  }
  if ((lp.efer & (1 << 10)) && d.ar & AR.L && d.ar & AR.DB) {
    throw new CpuFault(13, sel & 0xfffc, `${why}: code segment ${intelHex(sel)} has both L and D set`, SDM_SEG);
  }
  if (!(d.ar & AR.P)) throw new CpuFault(11, sel & 0xfffc, `${why}: code segment ${intelHex(sel)} not present`, SDM_SEG);
  setAccessed(lp, d);
  lp.segSel[CS] = (sel & 0xfffc) | newCpl;
  lp.segBase[CS] = d.base;
  lp.segLimit[CS] = d.limit;
  lp.segAr[CS] = d.ar;
  lp.setCpl(newCpl);
  lp.updateMode();
}

