// Event injection: when the VM-entry interruption-information field is valid, VM entry delivers that event
// through the guest's IDT after guest state is loaded and before the guest executes any instruction, as if the
// event had occurred right then. The exception bitmap does not apply to the injected event itself; a fault
// while delivering it is handled as any fault in VMX non-root operation. Type 7 ("other event", vector 0) makes
// a monitor-trap-flag VM exit pending instead. See SDM Vol. 3C, "Event Injection" and "Vectored-Event Injection".
import { readField32, type VmcsAccess, type VmTransitionCpu } from './context.ts';
import { INTR_TYPE, decodeInterruptionInfo } from './bits.ts';

/** The event VM entry injects, as the processor delivers it. */
export interface InjectedEvent {
  /** Interruption type: 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged
   *  software exception, 6 software exception. */
  readonly type: 0 | 2 | 3 | 4 | 5 | 6;
  readonly vector: number;
  /** The error code pushed, or null when "deliver error code" is 0. */
  readonly errorCode: number | null;
  /**
   * VM-entry instruction length: for software interrupts and exceptions (types 4–6) the return address pushed
   * is RIP + this length, as if the INT n / INT3 / INTO / INT1 instruction had executed. 0 for other types.
   */
  readonly instructionLength: number;
}

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
  cpu.setActivityState(0);
  cpu.deliverEvent({
    type: info.type as InjectedEvent['type'],
    vector: info.vector,
    errorCode: info.deliverErrorCode ? readField32(vmcs, 'VM_ENTRY_EXCEPTION_ERROR_CODE') & 0xffff : null,
    instructionLength: software ? readField32(vmcs, 'VM_ENTRY_INSTRUCTION_LEN') : 0,
  });
  return 'delivered';
}
