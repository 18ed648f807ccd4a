// Watching VM transitions from outside the CPU: the seam the inspectors in src/debug (exit trace, VMCS dump) use
// instead of wrapping host entry points or VMX instructions. An observer is told about a VM exit, a VM entry or a
// VMLAUNCH/VMRESUME that failed, after the transition is complete; it gets facts read from the current VMCS and
// never changes architectural state (DESIGN.md, "Two channels").
//
// Unused, it costs one length check per transition and allocates nothing. Observers run inside the instruction
// or exit that they observe, so they must not throw (the inspectors in src/debug only record).
import type { LogicalProcessor } from '../machine/lp.ts';
import { EXIT_REASON_BASIC_MASK, VMX_EXIT_REASONS_FAILED_VMENTRY, exitReasonByNumber } from './exit-reasons.ts';
import { UNDEFINED_32 } from './exit/index.ts';
import type { VmxOutcome } from './instructions/outcome.ts';
import { SLOT, type ActiveVmcs } from './vmcs.ts';

/** A VM exit, or a VM-entry failure during or after loading guest state (bit 31 of the exit reason). */
export interface VmExitEvent {
  /** The logical processor (smp_processor_id()). */
  readonly lp: number;
  /** The full VM_EXIT_REASON value. */
  readonly reason: number;
  /** Bits 15:0 of the exit reason, and its Linux name (EXIT_REASON_*). */
  readonly basicReason: number;
  readonly name: string;
  /** Bit 31: the VM entry failed; guest state was never loaded. See SDM Vol. 3C, "Basic VM-Exit Information". */
  readonly entryFailure: boolean;
  readonly qualification: bigint;
  /** GUEST_RIP as saved by the exit (for a VM-entry failure: the value the entry did not load). */
  readonly guestRip: bigint;
  /**
   * VM_EXIT_INSTRUCTION_LEN where the SDM defines it for this exit; undefined where the emulator poisoned it, and
   * for VM-entry failures, which leave the field unmodified. See SDM Vol. 3C, "Information for VM Exits Due to
   * Instruction Execution" and "VM-Entry Failures During or After Loading Guest State".
   */
  readonly instructionLength: number | undefined;
  /** Instructions this LP has retired so far (its time base: one TSC tick each). */
  readonly instructions: number;
}

/** A successful VMLAUNCH or VMRESUME: the LP is now in VMX non-root operation. */
export interface VmEntryEvent {
  readonly lp: number;
  readonly instruction: 'VMLAUNCH' | 'VMRESUME';
  /** Where the guest starts (after any event injection). */
  readonly guestRip: bigint;
  readonly instructions: number;
}

/** A VMLAUNCH or VMRESUME that fell through in VMX root operation: VMfailInvalid or VMfailValid(error). */
export interface VmEntryFailureEvent {
  readonly lp: number;
  readonly instruction: 'VMLAUNCH' | 'VMRESUME';
  readonly outcome: 'VMfailInvalid' | 'VMfailValid';
  /** The VM-instruction error number (VMfailValid only). */
  readonly error: number | undefined;
  readonly instructions: number;
}

export interface VmxObserver {
  onVmExit?(e: VmExitEvent): void;
  onVmEntry?(e: VmEntryEvent): void;
  onVmEntryFailure?(e: VmEntryFailureEvent): void;
}

/** The observers of one VMX unit. */
export class VmxObservers {
  private list: readonly VmxObserver[] = [];

  get active(): boolean {
    return this.list.length !== 0;
  }

  /** Add an observer; the function returned removes it again. */
  add(o: VmxObserver): () => void {
    this.list = [...this.list, o];
    return () => {
      this.list = this.list.filter((x) => x !== o);
    };
  }

  /** After a VM exit or a VM-entry failure exit: the exit-information fields as the host will read them. */
  exited(lp: LogicalProcessor, vmcs: ActiveVmcs): void {
    const reason = vmcs.readLow(SLOT.VM_EXIT_REASON) >>> 0;
    const basicReason = reason & EXIT_REASON_BASIC_MASK;
    const entryFailure = (reason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0;
    const length = vmcs.readLow(SLOT.VM_EXIT_INSTRUCTION_LEN) >>> 0;
    const e: VmExitEvent = {
      lp: lp.id,
      reason,
      basicReason,
      name: exitReasonByNumber(basicReason)?.name ?? `unknown exit reason ${basicReason}`,
      entryFailure,
      qualification: vmcs.read(SLOT.EXIT_QUALIFICATION),
      guestRip: vmcs.read(SLOT.GUEST_RIP),
      instructionLength: entryFailure || length === UNDEFINED_32 ? undefined : length,
      instructions: lp.instructions,
    };
    for (const o of this.list) o.onVmExit?.(e);
  }

  /**
   * The outcome of VMLAUNCH/VMRESUME, before the unit performs it (so a pending MTF exit right after the entry is
   * reported after the entry). Faults and VM exits of a VMLAUNCH in VMX non-root operation are not entries.
   */
  entryOutcome(lp: LogicalProcessor, vmcs: ActiveVmcs | null, instruction: 'VMLAUNCH' | 'VMRESUME', outcome: VmxOutcome): void {
    switch (outcome.kind) {
      case 'vm-entered': {
        const e: VmEntryEvent = { lp: lp.id, instruction, guestRip: lp.getReg('rip'), instructions: lp.instructions };
        for (const o of this.list) o.onVmEntry?.(e);
        return;
      }
      case 'vm-entry-failed':
        if (vmcs !== null) this.exited(lp, vmcs);
        return;
      case 'VMfailInvalid':
      case 'VMfailValid': {
        const error = outcome.kind === 'VMfailValid' ? outcome.error : undefined;
        const e: VmEntryFailureEvent = { lp: lp.id, instruction, outcome: outcome.kind, error, instructions: lp.instructions };
        for (const o of this.list) o.onVmEntryFailure?.(e);
        return;
      }
      default:
        return;
    }
  }
}
