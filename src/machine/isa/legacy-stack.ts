// PUSHA/PUSHAD, POPA/POPAD (60H, 61H) and ENTER (C8H iw ib): the stack-frame instructions of 16/32-bit code.
// See SDM Vol. 2B, "PUSHA/PUSHAD—Push All General-Purpose Registers", "POPA/POPAD—Pop All General-Purpose
// Registers" and Vol. 2A, "ENTER—Make Stack Frame for Procedure Parameters".
//
// PUSHA and POPA are invalid in 64-bit mode (the decoder refuses them there). If a push or pop faults part way,
// RSP (and, for ENTER, RBP) are restored: the instruction is restarted as a whole (fault semantics).

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { adjustSp, getReg, peek, push, readMem, scratch, segmentLinear, setReg, stackAddrSize } from '../operands.ts';
import { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, SS } from '../../x86/registers.ts';

/** PUSHA: AX CX DX BX, the original SP, BP SI DI (16- or 32-bit by operand size). */
export function pusha(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const size = d.opSize;
  const savedLo = lp.regLo[RSP]!, savedHi = lp.regHi[RSP]!;
  const temp = getReg(lp, RSP, size, 0);
  try {
    for (const r of [RAX, RCX, RDX, RBX, -1, RBP, RSI, RDI]) push(lp, size, r === -1 ? temp : getReg(lp, r, size, 0), 0);
  } catch (e) {
    lp.regLo[RSP] = savedLo; lp.regHi[RSP] = savedHi;
    throw e;
  }
  lp.rip = next;
  return false;
}

/** POPA: DI SI BP, (the SP image is skipped), BX DX CX AX. All eight are read before any register changes. */
export function popa(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const size = d.opSize;
  const order = [RDI, RSI, RBP, -1, RBX, RDX, RCX, RAX];
  const values = order.map((_, i) => peek(lp, size, i * size));
  order.forEach((r, i) => { if (r !== -1) setReg(lp, r, size, 0, values[i]!, 0); });
  adjustSp(lp, 8 * size);
  lp.rip = next;
  return false;
}

/**
 * ENTER AllocSize, NestingLevel: push rBP, copy NestingLevel − 1 frame pointers from the enclosing frame (read at
 * SS:rBP − k·size), push the new frame pointer, set rBP to it and reserve AllocSize bytes. The level is taken mod
 * 32. rBP steps through the old frame with the stack's address size, as the SDM's pseudocode does ("IF StackSize
 * = 32 THEN EBP ← EBP − 4").
 */
export function enter(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const size = d.opSize;
  const alloc = d.imm & 0xffff;
  const level = d.imm2 & 31;
  const sas = stackAddrSize(lp);
  const saved = [lp.regLo[RSP]!, lp.regHi[RSP]!, lp.regLo[RBP]!, lp.regHi[RBP]!] as const;
  try {
    push(lp, size, getReg(lp, RBP, size, 0), scratch.hi);
    const frameTemp = getReg(lp, RSP, size, 0);
    const frameTempHi = scratch.hi;
    if (level > 0) {
      // The enclosing frames' pointers, read from the old frame at rBP − size, rBP − 2·size, …
      const bp = sas === 8 ? lp.regHi[RBP]! * 4294967296 + (lp.regLo[RBP]! >>> 0) : sas === 4 ? saved[2] >>> 0 : saved[2] & 0xffff;
      for (let i = 1; i < level; i++) {
        const off = sas === 8 ? bp - i * size : sas === 4 ? (bp - i * size) >>> 0 : (bp - i * size) & 0xffff;
        const v = readMem(lp, segmentLinear(lp, SS, off, size), size); // canonical/limit checks as for any SS access
        push(lp, size, v, scratch.hi);
      }
      push(lp, size, frameTemp, frameTempHi);
    }
    setReg(lp, RBP, size, 0, frameTemp, frameTempHi);
    adjustSp(lp, -alloc);
  } catch (e) {
    [lp.regLo[RSP], lp.regHi[RSP], lp.regLo[RBP], lp.regHi[RBP]] = saved;
    throw e;
  }
  lp.rip = next;
  return false;
}
