// VM exits that happen at an instruction boundary rather than on an instruction: the monitor trap flag (37), the
// VMX-preemption timer (52), NMI-window exiting (8) and interrupt-window exiting (7). The CPU calls `atBoundary`
// before every guest instruction while one of them is enabled (src/machine/vmx-seam.ts, `boundaryHook`).
// Priority at one boundary, highest first (each control's own section states its neighbours):
//   MTF — "MTF VM exits take priority over debug-trap exceptions and lower priority events";
//   the preemption timer; NMI-window exits — "take priority over NMIs and lower priority events";
//   an NMI (its exit or delivery, done by the CPU); interrupt-window exits — "NMIs and higher priority events take
//   priority over VM exits caused by this control", they "take priority over external interrupts".
// See SDM Vol. 3C, "Monitor Trap Flag", "VMX-Preemption Timer", "NMI-Window Exiting" and "Interrupt-Window Exiting
// and Virtual-Interrupt Delivery".
import type { LogicalProcessor } from '../../machine/lp.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import type { VmcsFieldName } from '../fields.ts';

/** What the boundary checks need from the VMX unit. */
export interface BoundaryContext {
  read32(field: VmcsFieldName): number;
  exit(cause: VmExitCause): unknown;
}

/** Per-LP state of the boundary exits between a VM entry and the next VM exit. */
export class BoundaryState {
  /** An MTF VM exit is pending at the next boundary (VM entry injected a vectored event). */
  mtfPending = false;
  /** Retired-instruction count and RIP at the last boundary: a change means an instruction completed or an event
   *  (a fault of the instruction, an interrupt) was delivered, either of which ends an MTF step. */
  private markInstructions = 0;
  private markRip = 0;
  timerActive = false;
  /** TSC at VM entry, the value loaded and the rate X (the timer counts down each time TSC bit X changes). */
  private timerStartTsc = 0;
  private timerLoaded = 0;
  private timerRate = 0;

  /**
   * After a successful VM entry (and its event injection): start the timer from the VMCS value and note where MTF
   * starts counting. Returns whether any boundary exit is enabled.
   */
  arm(ctx: BoundaryContext, lp: LogicalProcessor, timerRate: number, injectedVectoredEvent: boolean): boolean {
    const pin = ctx.read32('PIN_BASED_VM_EXEC_CONTROL'), proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
    const mtf = (proc & C.CPU_BASED_MONITOR_TRAP_FLAG) !== 0;
    // "If the 'monitor trap flag' VM-execution control is 1 and VM entry is injecting a vectored event, an MTF VM
    // exit is pending on the instruction boundary before the first instruction following the VM entry" — the
    // first instruction of the handler. See SDM Vol. 3C, "Monitor Trap Flag".
    this.mtfPending = mtf && injectedVectoredEvent;
    this.markInstructions = lp.instructions;
    this.markRip = lp.rip;
    this.timerActive = (pin & C.PIN_BASED_VMX_PREEMPTION_TIMER) !== 0;
    if (this.timerActive) {
      this.timerStartTsc = tsc(lp);
      this.timerLoaded = ctx.read32('VMX_PREEMPTION_TIMER_VALUE');
      this.timerRate = timerRate;
    }
    return mtf || this.timerActive ||
      (proc & (C.CPU_BASED_INTR_WINDOW_EXITING | C.CPU_BASED_NMI_WINDOW_EXITING)) !== 0;
  }

  /**
   * The timer's current value: the loaded value less the number of times TSC bit X has changed since VM entry, and
   * 0 once it got there (it stops). See SDM Vol. 3C, "VMX-Preemption Timer".
   */
  timerValue(lp: LogicalProcessor): number {
    const shift = 2 ** this.timerRate;
    const ticks = Math.floor(tsc(lp) / shift) - Math.floor(this.timerStartTsc / shift);
    return Math.max(0, this.timerLoaded - ticks);
  }

  /** One instruction boundary in VMX non-root operation: perform the highest-priority boundary exit, if any. */
  atBoundary(ctx: BoundaryContext, lp: LogicalProcessor): boolean {
    const proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
    const stepped = lp.instructions !== this.markInstructions || lp.rip !== this.markRip;
    this.markInstructions = lp.instructions;
    this.markRip = lp.rip;
    if ((proc & C.CPU_BASED_MONITOR_TRAP_FLAG) !== 0 && (this.mtfPending || stepped)) {
      this.mtfPending = false;
      ctx.exit({ reason: EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG, qualification: 0n });
      return true;
    }
    if (this.timerActive && this.timerValue(lp) === 0) {
      ctx.exit({ reason: EXIT_REASON.EXIT_REASON_PREEMPTION_TIMER, qualification: 0n });
      return true;
    }
    // STI and MOV-SS blocking hold off both windows for one instruction (this processor also blocks NMIs after
    // STI, so the NMI window too). See SDM Vol. 3C, "Interruptibility State".
    const shadow = lp.shadowAt === lp.instructions;
    if ((proc & C.CPU_BASED_NMI_WINDOW_EXITING) !== 0 && !lp.nmiBlocked && !shadow) {
      // With "virtual NMIs" = 1, the LP's NMI blocking is the guest's virtual-NMI blocking (./interrupts.ts).
      ctx.exit({ reason: EXIT_REASON.EXIT_REASON_NMI_WINDOW, qualification: 0n });
      return true;
    }
    // A deliverable NMI outranks the interrupt window: leave it to the CPU (its exit, or delivery).
    if (!shadow && !lp.nmiBlocked && (lp.nmiPending || (lp.apic !== null && lp.apic.nmiPending))) return false;
    if ((proc & C.CPU_BASED_INTR_WINDOW_EXITING) !== 0 && (lp.rflagsRaw & RFLAGS.IF) !== 0 && !shadow) {
      ctx.exit({ reason: EXIT_REASON.EXIT_REASON_INTERRUPT_WINDOW, qualification: 0n });
      return true;
    }
    return false;
  }
}

/** The LP's time-stamp counter as a number: the preemption timer counts with the TSC itself (no TSC offset). */
function tsc(lp: LogicalProcessor): number {
  return lp.instructions + lp.tscOffset;
}
