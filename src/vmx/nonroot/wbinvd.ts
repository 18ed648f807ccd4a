// WBINVD and WBNOINVD exit if "WBINVD exiting" is 1 (reason 54, no qualification); otherwise they run as on bare
// metal. See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import { secondaryControls } from './context.ts';

export const wbinvd: ExitCauseHandler<'wbinvd'> = (ctx, e) =>
  secondaryControls(ctx) & C.SECONDARY_EXEC_WBINVD_EXITING ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_WBINVD, e.length)) : NATIVE;
