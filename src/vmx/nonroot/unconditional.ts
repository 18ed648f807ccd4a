// Instructions that always cause VM exits in VMX non-root operation, whatever the controls: CPUID, INVD and
// XSETBV (GETSEC is not implemented by the machine; the VMX instructions exit from ../unit.ts, with their exit
// information from ./vmx-instructions.ts).
// See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally".
import { EXIT_REASON } from '../exit-reasons.ts';
import { cpuidExit, instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';

export const cpuid: ExitCauseHandler<'cpuid'> = (ctx, e) => ctx.exit(cpuidExit(e.length));
export const invd: ExitCauseHandler<'invd'> = (ctx, e) => ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_INVD, e.length));
export const xsetbv: ExitCauseHandler<'xsetbv'> = (ctx, e) => ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_XSETBV, e.length));
