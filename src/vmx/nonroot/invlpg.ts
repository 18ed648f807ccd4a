// INVLPG and INVPCID in VMX non-root operation, both governed by "INVLPG exiting".
//  - INVLPG exits if "INVLPG exiting" is 1 (reason 14); the exit qualification is the linear-address operand.
//  - INVPCID is #UD if "enable INVPCID" is 0 (before its #GP for CPL > 0); otherwise it exits if "INVLPG exiting"
//    is 1 (reason 58), with the displacement as exit qualification and the operands in the VM-exit
//    instruction-information field.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally", "Changes to Instruction Behavior in VMX
// Non-Root Operation" (INVPCID) and "Basic VM-Exit Information".
import { ud } from '../../machine/fault.ts';
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import { displacementQualification, invalidationInstructionInfo } from './qualification.ts';
import { secondaryControls } from './context.ts';

const invlpgExiting = (proc: number): boolean => (proc & C.CPU_BASED_INVLPG_EXITING) !== 0;

export const invlpg: ExitCauseHandler<'invlpg'> = (ctx, e) =>
  invlpgExiting(ctx.read32('CPU_BASED_VM_EXEC_CONTROL'))
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_INVLPG, e.length, e.linear))
    : NATIVE;

export const invpcid: ExitCauseHandler<'invpcid'> = (ctx, e) => {
  if ((secondaryControls(ctx) & C.SECONDARY_EXEC_ENABLE_INVPCID) === 0) {
    throw ud('INVPCID in VMX non-root operation with "enable INVPCID" = 0', 'SDM Vol. 3C, "Changes to Instruction Behavior in VMX Non-Root Operation"');
  }
  // At CPL > 0 the instruction's own #GP(0) comes first (a privilege fault has priority over a VM exit).
  // See SDM Vol. 3C, "Relative Priority of Faults and VM Exits".
  if (ctx.lp.cpl !== 0 || !invlpgExiting(ctx.read32('CPU_BASED_VM_EXEC_CONTROL'))) return NATIVE;
  const nextRip = BigInt.asUintN(64, BigInt(ctx.lp.rip) + BigInt(e.length));
  return ctx.exit({
    ...instructionExit(EXIT_REASON.EXIT_REASON_INVPCID, e.length, displacementQualification(e.mem, e.addressSize, nextRip)),
    instructionInfo: invalidationInstructionInfo(e.mem, e.addressSize, e.reg),
  });
};
