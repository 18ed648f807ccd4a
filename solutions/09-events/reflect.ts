// Exercise 9.2 — reflecting exceptions the exception bitmap caught. A guest exception whose bit is 1 in
// EXCEPTION_BITMAP causes exit 0 instead of being delivered: VM_EXIT_INTR_INFO has its vector and type (hardware
// exception 3, or software exception 6 for INT3/INTO, with VM_EXIT_INSTRUCTION_LEN defined), bit 11 says whether
// VM_EXIT_INTR_ERROR_CODE holds an error code, and for #PF the exit qualification holds the faulting linear
// address — the exit did NOT load CR2. To give the exception back to the guest, inject the same event: same vector,
// type, error code, length; for #PF, CR2 = the qualification first. See SDM Vol. 3C, "Exception Bitmap",
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
  const info = vmread(cpu, 'VM_EXIT_INTR_INFO');
  if (!info.ok) return { ok: false, error: `VMREAD VM_EXIT_INTR_INFO: ${describeVmxError(info.error)}` };
  if ((info.value & VALID) === 0) return { ok: false, error: `VM_EXIT_INTR_INFO 0x${info.value.toString(16)} is not valid` };
  const vector = info.value & 0xff, type = (info.value >>> 8) & 7;
  let errorCode: number | undefined;
  if ((info.value & HAS_ERROR_CODE) !== 0) {
    const e = vmread(cpu, 'VM_EXIT_INTR_ERROR_CODE');
    if (!e.ok) return { ok: false, error: `VMREAD VM_EXIT_INTR_ERROR_CODE: ${describeVmxError(e.error)}` };
    errorCode = e.value;
  }
  let instructionLength: number | undefined;
  // The length is defined for software exceptions (INT3, INTO) and privileged software exceptions (INT1).
  if (type === INTR_TYPE.SOFTWARE_EXCEPTION || type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION) {
    const l = vmread(cpu, 'VM_EXIT_INSTRUCTION_LEN');
    if (!l.ok) return { ok: false, error: `VMREAD VM_EXIT_INSTRUCTION_LEN: ${describeVmxError(l.error)}` };
    instructionLength = l.value;
  }
  return { ok: true, event: { vector, type, ...(errorCode !== undefined ? { errorCode } : {}), ...(instructionLength !== undefined ? { instructionLength } : {}) } };
}

/** Inject the caught exception back; for #PF load CR2 from the exit qualification first. */
export function reflectException(cpu: HostCpu, qualification: bigint): { ok: true; event: InjectedEvent } | { ok: false; error: string } {
  const c = caughtEvent(cpu);
  if (!c.ok) return c;
  if (c.event.type === INTR_TYPE.NMI) return { ok: false, error: 'an NMI exit is not an exception to reflect' };
  if (c.event.type === INTR_TYPE.HARDWARE_EXCEPTION && c.event.vector === VECTOR.PF) cpu.writeCr2(qualification);
  const r = inject(cpu, c.event);
  return r.ok ? c : r;
}

/** Set bit n of EXCEPTION_BITMAP for every vector in `vectors` (keeping bits already set). */
export function interceptExceptions(cpu: HostCpu, vectors: readonly number[]): SetupResult {
  const b = vmread(cpu, 'EXCEPTION_BITMAP');
  if (!b.ok) return { ok: false, error: `VMREAD EXCEPTION_BITMAP: ${describeVmxError(b.error)}` };
  const bits = vectors.reduce((acc, v) => acc | (1 << v), b.value) >>> 0;
  const w = vmwrite(cpu, 'EXCEPTION_BITMAP', bits);
  return w.ok ? SETUP_OK : { ok: false, error: `VMWRITE EXCEPTION_BITMAP: ${describeVmxError(w.error)}` };
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
        const r = reflectException(v.cpu, exit.qualification);
        if (!r.ok) return stop(r.error);
        const rip = vmread(v.cpu, 'GUEST_RIP');
        caught.push({ vector: r.event.vector, errorCode: r.event.errorCode ?? null, rip: rip.ok ? rip.value : -1n });
        return RESUME;
      },
    },
  };
}
