// WRMSR to IA32_FEATURE_CONTROL (3AH): which bits software may write, and the lock. The MSR is per logical
// processor; firmware (or the hypervisor) sets the enables and the lock bit on every LP before VMXON.
// See SDM Vol. 3C, "Enabling and Entering VMX Operation" and Vol. 4, "IA32_FEATURE_CONTROL".
import {
  FEAT_CTL_LMCE_ENABLED, FEAT_CTL_LOCKED, FEAT_CTL_SENTER_GLOBAL, FEAT_CTL_SENTER_LOCAL_MASK, FEAT_CTL_SGX_ENABLED,
  FEAT_CTL_SGX_LC_ENABLED, FEAT_CTL_VMX_ENABLED_INSIDE_SMX, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX,
} from './msrs.ts';
import { hex } from '../util/hex.ts';

/** Value after reset: unlocked, everything disabled (firmware normally writes it; the course's BIOS may not). */
export const FEATURE_CONTROL_RESET_VALUE = 0n;

export interface FeatureControlSupport {
  /** VMX is supported (CPUID.1:ECX.VMX[bit 5]). */
  readonly vmx: boolean;
  /** SMX is supported (CPUID.1:ECX.SMX[bit 6]): bit 1 and the SENTER bits are writable. */
  readonly smx: boolean;
  readonly sgx?: boolean;
  readonly sgxLaunchControl?: boolean;
  readonly lmce?: boolean;
}

export type FeatureControlWrite =
  | { readonly ok: true; readonly value: bigint }
  | { readonly ok: false; readonly rule: string; readonly message: string; readonly sdm: string };

const SDM = 'SDM Vol. 3C, "Enabling and Entering VMX Operation"';

/** The bits WRMSR may set on a processor with these features; any other bit set raises #GP. */
export function writableFeatureControlBits(s: FeatureControlSupport): bigint {
  let bits = FEAT_CTL_LOCKED;
  if (s.vmx) bits |= FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX;
  if (s.vmx && s.smx) bits |= FEAT_CTL_VMX_ENABLED_INSIDE_SMX;
  if (s.smx) bits |= FEAT_CTL_SENTER_LOCAL_MASK | FEAT_CTL_SENTER_GLOBAL;
  if (s.sgxLaunchControl === true) bits |= FEAT_CTL_SGX_LC_ENABLED;
  if (s.sgx === true) bits |= FEAT_CTL_SGX_ENABLED;
  if (s.lmce === true) bits |= FEAT_CTL_LMCE_ENABLED;
  return BigInt(bits >>> 0);
}

/**
 * WRMSR IA32_FEATURE_CONTROL: #GP once the lock bit is set (until reset), and #GP for bits the processor does
 * not support (e.g. bit 1 without SMX). Returns the new value, or why WRMSR raises #GP(0).
 */
export function writeFeatureControl(current: bigint, value: bigint, s: FeatureControlSupport): FeatureControlWrite {
  if ((current & BigInt(FEAT_CTL_LOCKED)) !== 0n) {
    return { ok: false, rule: 'feature-control-locked', sdm: SDM, message: 'IA32_FEATURE_CONTROL is locked (bit 0 = 1): it cannot be written until the processor is reset.' };
  }
  const bad = value & ~writableFeatureControlBits(s);
  if (bad !== 0n) {
    return { ok: false, rule: 'feature-control-reserved', sdm: SDM, message: `IA32_FEATURE_CONTROL bits ${hex(bad)} are reserved or unsupported on this processor.` };
  }
  return { ok: true, value };
}
