// Exercise 9.1 — an event injector. VM entry delivers the event described by VM_ENTRY_INTR_INFO_FIELD through the
// guest IDT, as if it had happened right after the entry: bits 7:0 the vector, bits 10:8 the interruption type,
// bit 11 "deliver error code" (then VM_ENTRY_EXCEPTION_ERROR_CODE is pushed), bit 31 valid. For software interrupts
// and software exceptions (types 4, 5, 6) the processor pushes RIP + VM_ENTRY_INSTRUCTION_LEN, as INT n, INT3, INTO
// and INT1 would. CR2 is not in the VMCS: for #PF the hypervisor loads the guest's CR2 itself (the host and guest
// share the register; a VM exit does not change it). See SDM Vol. 3C, "VM-Entry Controls for Event Injection",
// "Event Injection" and "Checks on VM-Entry Control Fields".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, stop, type SetupResult, type VmmPart } from '../05-exits/hypervisor.ts';
import { INTR_TYPE } from '../../src/vmx/transition/interruption-info.ts';

/** Interruption types (bits 10:8): the kit's table (src/vmx/transition/interruption-info.ts), defined once. */
export { INTR_TYPE };

/** Exception vectors. See SDM Vol. 3A, "Exception and Interrupt Reference". */
export const VECTOR = {
  DE: 0, DB: 1, NMI: 2, BP: 3, OF: 4, BR: 5, UD: 6, NM: 7, DF: 8, TS: 10, NP: 11, SS: 12, GP: 13, PF: 14, MF: 16,
  AC: 17, MC: 18, XM: 19, VE: 20, CP: 21,
} as const;

const VALID = 1 << 31;
const DELIVER_ERROR_CODE = 1 << 11;
const TYPE_SHIFT = 8;

/** The exceptions that push an error code in protected and long mode: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP. */
export function pushesErrorCode(vector: number): boolean {
  // TODO: true for 8, 10, 11, 12, 13, 14, 17 and 21 (the VECTOR table names them).
  throw new Error('TODO: pushesErrorCode');
}

/**
 * The interruption type a VMM uses to inject exception `vector`: #BP and #OF are software exceptions (6, with an
 * instruction length: they come from INT3 and INTO), a #DB from INT1 is a privileged software exception (5), every
 * other exception a hardware exception (3). See SDM Vol. 3C, "VM-Entry Controls for Event Injection".
 */
export function exceptionType(vector: number, opts: { fromInt1?: boolean } = {}): number {
  // TODO: #BP and #OF → SOFTWARE_EXCEPTION; #DB with opts.fromInt1 → PRIVILEGED_SOFTWARE_EXCEPTION; anything else → HARDWARE_EXCEPTION.
  throw new Error('TODO: exceptionType');
}

/** One event to inject. */
export interface InjectedEvent {
  readonly vector: number;
  readonly type: number;
  /** Pushed on the guest stack if present (bit 11); only hardware exceptions that push one may carry it. */
  readonly errorCode?: number;
  /** For types 4, 5 and 6: the length of the instruction that raised it (RIP + length is pushed). */
  readonly instructionLength?: number;
}

/** VM_ENTRY_INTR_INFO_FIELD for `ev`: valid, deliver-error-code if it has one, type, vector. */
export function interruptionInfo(ev: InjectedEvent): number {
  // TODO: bit 31 valid, bit 11 if ev.errorCode is defined, the type in bits 10:8, the vector in 7:0 (as an unsigned number: >>> 0).
  throw new Error('TODO: interruptionInfo');
}

/** The event for exception `vector`: its type, its error code (0 unless given) if it pushes one, the length for software exceptions. */
export function exceptionEvent(vector: number, opts: { errorCode?: number; instructionLength?: number; fromInt1?: boolean } = {}): InjectedEvent {
  // TODO: { vector, type } plus errorCode (opts.errorCode ?? 0) only for a hardware exception that pushes one, and instructionLength (opts.instructionLength ?? 1) only for types 5 and 6.
  throw new Error('TODO: exceptionEvent');
}

/** Write the three event-injection fields for `ev` (the error code and length fields always, 0 when unused). */
export function inject(cpu: HostCpu, ev: InjectedEvent): SetupResult {
  // TODO: VMWRITE VM_ENTRY_EXCEPTION_ERROR_CODE (errorCode ?? 0), VM_ENTRY_INSTRUCTION_LEN (instructionLength ?? 0), then VM_ENTRY_INTR_INFO_FIELD; return the first failure as { ok: false, error }.
  throw new Error('TODO: inject');
}

/** #GP with `errorCode` (0 for most causes). */
export function injectGp(cpu: HostCpu, errorCode = 0): SetupResult {
  // TODO: inject(cpu, exceptionEvent(VECTOR.GP, { errorCode })).
  throw new Error('TODO: injectGp');
}

/** #UD: a hardware exception without an error code. */
export function injectUd(cpu: HostCpu): SetupResult {
  // TODO: inject the #UD event.
  throw new Error('TODO: injectUd');
}

/** #PF at `address` with `errorCode`: CR2 first (it is not in the VMCS), then the event. */
export function injectPageFault(cpu: HostCpu, address: bigint, errorCode: number): SetupResult {
  // TODO: CR2 is not in the VMCS: cpu.writeCr2(address) first, then inject #PF with errorCode.
  throw new Error('TODO: injectPageFault');
}

/** #BP as INT3 would raise it: a software exception; the guest's handler sees RIP + `instructionLength`. */
export function injectBreakpoint(cpu: HostCpu, instructionLength: number): SetupResult {
  // TODO: #BP is a software exception: inject it with its instruction length.
  throw new Error('TODO: injectBreakpoint');
}

/** VMCALL requests of the injector part (RAX). */
export const INJECT_REQUEST = { GP: 1, UD: 2, PF: 3, BP: 4 } as const;

/**
 * A part that injects what the guest asks for with VMCALL: RAX = 1 #GP(0), 2 #UD, 3 #PF at RBX with error code
 * ECX, 4 #BP as if the VMCALL had been an INT3 of the VMCALL's length (its handler returns after the VMCALL).
 * RIP stays at the VMCALL (RESUME): a fault reports the instruction that faulted.
 */
export function injectorPart(): VmmPart {
  return {
    name: 'injector',
    handlers: {
      [EXIT_REASON.EXIT_REASON_VMCALL]: (v) => {
        // TODO: the request is RAX (v.cpu.readGpr('rax')): GP → injectGp(v.cpu, 0); UD → injectUd; PF → injectPageFault
        // at RBX with error code ECX; BP → injectBreakpoint with VM_EXIT_INSTRUCTION_LEN (VMREAD it: a VMCALL exit
        // defines it). Anything else: stop(why). RESUME — not SKIP: a fault reports the instruction that faulted.
        throw new Error('TODO: injectorPart VMCALL handler');
      },
    },
  };
}
