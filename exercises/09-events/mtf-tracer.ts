// Exercise 9.5 — a single-step tracer with the monitor trap flag. With CPU_BASED_MONITOR_TRAP_FLAG (bit 27) set, the
// processor exits (reason 37) at the boundary after each guest instruction — or after a fault or interrupt was
// delivered, at the handler's first instruction. An MTF exit is not caused by an instruction: GUEST_RIP already
// points at the next instruction, VM_EXIT_INSTRUCTION_LEN is undefined, and the handler must RESUME, never SKIP.
// Read chapters/09-events/README.md. Yours to write: the MTF handler of mtfTracerPart.
// See SDM Vol. 3C, "Monitor Trap Flag".
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmread } from '../02-vmcs/vmx-access.ts';
import { RESUME, stop, type VmmPart } from '../05-exits/hypervisor.ts';

/** A part that asks for the monitor trap flag and records GUEST_RIP at each MTF exit, up to `limit` steps. */
export function mtfTracerPart(opts: { limit?: number } = {}): VmmPart & { readonly rips: readonly bigint[] } {
  const rips: bigint[] = [];
  const limit = opts.limit ?? 10_000;
  return {
    name: 'mtf-tracer',
    rips,
    controls: { proc: { want: VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG } },
    handlers: {
      [EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG]: (v) => {
        // TODO: VMREAD GUEST_RIP (failure → stop), rips.push it; RESUME (stop once rips.length reaches limit).
        // Never SKIP: an MTF exit is not caused by an instruction and GUEST_RIP already is the next one.
        throw new Error('TODO: mtfTracerPart MTF handler');
      },
    },
  };
}
