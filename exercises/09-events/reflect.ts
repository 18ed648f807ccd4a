// Exercise 9.2 — reflecting exceptions the exception bitmap caught. A guest exception whose bit is 1 in
// EXCEPTION_BITMAP causes exit 0 instead of being delivered: VM_EXIT_INTR_INFO has its vector and type (hardware
// exception 3, or software exception 6 for INT3/INTO, with VM_EXIT_INSTRUCTION_LEN defined), bit 11 says whether
// VM_EXIT_INTR_ERROR_CODE holds an error code, and for #PF the exit qualification holds the faulting linear
// address — the exit did NOT load CR2. To give the exception back to the guest, inject the same event: same vector,
// type, error code, length; for #PF, CR2 = the qualification first.
// Read chapters/09-events/README.md. Yours to write: caughtEvent, reflectException, interceptExceptions and the exit-0
// handler of reflectPart. See SDM Vol. 3C, "Exception Bitmap",
// "Information for VM Exits Due to Vectored Events" and "Event Injection".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, stop, type SetupResult, type VmmPart } from '../05-exits/hypervisor.ts';
import { inject, INTR_TYPE, VECTOR, type InjectedEvent } from './inject.ts';

const VALID = 1 << 31;
const HAS_ERROR_CODE = 1 << 11;

/** The event in VM_EXIT_INTR_INFO (and its error code and length), or an error if the field is not valid. */
export function caughtEvent(cpu: HostCpu): { ok: true; event: InjectedEvent } | { ok: false; error: string } {
  // TODO: VMREAD VM_EXIT_INTR_INFO (not valid → error); vector = bits 7:0, type = 10:8; the error code from VM_EXIT_INTR_ERROR_CODE only if bit 11; VM_EXIT_INSTRUCTION_LEN only for types 5 and 6.
  throw new Error('TODO: caughtEvent');
}

/** Inject the caught exception back; for #PF load CR2 from the exit qualification first. */
export function reflectException(cpu: HostCpu, qualification: bigint): { ok: true; event: InjectedEvent } | { ok: false; error: string } {
  // TODO: caughtEvent; refuse an NMI; for a hardware #PF cpu.writeCr2(qualification) first (the exit did not load CR2); then inject the same event.
  throw new Error('TODO: reflectException');
}

/** Set bit n of EXCEPTION_BITMAP for every vector in `vectors` (keeping bits already set). */
export function interceptExceptions(cpu: HostCpu, vectors: readonly number[]): SetupResult {
  // TODO: EXCEPTION_BITMAP |= 1 << v for each vector (VMREAD, OR, VMWRITE; >>> 0).
  throw new Error('TODO: interceptExceptions');
}

/**
 * Intercept `vectors`, log each exception caught (vector, error code, guest RIP), reflect it, RESUME — never SKIP:
 * a fault must be delivered with RIP at the faulting instruction; a software exception's length is in the injection.
 */
export function reflectPart(vectors: readonly number[]): VmmPart & { readonly caught: readonly { vector: number; errorCode: number | null; rip: bigint }[] } {
  const caught: { vector: number; errorCode: number | null; rip: bigint }[] = [];
  return {
    name: 'reflect-exceptions',
    caught,
    setup: (v) => interceptExceptions(v.cpu, vectors),
    handlers: {
      [EXIT_REASON.EXIT_REASON_EXCEPTION_NMI]: (v, exit) => {
        // TODO: reflectException(v.cpu, exit.qualification) (failure → stop), caught.push({ vector, errorCode ?? null,
        // rip: GUEST_RIP }), RESUME — never SKIP.
        throw new Error('TODO: reflectPart exception handler');
      },
    },
  };
}
