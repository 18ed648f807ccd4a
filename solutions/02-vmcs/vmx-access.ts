// Typed VMREAD/VMWRITE wrappers: every VMX instruction's outcome as a value, with the error number
// read and named. See SDM Vol. 3C, "Conventions" (VMX instruction reference), "VMREAD—Read Field from
// Virtual-Machine Control Structure", "VMWRITE—Write Field to Virtual-Machine Control Structure" and
// "VM Instruction Error Numbers".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { vmInstructionError } from '../../src/vmx/errors.ts';
import { VMCS, fieldByName, type VmcsFieldName, type VmcsValue } from '../../src/vmx/fields.ts';

const RFLAGS_CF = 1n << 0n;
const RFLAGS_ZF = 1n << 6n;

export type VmxError =
  | { kind: 'VMfailInvalid' }
  | { kind: 'VMfailValid'; number: number; name: string; description: string };

export type VmxResult<T> = { ok: true; value: T } | { ok: false; error: VmxError };

/**
 * The outcome of the VMX instruction just executed on `cpu`. On VMfailValid the error number is
 * read from VM_INSTRUCTION_ERROR right away — before any other VMX instruction can overwrite it,
 * and while we are certainly still in VMX operation.
 */
export function vmxStatusOf(cpu: HostCpu): VmxResult<void> {
  const rflags = cpu.rflags();
  if ((rflags & RFLAGS_CF) !== 0n) return { ok: false, error: { kind: 'VMfailInvalid' } };
  if ((rflags & RFLAGS_ZF) !== 0n) {
    const number = Number(cpu.vmread(VMCS.VM_INSTRUCTION_ERROR) & 0xffffffffn);
    const known = vmInstructionError(number);
    return {
      ok: false,
      error: { kind: 'VMfailValid', number, name: known?.name ?? `error ${number}`, description: known?.description ?? 'not a documented VM-instruction error number' },
    };
  }
  return { ok: true, value: undefined };
}

/** VMREAD with the result typed by the field's width: number for 16/32-bit fields, bigint otherwise. */
export function vmread<N extends VmcsFieldName>(cpu: HostCpu, field: N): VmxResult<VmcsValue<N>> {
  const f = fieldByName(field)!;
  const raw = cpu.vmread(f.encoding);
  const status = vmxStatusOf(cpu);
  if (!status.ok) return status;
  const wide = f.width === '64' || f.width === 'natural';
  // A 16- or 32-bit field is zero-extended into the 64-bit destination.
  const value = (wide && !f.high ? raw : Number(raw & 0xffffffffn)) as VmcsValue<N>;
  return { ok: true, value };
}

export function vmwrite<N extends VmcsFieldName>(cpu: HostCpu, field: N, value: VmcsValue<N>): VmxResult<void> {
  const f = fieldByName(field)!;
  cpu.vmwrite(f.encoding, typeof value === 'bigint' ? value : BigInt(value >>> 0));
  return vmxStatusOf(cpu);
}

/** One line for logs: "VMfailValid(12): VMXERR_UNSUPPORTED_VMCS_COMPONENT — …". */
export function describeVmxError(e: VmxError): string {
  if (e.kind === 'VMfailInvalid') return 'VMfailInvalid: no current VMCS (or an invalid VMXON/VMCS pointer); there is no error number';
  return `VMfailValid(${e.number}): ${e.name} — ${e.description}`;
}
