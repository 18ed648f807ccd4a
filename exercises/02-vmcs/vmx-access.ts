// Exercise 2.3 — typed VMREAD/VMWRITE wrappers, and naming errors.
// Read chapters/02-vmcs/README.md, section "VMREAD, VMWRITE and the error number".
// See SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure", "VMWRITE—Write Field to
// Virtual-Machine Control Structure" and "VM Instruction Error Numbers".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { vmInstructionError } from '../../src/vmx/errors.ts';
import { VMCS, fieldByName, type VmcsFieldName, type VmcsValue } from '../../src/vmx/fields.ts';

export type VmxError =
  | { kind: 'VMfailInvalid' }
  | { kind: 'VMfailValid'; number: number; name: string; description: string };

export type VmxResult<T> = { ok: true; value: T } | { ok: false; error: VmxError };

/**
 * The outcome of the VMX instruction just executed on `cpu`, from RFLAGS. On VMfailValid, read the
 * error number from VM_INSTRUCTION_ERROR and name it with vmInstructionError().
 */
export function vmxStatusOf(cpu: HostCpu): VmxResult<void> {
  // TODO
  throw new Error('TODO: vmxStatusOf');
}

/** VMREAD typed by the field's width: number for 16/32-bit fields (and _HIGH accesses), bigint otherwise. */
export function vmread<N extends VmcsFieldName>(cpu: HostCpu, field: N): VmxResult<VmcsValue<N>> {
  // TODO: fieldByName(field) gives the encoding and width; cpu.vmread(encoding) the raw 64-bit value.
  throw new Error('TODO: vmread');
}

/** VMWRITE with the outcome as a value. */
export function vmwrite<N extends VmcsFieldName>(cpu: HostCpu, field: N, value: VmcsValue<N>): VmxResult<void> {
  // TODO
  throw new Error('TODO: vmwrite');
}

/** One line for logs, e.g. "VMfailValid(12): VMXERR_UNSUPPORTED_VMCS_COMPONENT — …". */
export function describeVmxError(e: VmxError): string {
  // TODO
  throw new Error('TODO: describeVmxError');
}
