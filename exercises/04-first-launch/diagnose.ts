// Exercise 4.4 — reading the outcome of VMLAUNCH/VMRESUME the way the hardware reports it:
//   1. VMfailInvalid — CF = 1: no current VMCS (or a bad one); there is no error number.
//   2. VMfailValid   — ZF = 1: VM_INSTRUCTION_ERROR says why, e.g. 7 or 8. The CPU stays on the next instruction.
//   3. VM-entry failure — guest state (exit reason 33) or MSR loading (34) failed: the CPU loads host state and
//      continues at HOST_RIP, with bit 31 of VM_EXIT_REASON set.
// Read chapters/04-first-launch/README.md, section "Did it launch?".
// See SDM Vol. 3C, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine", "VM Instruction Error Numbers",
// "Basic VM-Exit Information" and "VM-Entry Failures During or After Loading Guest State".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { exitReasonByNumber } from '../../src/vmx/exit-reasons.ts';
import { vmread, vmxStatusOf } from '../02-vmcs/vmx-access.ts';

/** Exit-reason bit 31: the "exit" reports a failed VM entry. */
export const VMX_EXIT_REASONS_FAILED_VMENTRY = 2 ** 31;

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
 *    entry the CPU is in VMX non-root operation (see inGuest) and its RFLAGS are the guest's.
 *  - 'host-rip': in the handler at HOST_RIP, after a VM exit or a failed VM entry.
 */
export type LaunchPoint = 'fallthrough' | 'host-rip';

/** True when the CPU runs the guest (VMX non-root operation): the VM entry succeeded. */
export function inGuest(cpu: HostCpu): boolean {
  return cpu.inVmxNonRoot();
}

/**
 * 'fallthrough': 'no-vmfail' if inGuest(cpu); else CF → VMfailInvalid, ZF → VMfailValid with the error number
 * (chapter 2's vmxStatusOf does that), neither → 'no-vmfail'.
 * 'host-rip': read VM_EXIT_REASON and EXIT_QUALIFICATION; bit 31 set → 'entry-failure', else 'vm-exit'. The
 * basic reason is bits 15:0.
 */
export function diagnoseLaunch(cpu: HostCpu, where: LaunchPoint): LaunchDiagnosis {
  // TODO
  throw new Error('TODO: diagnoseLaunch');
}

/** One line for printk (given). */
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
