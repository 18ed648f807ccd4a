// LGDT, LIDT, SGDT, SIDT (reason 46, "access to GDTR or IDTR") and LLDT, LTR, SLDT, STR (reason 47, "access to
// LDTR or TR") exit if "descriptor-table exiting" is 1. Their #UD (real mode for the LDTR/TR group) and privilege
// faults (CPL > 0; UMIP for the stores) come first; faults on the operand come after. The exit qualification is
// the displacement; the VM-exit instruction-information field describes the operand and names the instruction.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally", "Basic VM-Exit Information" and "VM-Exit
// Instruction-Information Field".
import { NATIVE, type DescriptorTableInstruction } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import {
  GDTR_IDTR_IDENTITY, LDTR_TR_IDENTITY, displacementQualification, gdtrIdtrInstructionInfo, ldtrTrInstructionInfo,
} from './qualification.ts';
import { secondaryControls } from './context.ts';

const isGdtrIdtr = (i: DescriptorTableInstruction): i is keyof typeof GDTR_IDTR_IDENTITY => i in GDTR_IDTR_IDENTITY;

export const descriptorTable: ExitCauseHandler<'descriptor-table'> = (ctx, e) => {
  if ((secondaryControls(ctx) & C.SECONDARY_EXEC_DESC) === 0) return NATIVE;
  const nextRip = BigInt.asUintN(64, BigInt(ctx.lp.rip) + BigInt(e.length));
  const qualification = displacementQualification(e.mem, e.addressSize, nextRip);
  const i = e.instruction;
  if (isGdtrIdtr(i)) {
    // These have no register form: the decoder leaves them no other.
    const mem = e.mem ?? { segment: 3, base: -1, index: -1, scale: 0, displacement: 0n, ripRelative: false };
    return ctx.exit({
      ...instructionExit(EXIT_REASON.EXIT_REASON_GDTR_IDTR, e.length, qualification),
      instructionInfo: gdtrIdtrInstructionInfo({ mem, addressSize: e.addressSize, operandSize: e.operandSize, from64BitMode: ctx.lp.bits === 64, identity: GDTR_IDTR_IDENTITY[i] }),
    });
  }
  return ctx.exit({
    ...instructionExit(EXIT_REASON.EXIT_REASON_LDTR_TR, e.length, qualification),
    instructionInfo: ldtrTrInstructionInfo({ mem: e.mem, reg1: e.reg, addressSize: e.addressSize, identity: LDTR_TR_IDENTITY[i] }),
  });
};
