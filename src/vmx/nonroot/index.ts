// Exit causes in VMX non-root operation, one module per cause (the hvpp habit: one handler per reason). Each
// handler answers, for one kind of event, EXITED (it performed a VM exit), NATIVE (the event proceeds as on bare
// metal) or substitute(value) (it proceeds with a value VMX supplies). See ../../machine/vmx-seam.ts and SDM Vol.
// 3C, "VMX Non-Root Operation".
import type { InterceptAnswer, VmxInterceptEvent } from '../../machine/vmx-seam.ts';
import type { ExitCauseHandler, NonRootContext } from './context.ts';
import { crAccess } from './cr-access.ts';
import { descriptorTable } from './descriptor-tables.ts';
import { hlt } from './hlt.ts';
import { invlpg, invpcid } from './invlpg.ts';
import { monitor, mwait } from './monitor-mwait.ts';
import { movDr } from './mov-dr.ts';
import { rdmsr, wrmsr } from './msr-access.ts';
import { pause } from './pause.ts';
import { rdrand, rdseed } from './random-numbers.ts';
import { rdpmc } from './rdpmc.ts';
import { wbinvd } from './wbinvd.ts';
import { tripleFault } from './other-causes.ts';
import { rdtsc, rdtscp } from './tsc.ts';
import { cpuid, invd, xsetbv } from './unconditional.ts';
import { io } from './io.ts';
import { exception, softwareInterrupt } from './exceptions.ts';
import { externalInterrupt, nmi } from './interrupts.ts';

export const EXIT_CAUSES: { readonly [K in VmxInterceptEvent['kind']]: ExitCauseHandler<K> } = {
  'cpuid': cpuid,
  'invd': invd,
  'xsetbv': xsetbv,
  'hlt': hlt,
  'rdtsc': rdtsc,
  'rdtscp': rdtscp,
  'rdmsr': rdmsr,
  'wrmsr': wrmsr,
  'cr-access': crAccess,
  'triple-fault': tripleFault,
  // Instructions that exit conditionally (besides I/O, CR access, MSRs, TSC, HLT).
  'pause': pause,
  'wbinvd': wbinvd,
  'dr-access': movDr,
  'invlpg': invlpg,
  'invpcid': invpcid,
  'descriptor-table': descriptorTable,
  'rdpmc': rdpmc,
  'monitor': monitor,
  'mwait': mwait,
  'rdrand': rdrand,
  'rdseed': rdseed,
  // I/O, exceptions, interrupts and NMIs.
  'io': io,
  'exception': exception,
  'software-interrupt': softwareInterrupt,
  'external-interrupt': externalInterrupt,
  'nmi': nmi,
};

/** Offer `event` to its exit cause. */
export function interceptInNonRoot(ctx: NonRootContext, event: VmxInterceptEvent): InterceptAnswer {
  return (EXIT_CAUSES[event.kind] as ExitCauseHandler<typeof event.kind>)(ctx, event as never);
}

export { initSignal, startupIpi } from './other-causes.ts';
export { cpuidExit, hltExit, instructionExit, tripleFaultExit, vmcallExit } from './causes.ts';
export { vmxInstructionExit } from './vmx-instructions.ts';
export { vmfunc, vmFunctionsEnabled } from './vmfunc.ts';
