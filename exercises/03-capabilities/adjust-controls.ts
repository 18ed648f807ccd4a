// Exercise 3.1 — adjust a VMX control field to what this processor allows, and refuse what it cannot do.
// Read chapters/03-capabilities/README.md, sections "Allowed-0 and allowed-1 settings" and "Why TRUE_* MSRs exist".
// See SDM Vol. 3D, appendix "VMX Capability Reporting Facility", and Vol. 3C, "Reserved Controls and Default
// Settings".
//
// Each control capability MSR holds two 32-bit halves:
//
//    63                          32 31                           0
//   +------------------------------+------------------------------+
//   |   allowed-1 settings         |   allowed-0 settings         |
//   |   bit = 0: control must be 0 |   bit = 1: control must be 1 |
//   +------------------------------+------------------------------+
//
// A control value v is legal when (v & allowed0) === allowed0 and (v & ~allowed1) === 0.
//
// You may use the project's tables: the MSR indices below, and `controlsOf(kind)` from '#src/vmx/controls',
// which lists the named bits of a control field ({ name, bit, ... }) with their Linux names.
import { controlsOf } from '#src/vmx/controls';
import {
  MSR_IA32_VMX_BASIC, MSR_IA32_VMX_ENTRY_CTLS, MSR_IA32_VMX_EXIT_CTLS, MSR_IA32_VMX_PINBASED_CTLS,
  MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS2, MSR_IA32_VMX_TRUE_ENTRY_CTLS,
  MSR_IA32_VMX_TRUE_EXIT_CTLS, MSR_IA32_VMX_TRUE_PINBASED_CTLS, MSR_IA32_VMX_TRUE_PROCBASED_CTLS, VMX_BASIC,
} from '#src/vmx/msrs';

/** Reads a model-specific register; reading one the processor does not implement raises #GP. */
export type Rdmsr = (msr: number) => bigint;

/** The five 32-bit control fields: pin-based, primary and secondary processor-based, VM-exit, VM-entry. */
export type ControlKind = 'pin' | 'proc' | 'proc2' | 'exit' | 'entry';

export interface ControlError {
  /** Bit position in the control field (0–31). */
  readonly bit: number;
  /** Linux name of the control (e.g. PIN_BASED_VMX_PREEMPTION_TIMER), when it has one. */
  readonly name?: string;
  /** The capability MSR that forbids the request. */
  readonly msr: number;
  /** 'not allowed to be 1': wanted, but allowed-1 is 0. 'must be 1': unwanted, but allowed-0 is 1. */
  readonly reason: 'not allowed to be 1' | 'must be 1';
}

export type AdjustResult =
  | { readonly ok: true; readonly value: number }
  | { readonly ok: false; readonly errors: readonly ControlError[] };

const PLAIN_MSR: Readonly<Record<ControlKind, number>> = {
  pin: MSR_IA32_VMX_PINBASED_CTLS,
  proc: MSR_IA32_VMX_PROCBASED_CTLS,
  proc2: MSR_IA32_VMX_PROCBASED_CTLS2,
  exit: MSR_IA32_VMX_EXIT_CTLS,
  entry: MSR_IA32_VMX_ENTRY_CTLS,
};
// The secondary controls have no TRUE variant: none of them is default1.
const TRUE_MSR: Readonly<Record<ControlKind, number | null>> = {
  pin: MSR_IA32_VMX_TRUE_PINBASED_CTLS,
  proc: MSR_IA32_VMX_TRUE_PROCBASED_CTLS,
  proc2: null,
  exit: MSR_IA32_VMX_TRUE_EXIT_CTLS,
  entry: MSR_IA32_VMX_TRUE_ENTRY_CTLS,
};

/** Primary processor-based control bit 31, "activate secondary controls"; its allowed-1 bit is MSR bit 63. */
const ACTIVATE_SECONDARY_CONTROLS = 2 ** 31;

/**
 * The capability MSR that reports the allowed settings of `kind` on this processor: the TRUE_* MSR when
 * IA32_VMX_BASIC[55] = 1 (it alone says which default1 controls may be 0), otherwise the plain one.
 * See SDM Vol. 3D, "Basic VMX Information" and "VMX Capability Reporting Facility".
 */
export function controlMsr(rdmsr: Rdmsr, kind: ControlKind): number {
  // TODO: the secondary controls have no TRUE variant. For the others, read IA32_VMX_BASIC and use the TRUE_* MSR
  // when bit 55 is 1, the plain one otherwise. The tables PLAIN_MSR and TRUE_MSR above hold the indices.
  throw new Error('TODO: controlMsr');
}

/**
 * The value of control field `kind` with every bit of `wanted` set, every bit of `unwanted` clear, and every other
 * bit at the processor's requirement (must-be-1 bits set — that is what "default1" means — and the rest 0).
 * A wanted bit the processor cannot set, or an unwanted bit it cannot clear, is an error, never dropped:
 * return `{ ok: false, errors }` with one ControlError per offending bit, in increasing bit order.
 * `wanted` and `unwanted` never overlap. Values are unsigned 32-bit numbers (bit 31 is 2 ** 31: use `>>> 0`).
 */
export function adjustControls(rdmsr: Rdmsr, kind: ControlKind, wanted: number, unwanted = 0): AdjustResult {
  // TODO:
  //  1. For 'proc2', first check that secondary controls exist (ACTIVATE_SECONDARY_CONTROLS allowed-1, i.e. bit 63
  //     of IA32_VMX_PROCBASED_CTLS). If not, IA32_VMX_PROCBASED_CTLS2 does not exist (RDMSR would #GP): every
  //     secondary control is fixed to 0, and the MSR to blame is IA32_VMX_PROCBASED_CTLS.
  //  2. Read the MSR controlMsr() names; split it into allowed-0 (bits 31:0) and allowed-1 (bits 63:32).
  //  3. Collect the errors; if there are none, return the wanted bits plus the must-be-1 bits.
  //  Never `(wanted | allowed0) & allowed1`: that silently drops what the CPU cannot do.
  throw new Error('TODO: adjustControls');
}
