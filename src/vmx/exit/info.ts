// Recording the VM-exit information fields. A field the SDM leaves undefined for this kind of exit gets a poison
// value instead of a plausible one, so a hypervisor that reads it (e.g. advances RIP by the instruction length on
// an exit that is not caused by an instruction) breaks visibly in tests.
// See SDM Vol. 3C, "Recording VM-Exit Information and Updating VM-Entry Control Fields".
import type { VmcsAccess } from '../transition/vmcs-access.ts';
import { slotsOf, type VmcsSlots } from '../transition/vmcs-access.ts';
import { SLOT } from '../vmcs.ts';
import { INTR_INFO } from '../transition/interruption-info.ts';
import type { ExitReasonNumber } from '../exit-reasons.ts';

/** Undefined per SDM: the value of a 32-bit VM-exit information field the SDM does not define for this exit. */
export const UNDEFINED_32 = 0xdeadbeef;
/** Undefined per SDM: the value of a 64-bit / natural-width field the SDM does not define for this exit. */
export const UNDEFINED_64 = 0xdeadbeefdeadbeefn;
/**
 * Undefined per SDM, for the interruption-information fields: "marked invalid (bit 31 clear) and the remainder of
 * the field is undefined". Bit 31 is clear; bits 30:0 are poison.
 */
export const UNDEFINED_INVALID_INFO = UNDEFINED_32 & 0x7fffffff;

/** What caused a VM exit, as far as the exit-information fields are concerned. Omitted fields are undefined. */
export interface VmExitCause {
  /** Basic exit reason (bits 15:0 of the exit-reason field). */
  readonly reason: ExitReasonNumber;
  /** Defined for some exits; cleared to 0 for all others. See SDM Vol. 3C, "Basic VM-Exit Information". */
  readonly qualification?: bigint;
  /** Defined for exits caused by instruction execution (and some event-delivery cases). */
  readonly instructionLength?: number;
  /** Defined only for the instructions the SDM lists under "VM-exit instruction information". */
  readonly instructionInfo?: number;
  readonly guestLinearAddress?: bigint;
  readonly guestPhysicalAddress?: bigint;
  /** VM-exit interruption information (exits due to exceptions, NMIs, acknowledged interrupts). */
  readonly interruptionInfo?: number;
  readonly interruptionErrorCode?: number;
  /** IDT-vectoring information (exits during event delivery). */
  readonly idtVectoringInfo?: number;
  readonly idtVectoringErrorCode?: number;
  /**
   * Guest RIP to save, when the LP's RIP already moved on (a VMX instruction in VMX non-root operation, which the
   * interpreter hands over with RIP at the next instruction). Fault-like exits save the instruction's own RIP.
   */
  readonly guestRip?: bigint;
}

// The slots of the fields this file writes (looked up once: every VM exit writes all of them).
const {
  VM_EXIT_REASON, EXIT_QUALIFICATION, GUEST_LINEAR_ADDRESS, GUEST_PHYSICAL_ADDRESS, VM_EXIT_INTR_INFO,
  VM_EXIT_INTR_ERROR_CODE, IDT_VECTORING_INFO_FIELD, IDT_VECTORING_ERROR_CODE, VM_EXIT_INSTRUCTION_LEN,
  VMX_INSTRUCTION_INFO, VM_ENTRY_INTR_INFO_FIELD,
} = SLOT;

export function recordExitInformation(access: VmcsAccess, cause: VmExitCause): void {
  const vmcs = slotsOf(access);
  // Bits 15:0 basic reason; bit 31 clear (a true VM exit, not a VM-entry failure); bits 30:16 clear here.
  vmcs.writeLow(VM_EXIT_REASON, cause.reason & 0xffff);
  vmcs.write(EXIT_QUALIFICATION, cause.qualification ?? 0n);
  writeOrUndefined64(vmcs, GUEST_LINEAR_ADDRESS, cause.guestLinearAddress);
  writeOrUndefined64(vmcs, GUEST_PHYSICAL_ADDRESS, cause.guestPhysicalAddress);
  vmcs.writeLow(VM_EXIT_INTR_INFO, cause.interruptionInfo ?? UNDEFINED_INVALID_INFO);
  vmcs.writeLow(VM_EXIT_INTR_ERROR_CODE, cause.interruptionErrorCode ?? UNDEFINED_32);
  vmcs.writeLow(IDT_VECTORING_INFO_FIELD, cause.idtVectoringInfo ?? UNDEFINED_INVALID_INFO);
  vmcs.writeLow(IDT_VECTORING_ERROR_CODE, cause.idtVectoringErrorCode ?? UNDEFINED_32);
  vmcs.writeLow(VM_EXIT_INSTRUCTION_LEN, cause.instructionLength ?? UNDEFINED_32);
  vmcs.writeLow(VMX_INSTRUCTION_INFO, cause.instructionInfo ?? UNDEFINED_32);
  // Every VM exit clears the valid bit of the VM-entry interruption-information field.
  // See SDM Vol. 3C, "Recording VM-Exit Information and Updating VM-Entry Control Fields".
  vmcs.writeLow(VM_ENTRY_INTR_INFO_FIELD, (vmcs.readLow(VM_ENTRY_INTR_INFO_FIELD) & ~INTR_INFO.VALID) >>> 0);
}

/** `value`, or UNDEFINED_64 written as its two 32-bit halves (no BigInt arithmetic on every VM exit). */
function writeOrUndefined64(vmcs: VmcsSlots, slot: number, value: bigint | undefined): void {
  if (value !== undefined) {
    vmcs.write(slot, value);
    return;
  }
  vmcs.writeLow(slot, UNDEFINED_32);
  vmcs.writeHigh(slot, UNDEFINED_32);
}
// UNDEFINED_64 is UNDEFINED_32 in both halves, as writeOrUndefined64 writes it.
if (UNDEFINED_64 !== (BigInt(UNDEFINED_32) << 32n | BigInt(UNDEFINED_32))) throw new Error('UNDEFINED_64 must repeat UNDEFINED_32');
