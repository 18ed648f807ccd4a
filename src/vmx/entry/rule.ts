// The shape of a VM-entry check: data (id, SDM section, fields, outcome, explanation) plus a predicate.
// See SDM Vol. 3C, "Basic VM-Entry Checks", "Checks on VMX Controls and Host-State Area" and
// "Checking and Loading Guest State".
import type { EntryView } from './view.ts';
import type { MsrAreaEntry } from '../transition/msr-area.ts';
import type { VmcsFullFieldName } from '../fields.ts';

/** What the processor does when a state check fails. */
export type StateCheckOutcome =
  | { readonly kind: 'VMfailValid'; readonly error: 7 | 8 }
  | { readonly kind: 'exit'; readonly reason: 33; readonly qualification: 0 | 2 | 3 | 4 };
/** A failure while loading the VM-entry MSR-load area: exit reason 34, qualification = 1-based entry index. */
export interface MsrLoadOutcome {
  readonly kind: 'exit';
  readonly reason: 34;
  readonly qualification: 'entry-index';
}
export type EntryCheckOutcome = StateCheckOutcome | MsrLoadOutcome;

/** A failed predicate, with what the explanation channel reports. */
export interface CheckFailure {
  readonly ok: false;
  readonly field: VmcsFullFieldName;
  readonly value: bigint;
  readonly expected: string;
  readonly message: string;
}

export type CheckResult = boolean | CheckFailure;

/** SDM groups, in the order VM entry runs them. */
export type EntryCheckGroup = 'controls' | 'host-state' | 'guest-state' | 'msr-load';

interface CheckBase {
  /** Stable kebab-case name, e.g. `guest-cs-ar-type`. */
  readonly id: string;
  /** SDM Vol. 3C section title the rule comes from. */
  readonly section: string;
  /** VMCS fields (Linux names) the predicate reads. */
  readonly fields: readonly VmcsFullFieldName[];
  /** One or two sentences a learner reads when this rule fails. */
  readonly explain: string;
}

/** A check on the VMCS (controls, host state, guest state). */
export interface StateCheck extends CheckBase {
  readonly group: 'controls' | 'host-state' | 'guest-state';
  readonly outcome: StateCheckOutcome;
  check(v: EntryView): CheckResult;
}

/** A check applied to each entry of the VM-entry MSR-load area, in order. */
export interface MsrLoadCheck extends CheckBase {
  readonly group: 'msr-load';
  readonly outcome: MsrLoadOutcome;
  checkEntry(v: EntryView, e: MsrAreaEntry): CheckResult;
}

export type EntryCheck = StateCheck | MsrLoadCheck;

export const ERROR_INVALID_CONTROL = { kind: 'VMfailValid', error: 7 } as const;
export const ERROR_INVALID_HOST_STATE = { kind: 'VMfailValid', error: 8 } as const;
export const EXIT_INVALID_GUEST_STATE = { kind: 'exit', reason: 33, qualification: 0 } as const;
export const EXIT_INVALID_GUEST_STATE_PDPTE = { kind: 'exit', reason: 33, qualification: 2 } as const;
export const EXIT_INVALID_GUEST_STATE_NMI_STI = { kind: 'exit', reason: 33, qualification: 3 } as const;
export const EXIT_INVALID_GUEST_STATE_LINK = { kind: 'exit', reason: 33, qualification: 4 } as const;

/** Build a failure record; `value` is the offending field value. */
export function fail(field: VmcsFullFieldName, value: bigint | number, expected: string, message: string): CheckFailure {
  return { ok: false, field, value: BigInt(value), expected, message };
}
