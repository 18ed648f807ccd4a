// VM exits that are not caused by an instruction: triple fault, INIT, SIPI. Their instruction length and
// instruction information are undefined. See SDM Vol. 3C, "Other Causes of VM Exits".
import { EXIT_REASON } from '../exit-reasons.ts';
import { tripleFaultExit } from './causes.ts';
import type { ExitCauseHandler, NonRootContext } from './context.ts';
import type { InterceptAnswer } from '../../machine/vmx-seam.ts';

/** A triple fault in VMX non-root operation always exits (reason 2). */
export const tripleFault: ExitCauseHandler<'triple-fault'> = (ctx) => ctx.exit(tripleFaultExit());

/** An INIT signal in VMX non-root operation exits (reason 3). */
export function initSignal(ctx: NonRootContext): InterceptAnswer {
  return ctx.exit({ reason: EXIT_REASON.EXIT_REASON_INIT_SIGNAL });
}

/** A SIPI while the guest is in the wait-for-SIPI state exits (reason 4); the qualification is the vector. */
export function startupIpi(ctx: NonRootContext, vector: number): InterceptAnswer {
  return ctx.exit({ reason: EXIT_REASON.EXIT_REASON_SIPI_SIGNAL, qualification: BigInt(vector & 0xff) });
}
