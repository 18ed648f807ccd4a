// Exceptions in VMX non-root operation: the exception bitmap, and the #PF error-code mask and match.
//  - An exception with vector v (0–31) exits if bit v of the exception bitmap is 1, else it is delivered through
//    the guest IDT. This includes the exceptions of INT3 and INTO (software exceptions) and INT1 (privileged
//    software exception); INT n is a software interrupt, never an exception, and never exits by itself.
//  - #PF: with PFEC the page-fault error code, if PFEC & PAGE_FAULT_ERROR_CODE_MASK = PAGE_FAULT_ERROR_CODE_MATCH
//    bit 14 decides as above; if not, its meaning is reversed (the #PF exits iff bit 14 is 0).
// The exit (reason 0) reports the exception in the VM-exit interruption information (and error code); the exit
// qualification holds the #PF linear address (CR2 is not loaded) or the #DB's DR6-style bits (DR6 is not
// updated), else 0. An exception raised while another event was being delivered through the IDT also records
// that event in the IDT-vectoring information.
// See SDM Vol. 3C, "Exception Bitmap", "Other Causes of VM Exits" (exceptions), "Information for VM Exits Due to
// Vectored Events", "Information for VM Exits During Event Delivery" and "Saving RIP, RSP, RFLAGS, and SSP".
import { NATIVE, type EventInDelivery, type VmxInterceptEvent } from '../../machine/vmx-seam.ts';
import { DB_VECTOR, DF_VECTOR, PF_VECTOR } from '../../x86/exceptions.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { INTR_TYPE } from '../transition/interruption-info.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import type { ExitCauseHandler, NonRootContext } from './context.ts';
import { debugExceptionQualification, interruptionInformation } from './qualification.ts';

type ExceptionEvent = Extract<VmxInterceptEvent, { kind: 'exception' }>;

export const exception: ExitCauseHandler<'exception'> = (ctx, e) =>
  exceptionExits(ctx, e.vector, e.errorCode) ? ctx.exit(exceptionExit(ctx, e)) : NATIVE;

/** INT n is not an exception: the exception bitmap does not apply to it (faults during its delivery may exit). */
export const softwareInterrupt: ExitCauseHandler<'software-interrupt'> = () => NATIVE;

/** Does an exception with `vector` (and, for #PF, `errorCode`) cause a VM exit? */
export function exceptionExits(ctx: NonRootContext, vector: number, errorCode: number): boolean {
  const bit = ((ctx.read32('EXCEPTION_BITMAP') >>> vector) & 1) === 1;
  if (vector !== PF_VECTOR) return bit;
  const mask = ctx.read32('PAGE_FAULT_ERROR_CODE_MASK'), match = ctx.read32('PAGE_FAULT_ERROR_CODE_MATCH');
  return (((errorCode & mask) >>> 0) === match) === bit;
}

const isSoftware = (type: number): boolean =>
  type === INTR_TYPE.SOFTWARE_INTERRUPT || type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION || type === INTR_TYPE.SOFTWARE_EXCEPTION;

function exceptionExit(ctx: NonRootContext, e: ExceptionEvent): VmExitCause {
  const errorCodeValid = e.errorCode >= 0;
  const software = isSoftware(e.type);
  const d = e.during;
  return {
    reason: EXIT_REASON.EXIT_REASON_EXCEPTION_NMI,
    qualification: exceptionQualification(e),
    interruptionInfo: interruptionInformation(e.vector, e.type, errorCodeValid, nmiUnblockingBit(ctx, e)),
    ...(errorCodeValid ? { interruptionErrorCode: e.errorCode >>> 0 } : {}),
    // Defined for software exceptions and for exits during delivery of a software interrupt or exception.
    ...(software ? { instructionLength: e.length } : d !== null && isSoftware(d.type) ? { instructionLength: d.length } : {}),
    ...(d !== null ? idtVectoring(d) : {}),
    // A software exception's exit saves the RIP of INT3/INTO/INT1 itself (the interpreter has moved past it);
    // the other exits save the return pointer the exception would have pushed, which RIP already holds.
    ...(software ? { guestRip: BigInt.asUintN(64, BigInt(ctx.lp.rip - e.length)) } : {}),
  };
}

/** #PF: the faulting linear address; #DB (not INT1): B0–B3, BD, BS; any other exception: 0. */
function exceptionQualification(e: ExceptionEvent): bigint {
  if (e.vector === PF_VECTOR && e.cr2 !== undefined) return e.cr2;
  if (e.vector === DB_VECTOR && e.dr6 !== undefined) return debugExceptionQualification(e.dr6);
  return 0n;
}

/**
 * Bit 12, "NMI unblocking due to IRET": undefined with "NMI exiting" = 1 and "virtual NMIs" = 0, when the
 * IDT-vectoring information is valid, and for a double fault; otherwise 1 exactly for a fault on an IRET that
 * unblocked NMIs — with "virtual NMIs" = 1, one that removed virtual-NMI blocking (the CPU notes either, see
 * src/machine/execute.ts).
 */
function nmiUnblockingBit(ctx: NonRootContext, e: ExceptionEvent): 0 | 1 | 'undefined' {
  const pin = ctx.read32('PIN_BASED_VM_EXEC_CONTROL');
  if ((pin & C.PIN_BASED_NMI_EXITING) !== 0 && (pin & C.PIN_BASED_VIRTUAL_NMIS) === 0) return 'undefined';
  if (e.during !== null || (e.vector === DF_VECTOR && e.type === INTR_TYPE.HARDWARE_EXCEPTION)) return 'undefined';
  return e.nmiUnblockedByIret ? 1 : 0;
}

/** The event that was being delivered: IDT-vectoring information (bit 12 undefined) and error code. */
export function idtVectoring(d: EventInDelivery): { idtVectoringInfo: number; idtVectoringErrorCode?: number } {
  const info = interruptionInformation(d.vector, d.type, d.errorCode >= 0, 'undefined');
  return d.errorCode >= 0 ? { idtVectoringInfo: info, idtVectoringErrorCode: d.errorCode >>> 0 } : { idtVectoringInfo: info };
}
