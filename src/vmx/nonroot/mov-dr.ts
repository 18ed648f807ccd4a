// MOV to/from a debug register exits if "MOV-DR exiting" is 1 (reason 29), with the debug register, the direction
// and the general-purpose register in the exit qualification. This exit has priority over the #GP for CPL > 0,
// the #UD for DR4/DR5 with CR4.DE = 1 and the general-detect #DB (the interpreter asks before checking them).
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" (MOV DR) and "Exit Qualification for MOV DR".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import { movDrQualification } from './qualification.ts';

export const movDr: ExitCauseHandler<'dr-access'> = (ctx, e) =>
  ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_MOV_DR_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_DR_ACCESS, e.length, movDrQualification(e)))
    : NATIVE;
