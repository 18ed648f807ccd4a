// VM exits that happen at an instruction boundary rather than on an instruction: the monitor trap flag (37), the
// VMX-preemption timer (52), NMI-window exiting (8) and interrupt-window exiting (7). The CPU calls `atBoundary`
// before every guest instruction while one of them is enabled (src/machine/vmx-seam.ts, `boundaryHook`).
// A debug exception the VMCS's pending debug exceptions field leaves pending is delivered here too, at the first
// boundary after VM entry. Priority at one boundary, highest first (each control's own section states its neighbours):
//   MTF — "MTF VM exits take priority over debug-trap exceptions and lower priority events";
//   the pending #DB — it "has the priority of 'traps on the previous instruction'";
//   the preemption timer — "Debug-trap exceptions and higher priority events take priority over VM exits caused by
//   the VMX-preemption timer"; NMI-window exits — "take priority over NMIs and lower priority events";
//   an NMI (its exit or delivery, done by the CPU); interrupt-window exits — "NMIs and higher priority events take
//   priority over VM exits caused by this control", they "take priority over external interrupts".
// See SDM Vol. 3C, "Monitor Trap Flag", "VMX-Preemption Timer", "NMI-Window Exiting", "Interrupt-Window Exiting
// and Virtual-Interrupt Delivery" and "Delivery of Pending Debug Exceptions after VM Entry".
import type { LogicalProcessor } from '../../machine/lp.ts';
import { deliverWithDoubleFault, EVENT_HW_EXCEPTION } from '../../machine/interrupts.ts';
import { DB_VECTOR } from '../../x86/exceptions.ts';
import { DR6 } from '../../x86/control-registers.ts';
import { PENDING_DBG } from '../transition/non-register-state.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import type { VmcsFieldName } from '../fields.ts';

