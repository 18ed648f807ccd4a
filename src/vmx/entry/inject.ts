// Event injection: when the VM-entry interruption-information field is valid, VM entry delivers that event
// through the guest's IDT after guest state is loaded and before the guest executes any instruction, as if the
// event had occurred right then. The exception bitmap does not apply to the injected event itself; a fault
// while delivering it is handled as any fault in VMX non-root operation. Type 7 ("other event", vector 0) makes
// a monitor-trap-flag VM exit pending instead. See SDM Vol. 3C, "Event Injection" and "Vectored-Event Injection".
import type { InjectedEvent, VmTransitionCpu } from '../transition/transition-cpu.ts';
import { readField32, type VmcsAccess } from '../transition/vmcs-access.ts';
import { INTR_TYPE, decodeInterruptionInfo } from '../transition/interruption-info.ts';
import { ACTIVITY_STATE } from '../transition/non-register-state.ts';

export type InjectionResult = 'none' | 'delivered' | 'pending-mtf-exit';

/** Deliver the injected event, if any. Call after VM entry has loaded guest state and entered non-root operation. */
export function injectEvent(cpu: VmTransitionCpu, vmcs: VmcsAccess): InjectionResult {
  const info = decodeInterruptionInfo(readField32(vmcs, 'VM_ENTRY_INTR_INFO_FIELD'));
  if (!info.valid) return 'none';
  if (info.type === INTR_TYPE.OTHER_EVENT) return 'pending-mtf-exit';
  const software = info.type === INTR_TYPE.SOFTWARE_INTERRUPT || info.type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION ||
    info.type === INTR_TYPE.SOFTWARE_EXCEPTION;
  // An injected event ends the HLT or shutdown activity state: the guest is active, running the handler.
  // See SDM Vol. 3C, "Activity State" in "Event Injection".
  cpu.setActivityState(ACTIVITY_STATE.ACTIVE);
  cpu.deliverEvent({
    type: info.type as InjectedEvent['type'],
    vector: info.vector,
    errorCode: info.deliverErrorCode ? readField32(vmcs, 'VM_ENTRY_EXCEPTION_ERROR_CODE') & 0xffff : null,
    instructionLength: software ? readField32(vmcs, 'VM_ENTRY_INSTRUCTION_LEN') : 0,
  });
  return 'delivered';
}
