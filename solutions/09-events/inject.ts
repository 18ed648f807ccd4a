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
  return [VECTOR.DF, VECTOR.TS, VECTOR.NP, VECTOR.SS, VECTOR.GP, VECTOR.PF, VECTOR.AC, VECTOR.CP].includes(vector as 8);
}

/**
 * The interruption type a VMM uses to inject exception `vector`: #BP and #OF are software exceptions (6, with an
 * instruction length: they come from INT3 and INTO), a #DB from INT1 is a privileged software exception (5), every
 * other exception a hardware exception (3). See SDM Vol. 3C, "VM-Entry Controls for Event Injection".
 */
export function exceptionType(vector: number, opts: { fromInt1?: boolean } = {}): number {
  if (vector === VECTOR.BP || vector === VECTOR.OF) return INTR_TYPE.SOFTWARE_EXCEPTION;
  if (vector === VECTOR.DB && opts.fromInt1 === true) return INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION;
  return INTR_TYPE.HARDWARE_EXCEPTION;
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
  return (VALID | (ev.errorCode !== undefined ? DELIVER_ERROR_CODE : 0) | ((ev.type & 7) << TYPE_SHIFT) | (ev.vector & 0xff)) >>> 0;
}

/** The event for exception `vector`: its type, its error code (0 unless given) if it pushes one, the length for software exceptions. */
export function exceptionEvent(vector: number, opts: { errorCode?: number; instructionLength?: number; fromInt1?: boolean } = {}): InjectedEvent {
  const type = exceptionType(vector, opts);
  const soft = type === INTR_TYPE.SOFTWARE_EXCEPTION || type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION;
  return {
    vector, type,
    ...(type === INTR_TYPE.HARDWARE_EXCEPTION && pushesErrorCode(vector) ? { errorCode: opts.errorCode ?? 0 } : {}),
    ...(soft ? { instructionLength: opts.instructionLength ?? 1 } : {}),
  };
}

/** Write the three event-injection fields for `ev` (the error code and length fields always, 0 when unused). */
export function inject(cpu: HostCpu, ev: InjectedEvent): SetupResult {
  // The info field last: it is the one that makes the injection valid.
  const writes = [
    ['VM_ENTRY_EXCEPTION_ERROR_CODE', ev.errorCode ?? 0],
    ['VM_ENTRY_INSTRUCTION_LEN', ev.instructionLength ?? 0],
    ['VM_ENTRY_INTR_INFO_FIELD', interruptionInfo(ev)],
  ] as const;
  for (const [field, value] of writes) {
    const w = vmwrite(cpu, field, value);
    if (!w.ok) return { ok: false, error: `VMWRITE ${field}: ${describeVmxError(w.error)}` };
  }
  return SETUP_OK;
}

/** #GP with `errorCode` (0 for most causes). */
export function injectGp(cpu: HostCpu, errorCode = 0): SetupResult {
  return inject(cpu, exceptionEvent(VECTOR.GP, { errorCode }));
}

/** #UD: a hardware exception without an error code. */
export function injectUd(cpu: HostCpu): SetupResult {
  return inject(cpu, exceptionEvent(VECTOR.UD));
}

/** #PF at `address` with `errorCode`: CR2 first (it is not in the VMCS), then the event. */
export function injectPageFault(cpu: HostCpu, address: bigint, errorCode: number): SetupResult {
  cpu.writeCr2(address);
  return inject(cpu, exceptionEvent(VECTOR.PF, { errorCode }));
}

/** #BP as INT3 would raise it: a software exception; the guest's handler sees RIP + `instructionLength`. */
export function injectBreakpoint(cpu: HostCpu, instructionLength: number): SetupResult {
  return inject(cpu, exceptionEvent(VECTOR.BP, { instructionLength }));
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
        const req = Number(v.cpu.readGpr('rax') & 0xffn);
        let r: SetupResult;
        if (req === INJECT_REQUEST.GP) r = injectGp(v.cpu, 0);
        else if (req === INJECT_REQUEST.UD) r = injectUd(v.cpu);
        else if (req === INJECT_REQUEST.PF) r = injectPageFault(v.cpu, v.cpu.readGpr('rbx'), Number(v.cpu.readGpr('rcx') & 0xffffffffn));
        else if (req === INJECT_REQUEST.BP) {
          const len = vmread(v.cpu, 'VM_EXIT_INSTRUCTION_LEN');
          if (!len.ok) return stop(`VMREAD VM_EXIT_INSTRUCTION_LEN: ${describeVmxError(len.error)}`);
          r = injectBreakpoint(v.cpu, len.value);
        } else return stop(`unknown injection request ${req}`);
        return r.ok ? RESUME : stop(r.error);
      },
    },
  };
}
