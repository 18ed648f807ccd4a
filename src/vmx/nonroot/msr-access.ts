// RDMSR and WRMSR in VMX non-root operation. Without "use MSR bitmaps" every RDMSR/WRMSR exits. With it, the
// bitmap bit for the MSR decides; MSRs outside 0–1FFFH and C0000000H–C0001FFFH always exit. The 4-KByte bitmap:
// read-low at 0, read-high at 1024, write-low at 2048, write-high at 3072; MSR n is bit n mod 8 of byte n / 8 of
// its quarter. A RDMSR of IA32_TIME_STAMP_COUNTER that does not exit reads the offset (and scaled) TSC.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally", "MSR-Bitmap Address" and "Changes to
// Instruction Behavior in VMX Non-Root Operation".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { MSR_IA32_TIME_STAMP_COUNTER } from '../../x86/msr.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler, NonRootContext } from './context.ts';
import { guestTsc } from './tsc.ts';

export const MSR_BITMAP_READ_LOW = 0, MSR_BITMAP_READ_HIGH = 1024, MSR_BITMAP_WRITE_LOW = 2048, MSR_BITMAP_WRITE_HIGH = 3072;

/** Does RDMSR (write = false) or WRMSR (write = true) of `msr` cause a VM exit? */
export function msrAccessExits(ctx: NonRootContext, write: boolean, msr: number): boolean {
  if ((ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & C.CPU_BASED_USE_MSR_BITMAPS) === 0) return true;
  const m = msr >>> 0;
  let quarter: number;
  if (m <= 0x1fff) quarter = write ? MSR_BITMAP_WRITE_LOW : MSR_BITMAP_READ_LOW;
  else if (m >= 0xc0000000 && m <= 0xc0001fff) quarter = write ? MSR_BITMAP_WRITE_HIGH : MSR_BITMAP_READ_HIGH;
  else return true;
  const index = m & 0x1fff;
  const bitmap = Number(ctx.read64('MSR_BITMAP'));
  return ((ctx.lp.memory.read8(bitmap + quarter + (index >> 3)) >> (index & 7)) & 1) === 1;
}

export const rdmsr: ExitCauseHandler<'rdmsr'> = (ctx, e) => {
  if (msrAccessExits(ctx, false, e.msr)) return ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_MSR_READ, e.length));
  return e.msr >>> 0 === MSR_IA32_TIME_STAMP_COUNTER ? guestTsc(ctx) : NATIVE;
};

export const wrmsr: ExitCauseHandler<'wrmsr'> = (ctx, e) =>
  msrAccessExits(ctx, true, e.msr) ? ctx.exit(instructionExit(EXIT_REASON.EXIT_REASON_MSR_WRITE, e.length)) : NATIVE;
