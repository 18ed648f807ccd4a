// VM entry after VMLAUNCH/VMRESUME passed their own checks (#UD/#GP, VMfailInvalid, errors 4/5/26): the checks on
// the VMX controls and host-state area (VMfailValid 7 or 8), the checks on the guest-state area (a VM-entry
// failure exit with reason 33), loading guest state, loading MSRs (failure: exit reason 34).
// See SDM Vol. 3C, "VM Entries" and Vol. 2B, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine".
import type { EntryContext } from './context.ts';
import type { CheckFailure, EntryCheck, MsrLoadCheck, StateCheck } from './rule.ts';
import { CONTROL_CHECKS } from './controls.ts';
import { HOST_STATE_CHECKS } from './host-state.ts';
import { GUEST_REGISTER_CHECKS } from './guest-registers.ts';
import { GUEST_SEGMENT_CHECKS } from './guest-segments.ts';
import { GUEST_NON_REGISTER_CHECKS } from './guest-non-register.ts';
import { MSR_LIST_TOO_LONG_RULE, MSR_LOAD_CHECKS, loadEntryMsrs } from './msr-load.ts';
import { loadGuestState } from './load-guest.ts';
import { EntryView } from './view.ts';
import { ReadRecorder, firstFailingCheck } from './incremental.ts';
import { finishWithHostState, type ExitOutcome } from '../transition/finish-with-host-state.ts';
import { INTERRUPTIBILITY } from '../transition/non-register-state.ts';
import { VMX_EXIT_REASONS_FAILED_VMENTRY } from '../exit-reasons.ts';

export type { EntryContext } from './context.ts';
export type { EntryCheck, StateCheck, MsrLoadCheck, EntryCheckOutcome, CheckFailure } from './rule.ts';
export { EntryView } from './view.ts';

/**
 * Every VM-entry check, in the order this CPU runs them: controls (error 7), host state (error 8), guest state
 * (exit 33: registers, segments, descriptor tables, RIP/RFLAGS, non-register state, link pointer, PDPTEs), then
 * the per-entry MSR-loading rules (exit 34). The SDM lets a processor run checks within each group in any order;
 * this order follows the SDM's text.
 */
export const STATE_CHECKS: readonly StateCheck[] = [
  ...CONTROL_CHECKS,
  ...HOST_STATE_CHECKS,
  ...GUEST_REGISTER_CHECKS.filter((c) => c.section === 'Checks on Guest Control Registers, Debug Registers, and MSRs'),
  ...GUEST_SEGMENT_CHECKS,
  ...GUEST_REGISTER_CHECKS.filter((c) => c.section !== 'Checks on Guest Control Registers, Debug Registers, and MSRs'),
  ...GUEST_NON_REGISTER_CHECKS,
];
export const ENTRY_CHECKS: readonly EntryCheck[] = [...STATE_CHECKS, ...MSR_LOAD_CHECKS];

/** The explanation channel: which rule failed, where to read about it, and on what value. */
export interface EntryDiagnosis {
  /** The check's id, e.g. `guest-cs-ar-type`. */
  readonly rule: string;
  /** SDM reference by section title. */
  readonly sdm: string;
  readonly field?: string;
  readonly value?: bigint;
  readonly expected?: string;
  readonly message: string;
  /** The rule's general explanation. */
  readonly explain: string;
}

export type VmEntryOutcome =
  | { readonly kind: 'VMfailValid'; readonly error: 7 | 8; readonly diagnosis: EntryDiagnosis }
  | {
    readonly kind: 'entry-failure-exit';
    /** 33 invalid guest state, 34 MSR loading, 41 machine check (only for an over-long MSR-load list). */
    readonly reason: 33 | 34 | 41;
    /** Exit qualification: 0, 2 (PDPTE), 3 (NMI under STI), 4 (link pointer) for 33; the entry's 1-based index for 34. */
    readonly qualification: number;
    readonly diagnosis: EntryDiagnosis;
    /** Host state was loaded: where the host continues (HOST_RIP), or a VMX abort. */
    readonly then: ExitOutcome;
  }
  /** Guest state is loaded; the caller marks a launched VMCS, enters VMX non-root operation, delivers any injected event. */
  | { readonly kind: 'entered' };

