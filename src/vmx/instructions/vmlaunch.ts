// VMLAUNCH and VMRESUME, up to the VM-entry checks: the instruction's own #UD/#GP conditions, the basic VM-entry
// checks (no current VMCS or a shadow VMCS → VMfailInvalid; MOV-SS blocking → error 26; launch state → errors
// 4, 5 and 6). Then `vmEntry` (src/vmx/entry) checks controls, host state and guest state and loads the guest.
// See SDM Vol. 3C, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine" and "Basic VM-Entry Checks".
import { EXIT_REASON, VMX_EXIT_REASONS_FAILED_VMENTRY } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { vmEntry, type VmEntryOutcome, type EntryContext } from '../entry/index.ts';
import type { VmTransitionCpu } from '../transition/transition-cpu.ts';
import { recordDiagnosis } from '../diagnosis.ts';
import { vmcsAccessOf } from '../transition/vmcs-access.ts';
import { injectEvent } from '../entry/inject.ts';
import {
  commonUd, cplGp, vmFailInvalid, vmFailValid, type VmxContext, type VmxOutcome,
} from './outcome.ts';

const SDM = 'SDM Vol. 3C, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine"';
const BASIC_SDM = 'SDM Vol. 3C, "Basic VM-Entry Checks"';

/** VM entry needs the processor state a VM transition loads and saves. */
export interface VmEntryContext extends VmxContext {
  readonly cpu: VmTransitionCpu;
}

export function vmlaunch(ctx: VmEntryContext, enter: (c: EntryContext) => VmEntryOutcome = vmEntry): VmxOutcome {
  return launchOrResume(ctx, 'VMLAUNCH', enter);
}
export function vmresume(ctx: VmEntryContext, enter: (c: EntryContext) => VmEntryOutcome = vmEntry): VmxOutcome {
  return launchOrResume(ctx, 'VMRESUME', enter);
}

function launchOrResume(ctx: VmEntryContext, I: 'VMLAUNCH' | 'VMRESUME', enter: (c: EntryContext) => VmEntryOutcome): VmxOutcome {
  const { cpu, state } = ctx;
  const ud = commonUd(ctx, I, SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: I === 'VMLAUNCH' ? EXIT_REASON.EXIT_REASON_VMLAUNCH : EXIT_REASON.EXIT_REASON_VMRESUME };
  const gp = cplGp(ctx, I, SDM);
  if (gp !== null) return gp;
  const current = state.current;
  if (current === null) {
    return vmFailInvalid(ctx, { rule: 'entry-no-current-vmcs', sdm: BASIC_SDM, instruction: I, message: 'There is no current VMCS: VMCLEAR and VMPTRLD one first. (CF = 1: there is no error number to read.)' });
  }
  if (current.shadow) {
    return vmFailInvalid(ctx, { rule: 'entry-shadow-vmcs', sdm: BASIC_SDM, instruction: I, field: 'shadow-VMCS indicator', value: 1n, expected: '0', message: 'The current VMCS is a shadow VMCS (bit 31 of its revision dword is 1); VM entry needs an ordinary VMCS.' });
  }
  if (cpu.movSsBlocking()) {
    return vmFailValid(ctx, VMXERR.VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS, { rule: 'entry-mov-ss-blocking', sdm: BASIC_SDM, instruction: I, message: `${I} immediately after MOV SS or POP SS: events are blocked by MOV SS.` });
  }
  if (I === 'VMLAUNCH' && current.launchState !== 'clear') {
    return vmFailValid(ctx, VMXERR.VMXERR_VMLAUNCH_NONCLEAR_VMCS, {
      rule: 'vmlaunch-non-clear', sdm: BASIC_SDM, instruction: I, field: 'launch state', expected: 'clear',
      message: current.launchState === 'uninitialised'
        ? 'VMLAUNCH with a VMCS whose launch state is not clear: the region was loaded by VMPTRLD without a VMCLEAR first.'
        : 'VMLAUNCH with a launched VMCS: use VMRESUME for later entries, or VMCLEAR the VMCS to launch it again.',
    });
  }
  if (I === 'VMRESUME' && current.launchState === 'launched-before-vmxoff') {
    return vmFailValid(ctx, VMXERR.VMXERR_VMRESUME_AFTER_VMXOFF, { rule: 'vmresume-after-vmxoff', sdm: BASIC_SDM, instruction: I, field: 'launch state', expected: 'launched (in this VMX operation)', message: 'VMXOFF and VMXON came between VMLAUNCH and VMRESUME of this VMCS: VMCLEAR it and VMLAUNCH again.' });
  }
  if (I === 'VMRESUME' && current.launchState !== 'launched') {
    return vmFailValid(ctx, VMXERR.VMXERR_VMRESUME_NONLAUNCHED_VMCS, { rule: 'vmresume-non-launched', sdm: BASIC_SDM, instruction: I, field: 'launch state', expected: 'launched', message: 'VMRESUME with a VMCS that was never launched: the first entry must be VMLAUNCH.' });
  }

  const result = enter({ cpu, vmcs: vmcsAccessOf(current), caps: cpu.caps, instruction: I, vmcsPointer: current.pa, cached: current });
  switch (result.kind) {
    case 'VMfailValid': {
      const d = result.diagnosis;
      return vmFailValid(ctx, result.error, { rule: d.rule, sdm: d.sdm, instruction: I, message: d.message, ...(d.field !== undefined ? { field: d.field } : {}), ...(d.value !== undefined ? { value: d.value } : {}), ...(d.expected !== undefined ? { expected: d.expected } : {}) });
    }
    case 'entry-failure-exit': {
      const d = result.diagnosis;
      // Not a VMfail: the processor loaded host state and continues at HOST_RIP. RFLAGS comes from the host
      // state load. The diagnosis is still recorded on the explanation channel.
      recordDiagnosis(state, { rule: d.rule, sdm: d.sdm, instruction: I, outcome: `VM-entry failure, exit reason ${result.reason} (bit 31 set), qualification ${result.qualification}`, message: d.message, ...(d.field !== undefined ? { field: d.field } : {}), ...(d.value !== undefined ? { value: d.value } : {}), ...(d.expected !== undefined ? { expected: d.expected } : {}) });
      return { kind: 'vm-entry-failed', exitReason: (result.reason | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0, qualification: BigInt(result.qualification), then: result.then };
    }
    case 'entered':
      // A successful VMLAUNCH makes the launch state "launched". See SDM Vol. 3C, "VMCS Life Cycle".
      current.launchState = 'launched';
      state.nonRoot = true;
      // The first PAUSE after VM entry starts a new PAUSE loop. See SDM Vol. 3C, "Controls for PAUSE-Loop Exiting".
      state.pauseLoop.lastPause = -1;
      // The last step of VM entry: deliver the injected event, if any. See SDM Vol. 3C, "Event Injection".
      return { kind: 'vm-entered', pendingMtf: injectEvent(cpu, vmcsAccessOf(current)) === 'pending-mtf-exit' };
  }
}
