// PAUSE in VMX non-root operation.
//  - "PAUSE exiting" = 1: every PAUSE exits (at CPL 0 "PAUSE-loop exiting" is then ignored).
//  - "PAUSE exiting" = 0, "PAUSE-loop exiting" = 1, CPL 0: a PAUSE more than PLE_Gap TSC ticks after the previous
//    CPL-0 PAUSE (or the first one after VM entry) starts a new spin loop; a PAUSE more than PLE_Window ticks
//    after the start of the current loop exits. Time runs at the TSC rate (VMX Lab: one tick per instruction),
//    unaffected by TSC offsetting or scaling.
//  - At CPL > 0 "PAUSE-loop exiting" is ignored.
// The exit is reason 40 with no qualification. See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally"
// (PAUSE) and "Controls for PAUSE-Loop Exiting".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import { secondaryControls, type ExitCauseHandler } from './context.ts';

export const pause: ExitCauseHandler<'pause'> = (ctx, e) => {
  const exit = () => ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_PAUSE_INSTRUCTION, e.length));
  if (ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_PAUSE_EXITING) return exit();
  if (ctx.lp.cpl !== 0 || (secondaryControls(ctx) & C.SECONDARY_EXEC_PAUSE_LOOP_EXITING) === 0) return NATIVE;
  const now = ctx.lp.instructions;
  const loop = ctx.state.pauseLoop;
  const firstInLoop = loop.lastPause < 0 || now - loop.lastPause > ctx.read32('PLE_GAP');
  loop.lastPause = now;
  if (firstInLoop) {
    loop.loopStart = now;
    return NATIVE;
  }
  return now - loop.loopStart > ctx.read32('PLE_WINDOW') ? exit() : NATIVE;
};
