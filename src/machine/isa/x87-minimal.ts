// The x87 FPU as far as freestanding kernels built with -mno-sse need it: its control, status and tag words
// (and the register images FXSAVE/FXRSTOR move), FNINIT, FNCLEX, FNSTCW, FLDCW, FNSTSW AX / m16, FNOP and
// WAIT/FWAIT, with the #NM rules of CR0.EM/MP/TS. The arithmetic instructions (FLD, FADD, FSTP, …) are valid x87
// that VMX Lab does not implement: they raise #UD "valid but not implemented" — after the #NM checks, so a
// kernel that sets CR0.EM to emulate the FPU, or CR0.TS for lazy FPU switching, still gets its #NM first.
// See SDM Vol. 1, "X87 FPU Control Word", "x87 FPU Status Register", "x87 FPU Tag Word", and Vol. 3A,
// "Interaction of the x87 FPU with CR0.EM, CR0.MP and CR0.TS" (table "Action Taken By x87 FPU Instructions for
// Different Combinations of EM, MP, and TS").

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CpuFault } from '../fault.ts';
import { linearAddress, readMem, writeMem } from '../operands.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { RAX } from '../../x86/registers.ts';
import { FCW_INIT, type FpuState } from './fpu-state.ts';

/** x87 FPU status word bits. See SDM Vol. 1, "x87 FPU Status Register". */
export const FSW = {
  /** Exception flags IE DE ZE OE UE PE (bits 5:0) and the stack fault SF (bit 6). */
  EXCEPTIONS: 0x3f,
  SF: 1 << 6,
  /** Error summary: an unmasked exception flag is set. */
  ES: 1 << 7,
  /** FPU busy (mirrors ES on processors since the Pentium). */
  B: 1 << 15,
} as const;

/** x87 FPU control word: exception masks in bits 5:0. See SDM Vol. 1, "x87 FPU Control Word". */
export const FCW_EXCEPTION_MASKS = 0x3f;
const EM_SDM = 'SDM Vol. 3A, "Interaction of the x87 FPU with CR0.EM, CR0.MP and CR0.TS"';
const NM_VECTOR = 7;
const MF_VECTOR = 16;

/** The #NM checks of an x87 (escape D8–DF) instruction: CR0.EM = 1 or CR0.TS = 1. */
export function requireFpu(lp: LogicalProcessor, what: string): void {
  if (lp.cr0 & CR0.EM) throw new CpuFault(NM_VECTOR, -1, `${what} with CR0.EM = 1 (x87 emulation)`, EM_SDM);
  if (lp.cr0 & CR0.TS) throw new CpuFault(NM_VECTOR, -1, `${what} with CR0.TS = 1 (task switched: the FPU state belongs to another task)`, EM_SDM);
}

/**
 * A waiting x87 instruction first reports a pending unmasked exception (FSW.ES = 1): #MF with CR0.NE = 1. With
 * CR0.NE = 0 the PC's FERR#/IGNNE# wiring would raise IRQ 13, which VMX Lab does not model: the instruction
 * proceeds. See SDM Vol. 1, "x87 FPU Exception Synchronization" and Vol. 3A, "Interrupt 16—x87 FPU
 * Floating-Point Error (#MF)".
 */
function checkPending(lp: LogicalProcessor, what: string): void {
  if (lp.fpu.fsw & FSW.ES && lp.cr0 & CR0.NE) {
    throw new CpuFault(MF_VECTOR, -1, `${what}: a pending unmasked x87 exception (FSW = ${lp.fpu.fsw.toString(16).toUpperCase()}H)`, 'SDM Vol. 3A, "Interrupt 16—x87 FPU Floating-Point Error (#MF)"');
  }
}

