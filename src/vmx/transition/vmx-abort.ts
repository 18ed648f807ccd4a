// A VMX abort: a VM exit (or the host-state part of a failed VM entry) that cannot complete. The processor writes
// a non-zero indicator into the VMX-abort field of the current VMCS region and enters the VMX-abort shutdown
// state, which only RESET leaves. See SDM Vol. 3C, "VMX Aborts".
import type { TransitionContext } from './transition-cpu.ts';
import { ACTIVITY_STATE } from './non-register-state.ts';
import { VMCS_ABORT_OFFSET } from '../vmcs.ts';

/** A VMX abort happened: the LP is in the VMX-abort shutdown state. */
export interface VmxAbort {
  readonly kind: 'vmx-abort';
  /** The VMX-abort indicator written (see VMX_ABORT_INDICATORS in ../errors.ts). */
  readonly indicator: number;
  readonly message: string;
}

export function vmxAbort(ctx: TransitionContext, indicator: number, message: string): VmxAbort {
  ctx.cpu.writePhysical32(ctx.vmcsPointer + BigInt(VMCS_ABORT_OFFSET), indicator);
  ctx.cpu.setActivityState(ACTIVITY_STATE.SHUTDOWN);
  return { kind: 'vmx-abort', indicator, message };
}
