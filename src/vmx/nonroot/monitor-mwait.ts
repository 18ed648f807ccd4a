// MONITOR exits if "MONITOR exiting" is 1 (reason 39, no qualification); MWAIT exits if "MWAIT exiting" is 1
// (reason 36), and bit 0 of its exit qualification says whether the address-range monitoring hardware was armed.
// Their #UD checks (no MONITOR/MWAIT in CPUID, CPL > 0) come first; their #GP checks (ECX) come after.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" and "Basic VM-Exit Information".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import { mwaitQualification } from './qualification.ts';

export const monitor: ExitCauseHandler<'monitor'> = (ctx, e) =>
  ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_MONITOR_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_MONITOR_INSTRUCTION, e.length))
    : NATIVE;

export const mwait: ExitCauseHandler<'mwait'> = (ctx, e) =>
  ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_MWAIT_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_MWAIT_INSTRUCTION, e.length, mwaitQualification(e.monitorArmed)))
    : NATIVE;
