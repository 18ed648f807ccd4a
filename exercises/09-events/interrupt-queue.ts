// Exercise 9.4 — an interrupt queue with interrupt-window exiting. A hypervisor that has an external interrupt for
// the guest may inject it only when the guest can take it: RFLAGS.IF = 1 and no blocking by STI or by MOV SS
// (GUEST_INTERRUPTIBILITY_INFO bits 0 and 1) — otherwise VM entry fails its checks (exit 33). When the guest cannot
// take it, set "interrupt-window exiting" (CPU_BASED_INTR_WINDOW_EXITING, bit 2): the processor exits (reason 7) at
// the first boundary where IF = 1 and nothing blocks, and the interrupt is injected then. Clear the control when the
// queue is empty, or the guest exits at every instruction. See SDM Vol. 3C, "Interrupt-Window Exiting and
// Virtual-Interrupt Delivery", "Interruptibility State" and "Checks on Guest Non-Register State".
// Read chapters/09-events/README.md. Yours to write: canInjectInterrupt, setInterruptWindow, InterruptQueue.deliver and
// the two handlers of interruptQueuePart.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { RFLAGS } from '../../src/x86/flags.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, SKIP, stop, type ExitAction, type SetupResult, type VmmPart } from '../05-exits/hypervisor.ts';
import { inject, INTR_TYPE } from './inject.ts';

const BLOCKING_BY_STI = 1 << 0;
const BLOCKING_BY_MOV_SS = 1 << 1;

/** Can an external interrupt be injected now: IF = 1 and no STI or MOV-SS blocking. */
export function canInjectInterrupt(rflags: bigint, interruptibility: number): boolean {
  // TODO: RFLAGS.IF (bit 9) set and interruptibility bits 0 (STI) and 1 (MOV SS) clear.
  throw new Error('TODO: canInjectInterrupt');
}

/** Set or clear interrupt-window exiting in CPU_BASED_VM_EXEC_CONTROL. */
export function setInterruptWindow(cpu: HostCpu, on: boolean): SetupResult {
  // TODO: VMREAD CPU_BASED_VM_EXEC_CONTROL, set or clear VMX_CONTROL.CPU_BASED_INTR_WINDOW_EXITING, VMWRITE it (>>> 0).
  throw new Error('TODO: setInterruptWindow');
}

/** A FIFO of external-interrupt vectors for one guest. */
export class InterruptQueue {
  readonly pending: number[] = [];

  raise(vector: number): void {
    this.pending.push(vector);
  }

  /**
   * Before the next VM entry: inject the first pending vector if the guest can take it now (type 0, no error code),
   * and keep interrupt-window exiting on exactly while vectors are still waiting.
   */
  deliver(cpu: HostCpu): SetupResult {
    // TODO: if vectors are pending, VMREAD GUEST_RFLAGS and GUEST_INTERRUPTIBILITY_INFO; if canInjectInterrupt,
    // inject the first as an EXTERNAL_INTERRUPT (no error code) and shift it off. Then setInterruptWindow(cpu,
    // pending.length > 0) — on while something waits, off when the queue is empty.
    throw new Error('TODO: InterruptQueue.deliver');
  }
}

/**
 * A part: the guest raises an interrupt with VMCALL (RAX = vector, 32–255); the VMCALL is skipped and the queue
 * delivered. Interrupt-window exit: deliver and RESUME. Models without interrupt-window exiting cannot run it.
 */
export function interruptQueuePart(): VmmPart & { readonly queue: InterruptQueue } {
  const queue = new InterruptQueue();
  const after = (r: SetupResult, action: ExitAction): ExitAction => (r.ok ? action : stop(r.error));
  return {
    name: 'interrupt-queue',
    queue,
    // Asked for here (want) so a model without it refuses the part; setup turns it off until it is needed.
    controls: { proc: { want: VMX_CONTROL.CPU_BASED_INTR_WINDOW_EXITING } },
    setup: (v) => setInterruptWindow(v.cpu, false),
    handlers: {
      [EXIT_REASON.EXIT_REASON_VMCALL]: (v) => {
        // TODO: vector = EAX (32–255, else stop); queue.raise(vector); after(queue.deliver(v.cpu), SKIP).
        throw new Error('TODO: interruptQueuePart VMCALL handler');
      },
      [EXIT_REASON.EXIT_REASON_INTERRUPT_WINDOW]: (v) => {
        // TODO: deliver, then RESUME — an interrupt-window exit is not caused by an instruction.
        throw new Error('TODO: interruptQueuePart interrupt-window handler');
      },
    },
  };
}
