// VMX instructions executed in VMX non-root operation: after their #UD checks they exit unconditionally
// (VMCALL 18, VMCLEAR 19, VMLAUNCH 20, VMPTRLD 21, VMPTRST 22, VMREAD 23, VMRESUME 24, VMWRITE 25, VMXOFF 26,
// VMXON 27, INVEPT 50, INVVPID 53, VMFUNC 59 for a function that is not enabled or fails). The exit information:
//  - instruction length: always (they are instructions);
//  - exit qualification: the displacement of the memory operand (0 for a register operand) for VMCLEAR, VMPTRLD,
//    VMPTRST, VMREAD, VMWRITE, VMXON, INVEPT and INVVPID; cleared for the others;
//  - VM-exit instruction information: the operands of those same eight; undefined for the others.
// The interpreter has already moved RIP past the instruction, so the cause saves the instruction's own RIP.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally", "Basic VM-Exit Information" and
// "VM-Exit Instruction-Information Field".
import type { MemOperandEncoding, VmxInstruction } from '../../machine/vmx-seam.ts';
import type { ExitReasonNumber } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import {
  displacementQualification, invalidationInstructionInfo, vmcsPointerInstructionInfo, vmreadVmwriteInstructionInfo,
} from './qualification.ts';

/** A memory operand with no registers and no displacement: what an instruction without one would report. */
const NO_OPERAND: MemOperandEncoding = { segment: 3, base: -1, index: -1, scale: 0, displacement: 0n, ripRelative: false };

/** The VM exit a VMX instruction causes in VMX non-root operation, with every field the SDM defines for it. */
export function vmxInstructionExit(insn: VmxInstruction, reason: ExitReasonNumber): VmExitCause {
  const exit = { reason, instructionLength: insn.length, guestRip: insn.rip };
  const qualification = displacementQualification(insn.mem, insn.addressSize, insn.rip + BigInt(insn.length));
  switch (insn.mnemonic) {
    case 'VMCALL': case 'VMLAUNCH': case 'VMRESUME': case 'VMXOFF': case 'VMFUNC':
      return exit;
    case 'VMCLEAR': case 'VMPTRLD': case 'VMPTRST': case 'VMXON':
      // (A register operand is #UD before the VM exit: the operand is always in memory here.)
      return { ...exit, qualification, instructionInfo: vmcsPointerInstructionInfo(insn.mem ?? NO_OPERAND, insn.addressSize) };
    case 'VMREAD': case 'VMWRITE':
      // Reg1 is the r/m operand (VMREAD's destination, VMWRITE's source); Reg2 the register with the field encoding.
      return { ...exit, qualification, instructionInfo: vmreadVmwriteInstructionInfo({ mem: insn.mem, reg1: insn.rmReg, addressSize: insn.addressSize, reg2: insn.reg }) };
    case 'INVEPT': case 'INVVPID':
      return { ...exit, qualification, instructionInfo: invalidationInstructionInfo(insn.mem ?? NO_OPERAND, insn.addressSize, insn.reg) };
  }
}
