// Is VMX there, and may we use it? CPUID tells whether the processor has VMX;
// IA32_FEATURE_CONTROL tells whether the firmware lets us turn it on.
// See SDM Vol. 3C, "Discovering Support for VMX" and "Enabling and Entering VMX Operation".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import {
  FEAT_CTL_LOCKED, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, MSR_IA32_FEATURE_CONTROL,
} from '../../src/vmx/msrs.ts';

/** CPUID.1:ECX.VMX[bit 5]. */
const CPUID_1_ECX_VMX = 1 << 5;

export type FeatureControlResult =
  | { ok: true; /** The firmware had already locked the MSR with VMX enabled. */ alreadyLocked: boolean }
  | { ok: false; reason: string };

export function cpuHasVmx(cpu: HostCpu): boolean {
  return (cpu.cpuid(1).ecx & CPUID_1_ECX_VMX) !== 0;
}

/**
 * Make sure VMXON is allowed outside SMX on this CPU. If the firmware locked IA32_FEATURE_CONTROL
 * we can only check it (a WRMSR to a locked MSR raises #GP); otherwise we enable VMX and lock it,
 * keeping every other bit. The MSR is per logical processor: call this on every CPU.
 */
export function enableFeatureControl(cpu: HostCpu): FeatureControlResult {
  const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
  const locked = (fc & BigInt(FEAT_CTL_LOCKED)) !== 0n;
  const enabled = (fc & BigInt(FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX)) !== 0n;
  if (locked) {
    if (enabled) return { ok: true, alreadyLocked: true };
    return { ok: false, reason: 'VMX is disabled by the BIOS (IA32_FEATURE_CONTROL is locked with bit 2 clear)' };
  }
  cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, fc | BigInt(FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX));
  return { ok: true, alreadyLocked: false };
}
