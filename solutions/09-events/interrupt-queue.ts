// Exercise 9.4 — an interrupt queue with interrupt-window exiting. A hypervisor that has an external interrupt for
// the guest may inject it only when the guest can take it: RFLAGS.IF = 1 and no blocking by STI or by MOV SS
// (GUEST_INTERRUPTIBILITY_INFO bits 0 and 1) — otherwise VM entry fails its checks (exit 33). When the guest cannot
// take it, set "interrupt-window exiting" (CPU_BASED_INTR_WINDOW_EXITING, bit 2): the processor exits (reason 7) at
// the first boundary where IF = 1 and nothing blocks, and the interrupt is injected then. Clear the control when the
// queue is empty, or the guest exits at every instruction. See SDM Vol. 3C, "Interrupt-Window Exiting and
// Virtual-Interrupt Delivery", "Interruptibility State" and "Checks on Guest Non-Register State".
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
  return (rflags & BigInt(RFLAGS.IF)) !== 0n && (interruptibility & (BLOCKING_BY_STI | BLOCKING_BY_MOV_SS)) === 0;
}

/** Set or clear interrupt-window exiting in CPU_BASED_VM_EXEC_CONTROL. */
export function setInterruptWindow(cpu: HostCpu, on: boolean): SetupResult {
  const p = vmread(cpu, 'CPU_BASED_VM_EXEC_CONTROL');
  if (!p.ok) return { ok: false, error: `VMREAD CPU_BASED_VM_EXEC_CONTROL: ${describeVmxError(p.error)}` };
  const bit = VMX_CONTROL.CPU_BASED_INTR_WINDOW_EXITING;
  const w = vmwrite(cpu, 'CPU_BASED_VM_EXEC_CONTROL', (on ? p.value | bit : p.value & ~bit) >>> 0);
  return w.ok ? SETUP_OK : { ok: false, error: `VMWRITE CPU_BASED_VM_EXEC_CONTROL: ${describeVmxError(w.error)}` };
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
    if (this.pending.length > 0) {
      const f = vmread(cpu, 'GUEST_RFLAGS');
      if (!f.ok) return { ok: false, error: `VMREAD GUEST_RFLAGS: ${describeVmxError(f.error)}` };
      const i = vmread(cpu, 'GUEST_INTERRUPTIBILITY_INFO');
      if (!i.ok) return { ok: false, error: `VMREAD GUEST_INTERRUPTIBILITY_INFO: ${describeVmxError(i.error)}` };
      if (canInjectInterrupt(f.value, i.value)) {
        const r = inject(cpu, { vector: this.pending[0]!, type: INTR_TYPE.EXTERNAL_INTERRUPT });
        if (!r.ok) return r;
        this.pending.shift();
      }
    }
    return setInterruptWindow(cpu, this.pending.length > 0);
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
        const vector = Number(v.cpu.readGpr('rax') & 0xffffffffn);
        if (vector < 32 || vector > 255) return stop(`VMCALL: ${vector} is not an external-interrupt vector (32–255)`);
        queue.raise(vector);
        return after(queue.deliver(v.cpu), SKIP);
      },
      [EXIT_REASON.EXIT_REASON_INTERRUPT_WINDOW]: (v) => after(queue.deliver(v.cpu), RESUME),
    },
  };
}
