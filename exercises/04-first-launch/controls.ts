// Exercise 4.3 — the VM-execution, VM-exit and VM-entry controls a first launch needs, adjusted with your
// chapter 3 adjustControls. Read chapters/04-first-launch/README.md, section "The controls".
// See SDM Vol. 3C, "VM-Execution Control Fields", "VM-Exit Control Fields", "VM-Entry Control Fields" and
// "Checks on VMX Controls".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { adjustControls, type ControlError, type ControlKind, type Rdmsr } from '../03-capabilities/adjust-controls.ts';
import { vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';

/** The five 32-bit control fields. `proc2` is 0 unless "activate secondary controls" is set in `proc`. */
export interface VmxControls {
  readonly pin: number;
  readonly proc: number;
  readonly proc2: number;
  readonly exit: number;
  readonly entry: number;
}

/** Extra bits a caller wants set or clear, per control field (unsigned 32-bit masks). */
export type ControlRequest = Partial<Record<ControlKind, { readonly want?: number; readonly avoid?: number }>>;

export type ControlsResult =
  | { readonly ok: true; readonly controls: VmxControls }
  | { readonly ok: false; readonly errors: readonly (ControlError & { readonly kind: ControlKind })[] };

/**
 * What a 64-bit guest that runs CPUID and HLT on a 64-bit host needs:
 *  - HLT exiting, so the guest's HLT comes back to us (CPUID exits unconditionally);
 *  - no unconditional I/O exiting and no I/O bitmaps, so the guest's OUT to port E9H runs without a VM exit;
 *  - "host address-space size" (a 64-bit host) and "IA-32e mode guest" (a 64-bit guest).
 */
export const FIRST_LAUNCH: Readonly<Record<ControlKind, { want: number; avoid: number }>> = {
  pin: { want: 0, avoid: 0 },
  proc: { want: VMX_CONTROL.CPU_BASED_HLT_EXITING, avoid: VMX_CONTROL.CPU_BASED_UNCOND_IO_EXITING | VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS },
  proc2: { want: 0, avoid: 0 },
  exit: { want: VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE, avoid: 0 },
  entry: { want: VMX_CONTROL.VM_ENTRY_IA32E_MODE, avoid: 0 },
};

/**
 * The controls for a first launch (FIRST_LAUNCH) plus `extra`, each field adjusted with adjustControls — or
 * every bit this processor refuses, tagged with its field. If the secondary controls end up non-zero, "activate
 * secondary controls" must be set in `proc` (and allowed); if they are 0, leave it clear.
 */
export function firstLaunchControls(rdmsr: Rdmsr, extra: ControlRequest = {}): ControlsResult {
  // TODO
  throw new Error('TODO: firstLaunchControls');
}

/**
 * Write the five control fields — SECONDARY_VM_EXEC_CONTROL only when "activate secondary controls" is set (a
 * CPU without secondary controls may not have the field) — plus the control-area fields whose leftover values
 * would surprise you: EXCEPTION_BITMAP, CR3_TARGET_COUNT, the three MSR-area counts, VM_ENTRY_INTR_INFO_FIELD,
 * all 0. Return the first VMWRITE that failed.
 */
export function writeControls(cpu: HostCpu, c: VmxControls): VmxResult<void> {
  // TODO
  throw new Error('TODO: writeControls');
}
