// Exercise 1.1 — is VMX there, and may we use it?
// Read chapters/01-vmxon/README.md, sections "Discovering VMX" and "IA32_FEATURE_CONTROL".
// See SDM Vol. 3C, "Discovering Support for VMX" and "Enabling and Entering VMX Operation".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import {
  FEAT_CTL_LOCKED, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, MSR_IA32_FEATURE_CONTROL,
} from '../../src/vmx/msrs.ts';

export type FeatureControlResult =
  | { ok: true; /** The firmware had already locked the MSR with VMX enabled. */ alreadyLocked: boolean }
  | { ok: false; reason: string };

/** True if CPUID says this processor supports VMX. */
export function cpuHasVmx(cpu: HostCpu): boolean {
  // TODO: CPUID leaf 1, register ECX, bit 5.
  throw new Error('TODO: cpuHasVmx');
}

/**
 * Make sure VMXON is allowed outside SMX on this CPU: enable and lock IA32_FEATURE_CONTROL if the
 * firmware left it unlocked; if it is locked, only check it (never write a locked MSR).
 */
export function enableFeatureControl(cpu: HostCpu): FeatureControlResult {
  // TODO: read MSR_IA32_FEATURE_CONTROL; use FEAT_CTL_LOCKED and FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX.
  throw new Error('TODO: enableFeatureControl');
}
