// Reading the outcome of VMLAUNCH/VMRESUME the way the hardware reports it, in the order it can happen:
//   1. VMfailInvalid — CF = 1: no current VMCS (or a bad one); there is no error number.
//   2. VMfailValid   — ZF = 1: VM_INSTRUCTION_ERROR says why, e.g. 7 (invalid control field) or 8 (invalid
//                      host-state field). The CPU stays at the next instruction, in VMX root operation.
//   3. VM-entry failure — the controls and host state were fine but the guest state (exit reason 33) or the
//                      MSR-load area (34) was not: the CPU loads host state and continues at HOST_RIP as for a
//                      VM exit, with bit 31 of the exit reason set.
// See SDM Vol. 3C, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine", "VM Instruction Error Numbers",
// "Basic VM-Exit Information" and "VM-Entry Failures During or After Loading Guest State".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { exitReasonByNumber } from '../../src/vmx/exit-reasons.ts';
import { vmread, vmxStatusOf } from '../02-vmcs/vmx-access.ts';

/** Exit-reason bit 31: the "exit" reports a failed VM entry. */
export const VMX_EXIT_REASONS_FAILED_VMENTRY = 2 ** 31;
const BASIC_REASON_MASK = 0xffff;

export type LaunchDiagnosis =
  | { readonly kind: 'VMfailInvalid' }
  | { readonly kind: 'VMfailValid'; readonly error: number; readonly name: string; readonly description: string }
  /** After VMLAUNCH: no VMfail. The guest runs, or a VM-entry failure waits at HOST_RIP. */
  | { readonly kind: 'no-vmfail' }
  /** At HOST_RIP: the VM entry failed. `reason` is the basic reason (33 or 34), `exitReason` the whole field. */
  | { readonly kind: 'entry-failure'; readonly exitReason: number; readonly reason: number; readonly qualification: bigint }
  /** At HOST_RIP: an ordinary VM exit, so the VM entry before it succeeded. */
  | { readonly kind: 'vm-exit'; readonly reason: number; readonly qualification: bigint };

/**
 * Where the CPU is when you ask:
 *  - 'fallthrough': on the line after VMLAUNCH/VMRESUME. Only RFLAGS may be read here — after a successful
 *    entry the CPU is in VMX non-root operation and the VMCS is not yours to VMREAD.
 *  - 'host-rip': in the handler at HOST_RIP, after a VM exit or a failed VM entry.
 */
export type LaunchPoint = 'fallthrough' | 'host-rip';

export function diagnoseLaunch(cpu: HostCpu, where: LaunchPoint): LaunchDiagnosis {
  if (where === 'fallthrough') {
    // On hardware the instruction after a successful VMLAUNCH never runs. In VMX Lab the host function goes
    // on, but the CPU is now in VMX non-root operation and RFLAGS are the guest's: do not read them as a VMfail.
    if (inGuest(cpu)) return { kind: 'no-vmfail' };
    // CF first: VMfailInvalid has no error number, and reading one would read someone else's.
    const status = vmxStatusOf(cpu);
    if (status.ok) return { kind: 'no-vmfail' };
    const e = status.error;
    if (e.kind === 'VMfailInvalid') return { kind: 'VMfailInvalid' };
    return { kind: 'VMfailValid', error: e.number, name: e.name, description: e.description };
  }
  const reason = vmread(cpu, 'VM_EXIT_REASON');
  const qualification = vmread(cpu, 'EXIT_QUALIFICATION');
  // At HOST_RIP we are in VMX root operation with the VMCS current; a failure here is a bug worth reporting
  // as what it is.
  if (!reason.ok) return reason.error.kind === 'VMfailInvalid' ? { kind: 'VMfailInvalid' } : { kind: 'VMfailValid', error: reason.error.number, name: reason.error.name, description: reason.error.description };
  const q = qualification.ok ? qualification.value : 0n;
  const basic = reason.value & BASIC_REASON_MASK;
  if ((reason.value & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0) {
    return { kind: 'entry-failure', exitReason: reason.value >>> 0, reason: basic, qualification: q };
  }
  return { kind: 'vm-exit', reason: basic, qualification: q };
}

/** True when the CPU runs the guest (VMX non-root operation): the VM entry succeeded. */
export function inGuest(cpu: HostCpu): boolean {
  return cpu.inVmxNonRoot();
}

/** One line for printk. */
export function describeLaunch(d: LaunchDiagnosis): string {
  switch (d.kind) {
    case 'VMfailInvalid':
      return 'VMfailInvalid (CF = 1): no current VMCS, no error number';
    case 'VMfailValid':
      return `VMfailValid(${d.error}) (ZF = 1): ${d.name} — ${d.description}`;
    case 'no-vmfail':
      return 'no VMfail: the guest is running (or a VM-entry failure is waiting at HOST_RIP)';
    case 'entry-failure':
      return `VM-entry failure: exit reason ${d.reason} (${exitReasonByNumber(d.reason)?.name ?? 'unknown'}), bit 31 set, qualification ${d.qualification}`;
    case 'vm-exit':
      return `VM exit: reason ${d.reason} (${exitReasonByNumber(d.reason)?.name ?? 'unknown'}), qualification 0x${d.qualification.toString(16)}`;
  }
}
