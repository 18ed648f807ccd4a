// External interrupts and NMIs in VMX non-root operation.
//  - "External-interrupt exiting" = 1: an external interrupt causes a VM exit (reason 1) even if RFLAGS.IF = 0
//    (IF does not block external interrupts then). With the exit control "acknowledge interrupt on exit" the
//    processor acknowledges the interrupt controller as part of the exit and the VM-exit interruption
//    information holds the vector (type 0, external interrupt); without it the interrupt stays pending and the
//    field is invalid. The exit qualification is 0 and the instruction length undefined.
//  - "NMI exiting" = 1: an NMI causes a VM exit (reason 0) with interruption information vector 2, type 2; the
//    NMI is consumed, and NMIs are blocked after the exit (until the host's next IRET or VM entry).
//  - "Virtual NMIs" = 1: virtual-NMI blocking is its own state (lp.virtualNmiBlocked, bit 3 of the interruptibility
//    state while the guest runs); real NMIs are not blocked in VMX non-root operation, so one exits at once even
//    while the guest's virtual NMI is blocked.
// NMI-window exiting is in ./boundary.ts. TODO: posted interrupts ("process posted interrupts") are not modelled here.
// See SDM Vol. 3C, "Pin-Based VM-Execution Controls", "Changes to Event Blocking", "Information for VM Exits Due
// to Vectored Events" and "Updating Non-Register State".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { NMI_VECTOR } from '../../x86/exceptions.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { INTR_TYPE } from '../transition/interruption-info.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { ExitCauseHandler } from './context.ts';
import { interruptionInformation } from './qualification.ts';

export const externalInterrupt: ExitCauseHandler<'external-interrupt'> = (ctx, e) => {
  if ((ctx.read32('PIN_BASED_VM_EXEC_CONTROL') & C.PIN_BASED_EXT_INTR_MASK) === 0) return NATIVE;
  const reason = EXIT_REASON.EXIT_REASON_EXTERNAL_INTERRUPT;
  if ((ctx.read32('VM_EXIT_CONTROLS') & C.VM_EXIT_ACK_INTR_ON_EXIT) === 0) return ctx.exit({ reason, qualification: 0n });
  // INTA: the vector moves from the interrupt controller's IRR to its ISR, as if it were delivered.
  ctx.lp.interruptSource?.acknowledge(e.vector);
  return ctx.exit({ reason, qualification: 0n, interruptionInfo: interruptionInformation(e.vector, INTR_TYPE.EXTERNAL_INTERRUPT, false, 0) });
};

export const nmi: ExitCauseHandler<'nmi'> = (ctx) => {
  const pin = ctx.read32('PIN_BASED_VM_EXEC_CONTROL');
  if ((pin & C.PIN_BASED_NMI_EXITING) === 0) return NATIVE;
  // Bit 12 (NMI unblocking due to IRET) is undefined with "virtual NMIs" = 0, and 0 otherwise (not an IRET fault).
  const bit12 = (pin & C.PIN_BASED_VIRTUAL_NMIS) === 0 ? 'undefined' : 0;
  const answer = ctx.exit({
    reason: EXIT_REASON.EXIT_REASON_EXCEPTION_NMI, qualification: 0n,
    interruptionInfo: interruptionInformation(NMI_VECTOR, INTR_TYPE.NMI, false, bit12),
  });
  // "VM exits caused directly by non-maskable interrupts (NMIs) cause blocking by NMI." The guest's own blocking
  // was saved before this. See SDM Vol. 3C, "Updating Non-Register State".
  ctx.lp.nmiBlocked = true;
  return answer;
};
