// RDPMC exits if "RDPMC exiting" is 1 (reason 15, no qualification). The #GP for CPL > 0 with CR4.PCE = 0 comes
// first; the #GP for a counter that does not exist comes after. See SDM Vol. 3C, "Instructions That Cause VM Exits
// Conditionally" and "Relative Priority of Faults and VM Exits".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';

export const rdpmc: ExitCauseHandler<'rdpmc'> = (ctx, e) =>
  ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_RDPMC_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_RDPMC, e.length))
    : NATIVE;
