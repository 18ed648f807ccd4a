// I/O instructions (IN, OUT, INS, OUTS and their REP forms) in VMX non-root operation.
//  - "use I/O bitmaps" = 0: every I/O instruction exits if "unconditional I/O exiting" is 1, else none does.
//  - "use I/O bitmaps" = 1 ("unconditional I/O exiting" is then ignored): bitmap A covers ports 0000H–7FFFH,
//    bitmap B ports 8000H–FFFFH, port n being bit n mod 8 of byte (n mod 8000H) / 8. An access of `size` bytes
//    at `port` exits if the bit of any port in port … port + size − 1 is 1, or if the range wraps around past
//    FFFFH (it touches FFFFH and 0000H).
// The #GP checks of I/O permission (CPL > IOPL and the TSS bit map) come first (src/machine/execute.ts), and a
// REP string instruction exits before its first iteration.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" (I/O instructions), "I/O-Bitmap Addresses",
// "Exit Qualification for I/O Instructions" and "Basic VM-Exit Information" (guest-linear address).
import { NATIVE, type IoAccess } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import type { ExitCauseHandler, NonRootContext } from './context.ts';
import { insOutsInstructionInfo, ioQualification } from './qualification.ts';

/** The first port of I/O bitmap B. */
export const IO_BITMAP_B_FIRST_PORT = 0x8000;

export const io: ExitCauseHandler<'io'> = (ctx, e) =>
  ioAccessExits(ctx, e.io.port, e.io.size) ? ctx.exit(ioExit(ctx, e.io, e.length)) : NATIVE;

/** Does an access of `size` bytes at `port` cause a VM exit under the current controls? */
export function ioAccessExits(ctx: NonRootContext, port: number, size: number): boolean {
  const proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
  if ((proc & C.CPU_BASED_USE_IO_BITMAPS) === 0) return (proc & C.CPU_BASED_UNCOND_IO_EXITING) !== 0;
  const last = port + size - 1;
  if (last > 0xffff) return true; // wraps around the 16-bit I/O space
  for (let p = port; p <= last; p++) {
    const bitmap = Number(ctx.read64(p < IO_BITMAP_B_FIRST_PORT ? 'IO_BITMAP_A' : 'IO_BITMAP_B'));
    const index = p & 0x7fff;
    if ((ctx.lp.memory.read8(bitmap + (index >> 3)) >> (index & 7)) & 1) return true;
  }
  return false;
}

/**
 * The exit information of an I/O instruction: the qualification, the instruction length, and for INS/OUTS the
 * guest-linear address (undefined if the segment is unusable) and, if IA32_VMX_BASIC[54] = 1, the instruction
 * information (else undefined).
 */
function ioExit(ctx: NonRootContext, a: IoAccess, length: number): VmExitCause {
  const reason = EXIT_REASON.EXIT_REASON_IO_INSTRUCTION, qualification = ioQualification(a);
  if (!a.string) return { reason, qualification, instructionLength: length };
  return {
    reason, qualification, instructionLength: length,
    ...(a.linear !== null ? { guestLinearAddress: a.linear } : {}),
    ...(ctx.caps.basic.insOutsInfo ? { instructionInfo: insOutsInstructionInfo(a) } : {}),
  };
}
