// VM-exit causes as the exit-information fields describe them: which fields the SDM defines for each kind of
// exit. Anything not set here is recorded as undefined (poisoned). See SDM Vol. 3C, "Basic VM-Exit Information"
// and "Information for VM Exits Due to Instruction Execution".
import type { VmExitCause } from '../exit/info.ts';
import { EXIT_REASON, type ExitReasonNumber } from '../exit-reasons.ts';

/** An exit caused by executing an instruction: the instruction length is defined. */
export function instructionExit(reason: ExitReasonNumber, instructionLength: number, qualification?: bigint): VmExitCause {
  return qualification === undefined ? { reason, instructionLength } : { reason, instructionLength, qualification };
}

/** HLT with "HLT exiting" = 1: an instruction exit (length defined, no qualification, no instruction info). */
export function hltExit(instructionLength: number): VmExitCause {
  return instructionExit(EXIT_REASON.EXIT_REASON_HLT, instructionLength);
}
/** CPUID always exits in VMX non-root operation. See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally". */
export function cpuidExit(instructionLength: number): VmExitCause {
  return instructionExit(EXIT_REASON.EXIT_REASON_CPUID, instructionLength);
}
/** VMCALL exits unconditionally in VMX non-root operation; the interpreter has already moved RIP past it. */
export function vmcallExit(instructionLength: number, instructionRip: bigint): VmExitCause {
  return { reason: EXIT_REASON.EXIT_REASON_VMCALL, instructionLength, guestRip: instructionRip };
}
/** A triple fault: not caused by an instruction, so instruction length and information are undefined. */
export function tripleFaultExit(): VmExitCause {
  return { reason: EXIT_REASON.EXIT_REASON_TRIPLE_FAULT };
}