/** Notes what the checks read, for ./incremental.ts (one is enough: VM entry does not nest). */
const RECORDER = new ReadRecorder();

export function vmEntry(ctx: EntryContext): VmEntryOutcome {
  const recorder = ctx.cached !== undefined ? RECORDER : undefined;
  const v = new EntryView(ctx, recorder);

  // Checks on the VMX controls, the host-state area and the guest-state area, in order: the first that fails
  // decides the outcome. With a cached VMCS, only the checks whose inputs changed since they last all passed run
  // (the outcome is the same). See SDM Vol. 3C, "Checks on VMX Controls and Host-State Area" and "Checking and
  // Loading Guest State".
  const failed = firstFailingCheck(v, STATE_CHECKS, ctx.cached, recorder);
  if (failed !== null) {
    const { check, result } = failed;
    const diagnosis = diagnose(check, result);
    const o = check.outcome;
    if (o.kind === 'VMfailValid') return { kind: 'VMfailValid', error: o.error, diagnosis };
    return entryFailure(ctx, o.reason, o.qualification, diagnosis, null);
  }

  // Loading guest state, then the VM-entry MSR-load area. See SDM Vol. 3C, "Loading Guest State" and "Loading MSRs".
  const nmiBlockingBefore = ctx.cpu.interruptibility() & INTERRUPTIBILITY.BLOCKING_BY_NMI;
  loadGuestState(v, ctx.cpu);
  const bad = loadEntryMsrs(v);
  if (bad === 'machine-check') {
    const count = v.u32('VM_ENTRY_MSR_LOAD_COUNT');
    const max = ctx.caps.misc.maxMsrListEntries;
    return entryFailure(ctx, 41, 0, {
      rule: MSR_LIST_TOO_LONG_RULE, sdm: 'SDM Vol. 3C, "VM-Entry Controls for MSRs"', field: 'VM_ENTRY_MSR_LOAD_COUNT',
      value: BigInt(count), expected: `≤ ${max} (512 × (IA32_VMX_MISC[27:25] + 1))`,
      message: `The VM-entry MSR-load count ${count} exceeds the recommended maximum of ${max}; the SDM leaves this undefined ("may result in a machine check") and this CPU takes the machine check.`,
      explain: 'Keep MSR lists at or below 512 × (IA32_VMX_MISC[27:25] + 1) entries.',
    }, nmiBlockingBefore);
  }
  if (bad) return entryFailure(ctx, 34, bad.entry.position, diagnose(bad.check, bad.failure), nmiBlockingBefore);
  return { kind: 'entered' };
}

function diagnose(check: StateCheck | MsrLoadCheck, r: false | CheckFailure): EntryDiagnosis {
  const base = { rule: check.id, sdm: `SDM Vol. 3C, "${check.section}"`, explain: check.explain };
  if (r === false) return { ...base, message: check.explain };
  return { ...base, field: r.field, value: r.value, expected: r.expected, message: r.message };
}

/**
 * A VM-entry failure during or after loading guest state: record exit reason (bit 31 set) and qualification
 * only, then load host state and the VM-exit MSR-load area as a VM exit would. The guest-state area is not
 * written, no MSRs are stored, the VM-entry interruption-information valid bit is not cleared, and blocking by
 * NMI is what it was before VM entry. See SDM Vol. 3C, "VM-Entry Failures During or After Loading Guest State".
 */
function entryFailure(ctx: EntryContext, reason: 33 | 34 | 41, qualification: number, diagnosis: EntryDiagnosis,
  nmiBlockingBefore: number | null): VmEntryOutcome {
  ctx.vmcs.write('VM_EXIT_REASON', BigInt((reason | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0));
  ctx.vmcs.write('EXIT_QUALIFICATION', BigInt(qualification));
  const then = finishWithHostState(ctx);
  if (nmiBlockingBefore !== null) {
    const i = ctx.cpu.interruptibility() & ~INTERRUPTIBILITY.BLOCKING_BY_NMI;
    ctx.cpu.setInterruptibility(i | nmiBlockingBefore);
  }
  return { kind: 'entry-failure-exit', reason, qualification, diagnosis, then };
}
