// Adjusting a VMX control field to what this processor allows — and refusing, loudly, what it cannot do.
// See SDM Vol. 3D, appendix "VMX Capability Reporting Facility", sections "Basic VMX Information" and "Reserved
// Controls and Default Settings".
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
  const trueMsr = TRUE_MSR[kind];
  if (trueMsr === null) return PLAIN_MSR[kind];
  const hasTrueCtls = (rdmsr(MSR_IA32_VMX_BASIC) & VMX_BASIC.TRUE_CTLS) !== 0n;
  return hasTrueCtls ? trueMsr : PLAIN_MSR[kind];
}

/**
 * The value of control field `kind` with every bit of `wanted` set, every bit of `unwanted` clear, and every other
 * bit at the processor's requirement (must-be-1 bits set — that is what "default1" means — and the rest 0).
 * A wanted bit the processor cannot set, or an unwanted bit it cannot clear, is an error, never dropped.
 * `wanted` and `unwanted` must not overlap. Values are unsigned 32-bit numbers (bit 31 is 2 ** 31).
 */
export function adjustControls(rdmsr: Rdmsr, kind: ControlKind, wanted: number, unwanted = 0): AdjustResult {
  wanted >>>= 0;
  unwanted >>>= 0;

  // IA32_VMX_PROCBASED_CTLS2 exists only if "activate secondary controls" may be 1; reading it otherwise is #GP.
  // Then every secondary control is fixed to 0. See SDM Vol. 3D, "Secondary Processor-Based VM-Execution Controls".
  if (kind === 'proc2') {
    const primaryAllowed1 = Number(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS) >> 32n);
    if ((primaryAllowed1 & ACTIVATE_SECONDARY_CONTROLS) === 0) {
      if (wanted === 0) return { ok: true, value: 0 };
      return { ok: false, errors: bitsOf(wanted).map((bit) => error(kind, bit, MSR_IA32_VMX_PROCBASED_CTLS, 'not allowed to be 1')) };
    }
  }

  const msr = controlMsr(rdmsr, kind);
  const caps = rdmsr(msr);
  const allowed0 = Number(caps & 0xffffffffn); // 1 = must be 1
  const allowed1 = Number(caps >> 32n); // 0 = must be 0

  const cannotSet = (wanted & ~allowed1) >>> 0;
  const cannotClear = (unwanted & allowed0) >>> 0;
  if (cannotSet !== 0 || cannotClear !== 0) {
    const errors = [
      ...bitsOf(cannotSet).map((bit) => error(kind, bit, msr, 'not allowed to be 1')),
      ...bitsOf(cannotClear).map((bit) => error(kind, bit, msr, 'must be 1')),
    ].sort((a, b) => a.bit - b.bit);
    return { ok: false, errors };
  }
  // Must-be-1 bits are set even if nobody asked: "default1" controls are on unless the TRUE MSR lets them be 0.
  // See SDM Vol. 3D, "Reserved Controls and Default Settings".
  return { ok: true, value: (wanted | allowed0) >>> 0 };
}

function error(kind: ControlKind, bit: number, msr: number, reason: ControlError['reason']): ControlError {
  const name = controlsOf(kind).find((c) => c.bit === bit)?.name;
  return name === undefined ? { bit, msr, reason } : { bit, name, msr, reason };
}

function bitsOf(mask: number): number[] {
  const bits: number[] = [];
  for (let bit = 0; bit < 32; bit++) if ((mask >>> bit) & 1) bits.push(bit);
  return bits;
}
