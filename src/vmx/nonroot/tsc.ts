// RDTSC, RDTSCP and RDMSR of IA32_TIME_STAMP_COUNTER in VMX non-root operation. With "RDTSC exiting" = 1 RDTSC
// and RDTSCP exit. Otherwise the guest reads the TSC scaled by the TSC multiplier ("use TSC scaling") and plus
// the TSC offset ("use TSC offsetting"): guest TSC = ((TSC × multiplier) >> 48) + offset. RDTSCP with
// "enable RDTSCP" = 0 is #UD. See SDM Vol. 3C, "Changes to Instruction Behavior in VMX Non-Root Operation"
// (RDTSC, RDTSCP, RDMSR) and "Time-Stamp Counter Offset and Multiplier".
import { ud } from '../../machine/fault.ts';
import { NATIVE, substitute, type InterceptAnswer } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import { secondaryControls, type ExitCauseHandler, type NonRootContext } from './context.ts';

const U64 = (1n << 64n) - 1n;

/** What the guest reads as the TSC: NATIVE when neither offsetting nor scaling applies. */
export function guestTsc(ctx: NonRootContext): InterceptAnswer {
  const proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
  if ((proc & C.CPU_BASED_USE_TSC_OFFSETTING) === 0) return NATIVE;
  let tsc = ctx.lp.readTsc();
  if (secondaryControls(ctx) & C.SECONDARY_EXEC_TSC_SCALING) tsc = (tsc * ctx.read64('TSC_MULTIPLIER')) >> 48n;
  return substitute((tsc + ctx.read64('TSC_OFFSET')) & U64);
}

export const rdtsc: ExitCauseHandler<'rdtsc'> = (ctx, e) =>
  ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_RDTSC_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_RDTSC, e.length))
    : guestTsc(ctx);

export const rdtscp: ExitCauseHandler<'rdtscp'> = (ctx, e) => {
  if ((secondaryControls(ctx) & C.SECONDARY_EXEC_ENABLE_RDTSCP) === 0) {
    throw ud('RDTSCP in VMX non-root operation with "enable RDTSCP" = 0', 'SDM Vol. 3C, "Changes to Instruction Behavior in VMX Non-Root Operation"');
  }
  return ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_RDTSC_EXITING
    ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_RDTSCP, e.length))
    : guestTsc(ctx);
};
