// HLT causes a VM exit if "HLT exiting" is 1; otherwise the guest halts as on bare metal.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL } from '../controls.ts';
import { hltExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';

export const hlt: ExitCauseHandler<'hlt'> = (ctx, e) =>
  (ctx.read32('CPU_BASED_VM_EXEC_CONTROL') & VMX_CONTROL.CPU_BASED_HLT_EXITING) !== 0 ? ctx.exit(hltExit(e.length)) : NATIVE;
