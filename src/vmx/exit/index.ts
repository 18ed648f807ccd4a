// VM exits, first cut: record the exit information, save guest state, store MSRs, load host state, load MSRs,
// and hand control to the host at HOST_RIP — or, if a step that cannot fail architecturally does fail, a VMX
// abort. See SDM Vol. 3C, "VM Exits" and "VMX Aborts".
import type { TransitionContext } from '../transition/transition-cpu.ts';
import { finishWithHostState, type ExitOutcome } from '../transition/finish-with-host-state.ts';
import { vmxAbort } from '../transition/vmx-abort.ts';
import type { VmExitCause } from './info.ts';
import { recordExitInformation } from './info.ts';
import { saveGuestState } from './save-guest.ts';
import { storeExitMsrs } from './msr-store.ts';
import { VMX_ABORT_MACHINE_CHECK, VMX_ABORT_SAVE_GUEST_MSR_FAIL } from '../errors.ts';

export type { VmExitCause } from './info.ts';
export type { ExitOutcome } from '../transition/finish-with-host-state.ts';
export { UNDEFINED_32, UNDEFINED_64, UNDEFINED_INVALID_INFO } from './info.ts';

/** What a VM exit needs: the LP, the current VMCS and the current-VMCS pointer (for the VMX-abort indicator). */
export type ExitContext = TransitionContext;

/**
 * Perform a VM exit. The end is an `ExitOutcome`: the LP is in VMX root operation with host state loaded and the
 * caller transfers control to HOST_RIP, or a VMX abort put the LP into the VMX-abort shutdown state.
 */
export function vmExit(ctx: ExitContext, cause: VmExitCause): ExitOutcome {
  const { cpu, vmcs } = ctx;
  recordExitInformation(vmcs, cause);
  saveGuestState(vmcs, cpu, cause.guestRip);
  const badStore = storeExitMsrs(vmcs, cpu, cpu.caps.misc.maxMsrListEntries);
  if (badStore === 'machine-check') return vmxAbort(ctx, VMX_ABORT_MACHINE_CHECK, 'the VM-exit MSR-store count exceeds the recommended maximum: machine check during VM exit');
  if (badStore !== 0) return vmxAbort(ctx, VMX_ABORT_SAVE_GUEST_MSR_FAIL, `VM-exit MSR-store entry ${badStore} could not be stored`);
  return finishWithHostState(ctx);
}

// The causes (which exit-information fields each kind of exit defines) live with the exit causes, ../nonroot/.
