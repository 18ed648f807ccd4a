// VMFUNC in VMX non-root operation with "enable VM functions" = 1 (with it 0, VMFUNC is #UD: see ../unit.ts).
// EAX selects the VM function. A function that is not enabled in the VM-function controls (or EAX ≥ 64) exits
// (reason 59). Function 0, EPTP switching: ECX indexes the 512-entry EPTP list; an index ≥ 512, or an entry that
// is not an EPTP VM entry would accept, exits; otherwise the entry becomes the EPT pointer and the guest goes on
// with the next instruction. VMFUNC leaves RFLAGS alone. ("EPT-violation #VE" and its EPTP index are not
// modelled.) See SDM Vol. 3C, "VMFUNC—Invoke VM function", "VM Functions" and "EPTP Switching".
import type { VmxInstruction } from '../../machine/vmx-seam.ts';
import { RAX, RCX } from '../../x86/registers.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { eptpProblem } from '../eptp.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { NonRootContext } from './context.ts';
import { attachEpt } from '../ept/attach.ts';
import { secondaryControls } from './context.ts';
import { vmxInstructionExit } from './vmx-instructions.ts';

/** The VM function number of EPTP switching, and the size of the EPTP list. */
export const VMFUNC_EPTP_SWITCHING = 0;
export const EPTP_LIST_ENTRIES = 512;

/** "enable VM functions" (a secondary control: 0 unless "activate secondary controls" is 1). */
export function vmFunctionsEnabled(ctx: NonRootContext): boolean {
  return (secondaryControls(ctx) & C.SECONDARY_EXEC_ENABLE_VMFUNC) !== 0;
}

export function vmfunc(ctx: NonRootContext, insn: VmxInstruction): void {
  const fn = ctx.lp.regLo[RAX]! >>> 0;
  const exit = () => { ctx.exit(vmxInstructionExit(insn, EXIT_REASON.EXIT_REASON_VMFUNC)); };
  if (fn >= 64 || ((ctx.read64('VM_FUNCTION_CONTROL') >> BigInt(fn)) & 1n) === 0n) return exit();
  if (fn !== VMFUNC_EPTP_SWITCHING) return exit(); // no other VM function is defined
  const index = ctx.lp.regLo[RCX]! >>> 0;
  if (index >= EPTP_LIST_ENTRIES) return exit();
  const eptp = ctx.lp.memory.read64(Number(ctx.read64('EPTP_LIST_ADDRESS')) + 8 * index);
  if (eptpProblem(eptp, ctx.caps, ctx.lp.maxPhysAddr) !== null) return exit();
  ctx.state.current!.writeByName('EPT_POINTER', eptp);
  // The guest's memory path now walks the new EPT; mappings cached for the old EP4TA stay with it (they are tagged by
  // it) and are not used for the new one. See SDM Vol. 3C, "EPTP Switching".
  attachEpt(ctx, 'eptp-switch');
}
