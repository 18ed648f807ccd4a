// The VM-execution, VM-exit and VM-entry controls a first launch needs, adjusted to what this processor allows
// with chapter 3's adjustControls — and an error naming the bit and the MSR when a request cannot be met.
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
 * Every must-be-1 bit is set by adjustControls; everything else is 0.
 */
export const FIRST_LAUNCH: Readonly<Record<ControlKind, { want: number; avoid: number }>> = {
  pin: { want: 0, avoid: 0 },
  proc: { want: VMX_CONTROL.CPU_BASED_HLT_EXITING, avoid: VMX_CONTROL.CPU_BASED_UNCOND_IO_EXITING | VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS },
  proc2: { want: 0, avoid: 0 },
  exit: { want: VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE, avoid: 0 },
  entry: { want: VMX_CONTROL.VM_ENTRY_IA32E_MODE, avoid: 0 },
};

const KINDS: readonly ControlKind[] = ['pin', 'proc', 'proc2', 'exit', 'entry'];

/** The controls for a first launch plus `extra`, or every bit this processor refuses. */
export function firstLaunchControls(rdmsr: Rdmsr, extra: ControlRequest = {}): ControlsResult {
  const values: Partial<Record<ControlKind, number>> = {};
  const errors: (ControlError & { kind: ControlKind })[] = [];
  for (const kind of KINDS) {
    const want = (FIRST_LAUNCH[kind].want | (extra[kind]?.want ?? 0)) >>> 0;
    const avoid = (FIRST_LAUNCH[kind].avoid | (extra[kind]?.avoid ?? 0)) >>> 0;
    const r = adjustControls(rdmsr, kind, want, avoid);
    if (r.ok) values[kind] = r.value;
    else errors.push(...r.errors.map((e) => ({ ...e, kind })));
  }
  if (errors.length > 0) return { ok: false, errors };
  let proc = values.proc!;
  const proc2 = values.proc2!;
  // The secondary controls only count when "activate secondary controls" is 1; ask for them only if needed.
  if (proc2 !== 0) {
    const r = adjustControls(rdmsr, 'proc', (proc | VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) >>> 0, FIRST_LAUNCH.proc.avoid | (extra.proc?.avoid ?? 0));
    if (!r.ok) return { ok: false, errors: r.errors.map((e) => ({ ...e, kind: 'proc' as const })) };
    proc = r.value;
  }
  return { ok: true, controls: { pin: values.pin!, proc, proc2, exit: values.exit!, entry: values.entry! } };
}

/**
 * Write the control fields, plus the other control-area fields whose garbage would fail VM entry or cause
 * surprises: no exceptions intercepted, no CR3-target values, empty MSR areas, no event to inject.
 */
export function writeControls(cpu: HostCpu, c: VmxControls): VmxResult<void> {
  const writes: (() => VmxResult<void>)[] = [
    () => vmwrite(cpu, 'PIN_BASED_VM_EXEC_CONTROL', c.pin),
    () => vmwrite(cpu, 'CPU_BASED_VM_EXEC_CONTROL', c.proc),
    () => vmwrite(cpu, 'VM_EXIT_CONTROLS', c.exit),
    () => vmwrite(cpu, 'VM_ENTRY_CONTROLS', c.entry),
    () => vmwrite(cpu, 'EXCEPTION_BITMAP', 0),
    () => vmwrite(cpu, 'CR3_TARGET_COUNT', 0),
    () => vmwrite(cpu, 'VM_EXIT_MSR_STORE_COUNT', 0),
    () => vmwrite(cpu, 'VM_EXIT_MSR_LOAD_COUNT', 0),
    () => vmwrite(cpu, 'VM_ENTRY_MSR_LOAD_COUNT', 0),
    () => vmwrite(cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0),
  ];
  // A processor without secondary controls may not even have the field (VMWRITE error 12).
  if ((c.proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0) {
    writes.push(() => vmwrite(cpu, 'SECONDARY_VM_EXEC_CONTROL', c.proc2));
  }
  for (const write of writes) {
    const r = write();
    if (!r.ok) return r;
  }
  return { ok: true, value: undefined };
}