/** ES and B follow the exception flags the control word leaves unmasked. */
export function updateErrorSummary(fpu: FpuState): void {
  const unmasked = fpu.fsw & FSW.EXCEPTIONS & ~fpu.fcw & FCW_EXCEPTION_MASKS;
  fpu.fsw = unmasked !== 0 ? fpu.fsw | FSW.ES | FSW.B : fpu.fsw & ~(FSW.ES | FSW.B);
}

/** WAIT/FWAIT (9BH): #NM only when CR0.MP = 1 and CR0.TS = 1 (EM is ignored); then pending exceptions. */
export function fwait(lp: LogicalProcessor, next: number): boolean {
  if (lp.cr0 & CR0.MP && lp.cr0 & CR0.TS) throw new CpuFault(NM_VECTOR, -1, 'WAIT with CR0.MP = 1 and CR0.TS = 1', EM_SDM);
  checkPending(lp, 'WAIT');
  lp.rip = next;
  return false;
}

/** Which escape-opcode forms are implemented; the decoder marks the rest "valid but not implemented". */
export function x87Implemented(key: number, mem: boolean, reg: number, rm: number): boolean {
  const r = reg & 7;
  if (mem) return (key === 0xd9 && (r === 5 || r === 7)) || (key === 0xdd && r === 7);
  const modrm = 0xc0 | (r << 3) | (rm & 7);
  return (key === 0xd9 && modrm === 0xd0) || (key === 0xdb && (modrm === 0xe2 || modrm === 0xe3)) || (key === 0xdf && modrm === 0xe0);
}

/** Execute an implemented x87 escape instruction (D9 /5 /7, DD /7, D9 D0, DB E2, DB E3, DF E0). */
export function x87(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const fpu = lp.fpu;
  const r = d.reg & 7;
  if (d.mem) {
    if (d.op === 0xd9 && r === 5) { // FLDCW m2byte. See SDM Vol. 2A, "FLDCW—Load x87 FPU Control Word".
      requireFpu(lp, 'FLDCW');
      checkPending(lp, 'FLDCW');
      fpu.fcw = readMem(lp, linearAddress(lp, d, 2), 2) & 0xffff;
      updateErrorSummary(fpu);
    } else if (d.op === 0xd9) { // FNSTCW m2byte. See SDM Vol. 2A, "FSTCW/FNSTCW—Store x87 FPU Control Word".
      requireFpu(lp, 'FNSTCW');
      writeMem(lp, linearAddress(lp, d, 2), 2, fpu.fcw, 0);
    } else { // DD /7: FNSTSW m2byte. See SDM Vol. 2A, "FSTSW/FNSTSW—Store x87 FPU Status Word".
      requireFpu(lp, 'FNSTSW');
      writeMem(lp, linearAddress(lp, d, 2), 2, fpu.fsw, 0);
    }
    lp.rip = next;
    return false;
  }
  const modrm = 0xc0 | (r << 3) | (d.rm & 7);
  if (d.op === 0xdf) { // FNSTSW AX
    requireFpu(lp, 'FNSTSW');
    lp.regLo[RAX] = (lp.regLo[RAX]! & ~0xffff) | fpu.fsw;
  } else if (modrm === 0xe3) { // FNINIT. See SDM Vol. 2A, "FINIT/FNINIT—Initialize Floating-Point Unit".
    requireFpu(lp, 'FNINIT');
    fpu.fcw = FCW_INIT;
    fpu.fsw = 0;
    fpu.ftw = 0xffff;
    fpu.fop = 0;
  } else if (modrm === 0xe2) { // FNCLEX: clear the exception flags, SF, ES and B. See SDM Vol. 2A, "FCLEX/FNCLEX".
    requireFpu(lp, 'FNCLEX');
    fpu.fsw &= ~(FSW.EXCEPTIONS | FSW.SF | FSW.ES | FSW.B);
  } else { // D9 D0: FNOP (a waiting instruction). See SDM Vol. 2A, "FNOP—No Operation".
    requireFpu(lp, 'FNOP');
    checkPending(lp, 'FNOP');
  }
  lp.rip = next;
  return false;
}