/** What the boundary checks need from the VMX unit. */
export interface BoundaryContext {
  read32(field: VmcsFieldName): number;
  exit(cause: VmExitCause): unknown;
  /** The guest's pending debug exceptions (loaded from the VMCS by VM entry, saved to it by VM exits). */
  readonly cpu: { pendingDebugExceptions(): bigint; setPendingDebugExceptions(value: bigint): void };
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
  /** A #DB from the pending debug exceptions field is to be delivered at a boundary without MOV-SS blocking. */
  private debugPending = false;

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
    this.debugPending = this.pendingDebugAfterEntry(ctx, lp, injectedVectoredEvent);
    this.timerActive = (pin & C.PIN_BASED_VMX_PREEMPTION_TIMER) !== 0;
    if (this.timerActive) {
      this.timerStartTsc = tsc(lp);
      this.timerLoaded = ctx.read32('VMX_PREEMPTION_TIMER_VALUE');
      this.timerRate = timerRate;
    }
    return mtf || this.timerActive || this.debugPending ||
      (proc & (C.CPU_BASED_INTR_WINDOW_EXITING | C.CPU_BASED_NMI_WINDOW_EXITING)) !== 0;
  }

  /**
   * Are there valid pending debug exceptions (BS, or "enabled breakpoint") that VM entry leaves to be delivered?
   * They are lost if the entry injects an event other than a software interrupt/exception under MOV-SS blocking, or
   * puts the guest in shutdown or wait-for-SIPI. Injecting INT n, INT3 or INTO under MOV-SS blocking keeps them in
   * the field (VMX Lab does not model "as if INT3 were executed after a MOV SS that encountered a debug trap").
   * See SDM Vol. 3C, "Delivery of Pending Debug Exceptions after VM Entry".
   */
  private pendingDebugAfterEntry(ctx: BoundaryContext, lp: LogicalProcessor, vectoring: boolean): boolean {
    const p = ctx.cpu.pendingDebugExceptions();
    if ((p & (PENDING_DBG.BS | PENDING_DBG.ENABLED_BREAKPOINT)) === 0n) return false;
    const movSs = lp.shadowAt === lp.instructions && lp.shadowKind === 'mov-ss';
    const info = ctx.read32('VM_ENTRY_INTR_INFO_FIELD');
    const type = (info >>> 8) & 7;
    const keptInField = vectoring && movSs && (type === 4 || type === 6);
    if (keptInField) return false;
    if (vectoring || lp.activity === 'shutdown' || lp.activity === 'wait-for-sipi') {
      ctx.cpu.setPendingDebugExceptions(0n); // lost
      return false;
    }
    return true;
  }

  /** Deliver the pending #DB as a trap on the previous instruction: DR6 gets B3–B0 and BS (or exit via bit 1). */
  private deliverPendingDebug(ctx: BoundaryContext, lp: LogicalProcessor): void {
    const p = ctx.cpu.pendingDebugExceptions();
    ctx.cpu.setPendingDebugExceptions(0n);
    lp.pendingDr6 = Number(p & PENDING_DBG.B0_B3) | ((p & PENDING_DBG.BS) !== 0n ? DR6.BS : 0);
    if (lp.activity === 'hlt') lp.activity = 'active'; // an event delivered ends the halt
    deliverWithDoubleFault(lp, { vector: DB_VECTOR, errorCode: -1, explanation: 'debug exception pending at VM entry' }, EVENT_HW_EXCEPTION, lp.rip, 0);
  }

  /**
   * A debug trap (single-step) at the end of an instruction while MTF is on: the MTF VM exit comes first ("MTF VM
   * exits take priority over debug-trap exceptions"), so the trap stays pending and that exit saves it in the pending
   * debug exceptions field; the next VM entry delivers it. See SDM Vol. 3C, "Monitor Trap Flag".
   */
  holdDebugTrap(ctx: BoundaryContext, dr6: number): boolean {
    if ((ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_MONITOR_TRAP_FLAG) === 0) return false;
    const bits = BigInt(dr6 & 0xf) | ((dr6 & DR6.BS) !== 0 ? PENDING_DBG.BS : 0n);
    ctx.cpu.setPendingDebugExceptions(ctx.cpu.pendingDebugExceptions() | bits);
    return true;
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

  /**
   * TSC ticks until the timer reaches 0 (0 if it has; Infinity without the timer): it does when TSC bit X has
   * changed as many times as the loaded value, at the next multiple of 2^X after that many. See SDM Vol. 3C,
   * "VMX-Preemption Timer".
   */
  ticksUntilTimerExpiry(lp: LogicalProcessor): number {
    if (!this.timerActive) return Infinity;
    const shift = 2 ** this.timerRate;
    const expiry = (Math.floor(this.timerStartTsc / shift) + this.timerLoaded) * shift;
    return Math.max(0, expiry - tsc(lp));
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
    // Blocking by MOV SS holds the pending #DB for one more instruction. See SDM Vol. 3A, "Interrupt and Exception
    // Priorities" ("MOV SS and POP SS" inhibit debug traps).
    if (this.debugPending && !(lp.shadowAt === lp.instructions && lp.shadowKind === 'mov-ss')) {
      this.debugPending = false;
      this.deliverPendingDebug(ctx, lp);
      // Delivered through the IDT or exited through the exception bitmap: this boundary is used up. If delivered,
      // the next boundary (the handler's first instruction) sees RIP moved, so MTF exits there ("an MTF VM exit is
      // pending on the instruction boundary following delivery of the event").
      return true;
    }
    if (this.timerActive && this.timerValue(lp) === 0) {
      ctx.exit({ reason: EXIT_REASON.EXIT_REASON_PREEMPTION_TIMER, qualification: 0n });
      return true;
    }
    // The windows too are open in the HLT state: interrupt-window exits "wake a logical processor from the same
    // inactive states as would an external interrupt", NMI-window exits from those an NMI would (HLT among them);
    // the exit saves HLT as the activity state. Neither occurs in wait-for-SIPI (nor the interrupt window in
    // shutdown); the CPU asks here only in HLT. See SDM Vol. 3C, "Interrupt-Window Exiting and Virtual-Interrupt
    // Delivery", "NMI-Window Exiting" and "Saving Non-Register State".
    if (lp.activity !== 'active' && lp.activity !== 'hlt') return false;
    // STI and MOV-SS blocking hold off both windows for one instruction (this processor also blocks NMIs after
    // STI, so the NMI window too). See SDM Vol. 3C, "Interruptibility State".
    const shadow = lp.shadowAt === lp.instructions;
    // NMI-window exiting needs "virtual NMIs" (a VM-entry check): the window is the absence of virtual-NMI blocking.
    if ((proc & C.CPU_BASED_NMI_WINDOW_EXITING) !== 0 && !lp.virtualNmiBlocked && !shadow) {
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
