// What an exit-cause handler sees while the logical processor runs in VMX non-root operation: the LP, the
// current VMCS's fields, and a way to perform a VM exit. The VMX unit (../unit.ts) implements it.
import type { LogicalProcessor } from '../../machine/lp.ts';
import type { InterceptAnswer, VmxInterceptEvent } from '../../machine/vmx-seam.ts';
import type { VmxCapabilities } from '../capabilities.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import type { VmExitCause } from '../exit/info.ts';
import type { VmcsFieldName, VmcsFullFieldName } from '../fields.ts';
import type { VmxState } from '../state.ts';

export interface NonRootContext {
  readonly lp: LogicalProcessor;
  readonly caps: VmxCapabilities;
  /** This LP's VMX state (e.g. what PAUSE-loop exiting remembers between PAUSEs). */
  readonly state: VmxState;
  /** Bits 31:0 of a field of the current VMCS (16- and 32-bit fields, and the low half of wider ones). */
  read32(field: VmcsFieldName): number;
  /** A 64-bit or natural-width field of the current VMCS. */
  read64(field: VmcsFullFieldName): bigint;
  /** Perform the VM exit `cause` describes (exit information, guest state saved, host state loaded). Returns EXITED. */
  exit(cause: VmExitCause): InterceptAnswer;
}

/** One exit cause: decides, for one kind of event, whether it exits, runs natively, or runs with a substitute value. */
export type ExitCauseHandler<K extends VmxInterceptEvent['kind']> =
  (ctx: NonRootContext, event: Extract<VmxInterceptEvent, { kind: K }>) => InterceptAnswer;

/** The secondary controls as they apply: all 0 unless "activate secondary controls" is 1. */
export function secondaryControls(ctx: NonRootContext): number {
  return ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS ? ctx.read32('SECONDARY_VM_EXEC_CONTROL') : 0;
}
