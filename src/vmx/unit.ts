// The VMX unit of one logical processor: what the CPU core calls through the seam
// (src/machine/vmx-seam.ts). It decodes nothing itself: it maps each VMX instruction's operands to
// the instruction implementations in ./instructions, performs the outcome (flags are already set;
// faults are thrown for the interpreter to deliver; VM exits and entries switch state), and decides
// which events in VMX non-root operation cause VM exits.
// See SDM Vol. 3C, "VMX Instruction Reference", "Instructions That Cause VM Exits Unconditionally" and
// "Instructions That Cause VM Exits Conditionally".
import type { CpuModel } from '../machine/cpu-model.ts';
import { gp } from '../machine/fault.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import { EXITED, NATIVE, type InterceptAnswer, type VmxInstruction, type VmxInterceptEvent, type VmxUnit } from '../machine/vmx-seam.ts';
import type { VmxCapabilities } from './capabilities.ts';
import { capabilitiesOf, vmxMsrsOf } from './emulated-msrs.ts';
import { VMX_CAPABILITY_MSRS } from './msrs.ts';
import { vmcsAccessOf } from './transition/vmcs-access.ts';
import { VMXERR } from './errors.ts';
import { EXIT_REASON } from './exit-reasons.ts';
import { vmExit, type VmExitCause } from './exit/index.ts';
import { vmEntry, type EntryContext, type VmEntryOutcome } from './entry/index.ts';
import { attachEpt, detachEpt } from './ept/attach.ts';
import { afterFailedVmEntry, noteHostMappings, resumeHostMappings } from './vpid.ts';
import { initSignal, interceptInNonRoot, startupIpi, vmfunc, vmFunctionsEnabled, vmxInstructionExit } from './nonroot/index.ts';
import type { NonRootContext } from './nonroot/context.ts';
import { invept, invvpid, type DescriptorOperand } from './instructions/invept-invvpid.ts';
import {
  fault, vmFail, type DestinationOperand, type SourceOperand, type VmxContext, type VmxOutcome,
} from './instructions/outcome.ts';
import { vmclear } from './instructions/vmclear.ts';
import { vmlaunch, vmresume } from './instructions/vmlaunch.ts';
import { vmptrld, vmptrst } from './instructions/vmptrld.ts';
import { vmread, vmwrite } from './instructions/vmread-vmwrite.ts';
import { vmxoff, vmxon } from './instructions/vmxon.ts';
import { LpVmxCpu } from './lp-cpu.ts';
import { VmxState } from './state.ts';
import { supportedSlots } from './vmcs-support.ts';
import { VMCS_SLOT } from './vmcs.ts';
import type { VmcsFieldName, VmcsFullFieldName } from './fields.ts';
import { diagnosisOfLastInstruction, type Diagnosis } from './diagnosis.ts';
import { VmxObservers, type VmxObserver } from './observe.ts';
import { UD_VECTOR } from '../x86/exceptions.ts';
import { BoundaryState } from './nonroot/boundary.ts';
import { VMX_CONTROL } from './controls.ts';
import { INTR_INFO, INTR_TYPE } from './transition/interruption-info.ts';

const VMCALL_SDM = 'SDM Vol. 3C, "VMCALL—Call to VM Monitor"';

/** The host API's destination: VMREAD's value comes back in the outcome. */
const RESULT_OPERAND: DestinationOperand = Object.freeze({ kind: 'result' });
/**
 * What `perform` is told about a host VMREAD/VMWRITE: it reads the instruction only for a VM exit, which cannot
 * happen in VMX root operation (the only place these run).
 */
const HOST_VMREAD: VmxInstruction = hostInstruction('VMREAD');
const HOST_VMWRITE: VmxInstruction = hostInstruction('VMWRITE');
function hostInstruction(mnemonic: 'VMREAD' | 'VMWRITE'): VmxInstruction {
  return { mnemonic, length: 3, rip: 0n, operandSize: 8, addressSize: 8, reg: -1, rmReg: -1, mem: null };
}

/** The ModRM.rm operand: memory, or a register (which VMXON/VMCLEAR/VMPTRLD/VMPTRST reject with #UD). */
function rmOperand(insn: VmxInstruction): SourceOperand {
  return insn.mem !== null ? { kind: 'memory', linear: insn.mem.linear } : { kind: 'register', reg: insn.rmReg };
}
function destOperand(insn: VmxInstruction): DestinationOperand {
  return insn.mem !== null ? { kind: 'memory', linear: insn.mem.linear } : { kind: 'register', reg: insn.rmReg };
}
/** The m128 descriptor of INVEPT/INVVPID (a register form is #UD). */
function descriptorOperand(insn: VmxInstruction): DescriptorOperand {
  return insn.mem !== null ? { kind: 'memory', linear: insn.mem.linear } : { kind: 'register', reg: insn.rmReg };
}
/** The ModRM.reg operand (VMREAD/VMWRITE field encoding, INVEPT/INVVPID type). */
function regOperand(insn: VmxInstruction): SourceOperand {
  return { kind: 'register', reg: insn.reg };
}

export class VmxUnitImpl implements VmxUnit, NonRootContext {
  readonly state: VmxState;
  readonly cpu: LpVmxCpu;
  /** The instructions' context for host VMREAD/VMWRITE, made once (both members are fixed for the unit's life). */
  private readonly hostContext: VmxContext;
  private readonly observers = new VmxObservers();
  /** MTF, the preemption timer and the window exits, checked at instruction boundaries (./nonroot/boundary.ts). */
  private readonly boundary = new BoundaryState();
  /** True from a VM entry that enabled a boundary exit until the next VM exit: the CPU then calls `atBoundary`. */
  boundaryHook = false;

  constructor(
    readonly lp: LogicalProcessor,
    readonly caps: VmxCapabilities,
  ) {
    this.state = new VmxState(supportedSlots(caps));
    this.cpu = new LpVmxCpu(lp, caps);
    this.hostContext = { cpu: this.cpu, state: this.state };
  }

  get nonRoot(): boolean {
    return this.state.nonRoot;
  }

  /** The explanation channel: why the last VMX instruction or VM entry failed. Never changes results. */
  lastDiagnosis(): Diagnosis | null {
    return this.state.lastDiagnosis;
  }

  /**
   * The explanation channel for the last VMX instruction only: its diagnosis, or null if it did not fail (a
   * diagnosis from an earlier instruction is not returned).
   */
  diagnosisOfLastInstruction(): Diagnosis | null {
    return diagnosisOfLastInstruction(this.state);
  }

  /** Watch VM exits and entries of this LP (src/debug's exit trace and VMCS dump); returns the unsubscribe. */
  observe(observer: VmxObserver): () => void {
    return this.observers.add(observer);
  }

  execute(lp: LogicalProcessor, insn: VmxInstruction): void {
    if (insn.mem?.addressFault !== undefined) return this.executeWithOperand(lp, insn);
    this.executeInstruction(lp, insn);
  }

  /**
   * VMREAD/VMWRITE from host code in VMX root operation (VmxUnit.hostVmread/hostVmwrite): the same instruction
   * implementations as `execute`, with the operands as values (../instructions/outcome.ts, 'value' and 'result').
   * An exit handler makes several per VM exit; staging them in RAX/RBX and decoding an instruction each time was
   * a large part of the round trip. In VMX non-root operation VMREAD/VMWRITE may exit, and the exit information
   * names the registers: HostCpu then takes the general path.
   */
  hostVmread(field: number): bigint {
    this.state.instructionSeq++;
    const outcome = vmread(this.hostContext, { kind: 'value', value: field >>> 0 }, RESULT_OPERAND);
    this.perform(this.lp, HOST_VMREAD, outcome);
    return outcome.kind === 'VMsucceed' ? outcome.value ?? 0n : 0n;
  }
  hostVmwrite(field: number, value: bigint): void {
    this.state.instructionSeq++;
    const outcome = vmwrite(this.hostContext, { kind: 'value', value: field >>> 0 }, { kind: 'value', value: BigInt.asUintN(64, value) });
    this.perform(this.lp, HOST_VMWRITE, outcome);
  }

  private executeInstruction(lp: LogicalProcessor, insn: VmxInstruction): void {
    this.state.instructionSeq++;
    const ctx = { cpu: this.cpu, state: this.state };
    // (Operand helpers are module-level functions, not closures: this runs for every VMREAD/VMWRITE of every exit.)
    let outcome: VmxOutcome;
    switch (insn.mnemonic) {
      case 'VMXON': outcome = vmxon(ctx, rmOperand(insn)); break;
      case 'VMXOFF': outcome = vmxoff(ctx); break;
      case 'VMCLEAR': outcome = vmclear(ctx, rmOperand(insn)); break;
      case 'VMPTRLD': outcome = vmptrld(ctx, rmOperand(insn)); break;
      case 'VMPTRST': outcome = vmptrst(ctx, destOperand(insn)); break;
      case 'VMREAD': outcome = vmread(ctx, regOperand(insn), destOperand(insn)); break;
      case 'VMWRITE': outcome = vmwrite(ctx, regOperand(insn), rmOperand(insn)); break;
      case 'VMLAUNCH': outcome = vmlaunch(ctx, this.enter); break;
      case 'VMRESUME': outcome = vmresume(ctx, this.enter); break;
      case 'INVEPT': outcome = invept(ctx, regOperand(insn), descriptorOperand(insn)); break;
      case 'INVVPID': outcome = invvpid(ctx, regOperand(insn), descriptorOperand(insn)); break;
      case 'VMCALL': outcome = this.vmcall(); break;
      case 'VMFUNC':
        // In VMX non-root operation with "enable VM functions" = 1 the VM function runs or exits (./nonroot);
        // anywhere else VMFUNC is #UD. See SDM Vol. 3C, "VMFUNC—Invoke VM function".
        if (this.state.nonRoot && vmFunctionsEnabled(this)) {
          vmfunc(this, insn);
          return;
        }
        outcome = fault(ctx, UD_VECTOR, { rule: 'vmfunc-not-enabled', sdm: 'SDM Vol. 3C, "VMFUNC—Invoke VM function"', instruction: 'VMFUNC', message: 'VMFUNC outside VMX non-root operation, or with "enable VM functions" = 0, is an invalid opcode.' });
        break;
    }
    if (this.observers.active && (insn.mnemonic === 'VMLAUNCH' || insn.mnemonic === 'VMRESUME')) this.observers.entryOutcome(lp, this.state.current, insn.mnemonic, outcome);
    this.perform(lp, insn, outcome);
  }

  /** Execute with `operandFault` set while the memory operand's address is one that faults (see lp-cpu.ts). */
  private executeWithOperand(lp: LogicalProcessor, insn: VmxInstruction): void {
    this.cpu.operandFault = insn.mem?.addressFault ?? null;
    try {
      this.executeInstruction(lp, insn);
    } finally {
      this.cpu.operandFault = null;
    }
  }

  /** VMCALL: a VM exit in VMX non-root operation; VMfail(1) in VMX root operation; #UD outside VMX operation. */
  private vmcall(): VmxOutcome {
    const ctx = { cpu: this.cpu, state: this.state };
    if (this.state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMCALL };
    if (!this.state.inVmxOperation) {
      return fault(ctx, UD_VECTOR, { rule: 'vmcall-outside-vmx', sdm: VMCALL_SDM, instruction: 'VMCALL', message: 'VMCALL outside VMX operation is an invalid opcode.' });
    }
    // Without the dual-monitor treatment of SMM, VMCALL in VMX root operation is VMfail(1).
    return vmFail(ctx, VMXERR.VMXERR_VMCALL_IN_VMX_ROOT_OPERATION, { rule: 'vmcall-in-root', sdm: VMCALL_SDM, instruction: 'VMCALL', message: 'VMCALL in VMX root operation (there is no dual-monitor SMM treatment to call).' });
  }

  private perform(lp: LogicalProcessor, insn: VmxInstruction, outcome: VmxOutcome): void {
    switch (outcome.kind) {
      case 'VMsucceed':
      case 'VMfailInvalid':
      case 'VMfailValid':
        return; // flags, error field and destinations are already written
      case 'fault':
        throw outcome.fault;
      case 'vm-exit':
        // A VMX instruction executed by the guest: its exit information comes from ./nonroot/vmx-instructions.ts.
        this.exit(vmxInstructionExit(insn, outcome.reason));
        return;
      case 'vm-entered':
        // "Other event" injection: an MTF VM exit is pending at the instruction boundary right after VM entry,
        // before the guest runs anything. See SDM Vol. 3C, "Monitor Trap Flag" and "Event Injection".
        if (outcome.pendingMtf && this.state.nonRoot) this.exit({ reason: EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG });
        else if (this.state.nonRoot) this.boundaryHook = this.boundary.arm(this, lp, this.caps.misc.preemptionTimerRate, injectedVectoredEvent(this));
        return;
      case 'vm-entry-failed':
        if (outcome.then.kind === 'vmx-abort') lp.shutdown(`VMX abort: ${outcome.then.message}`);
        return;
    }
  }

  /**
   * VM entry; once guest state is loaded, the guest's memory path gets EPT if the VMCS enables it and its TLB context
   * (./ept/attach.ts, ./vpid.ts), before an injected event is delivered.
   */
  private readonly enter = (c: EntryContext): VmEntryOutcome => {
    noteHostMappings(this.lp);
    const outcome = vmEntry(c);
    if (outcome.kind === 'entered') attachEpt(this);
    else if (outcome.kind === 'entry-failure-exit') afterFailedVmEntry(this.lp);
    return outcome;
  };

  /** Perform a VM exit: exit information, guest state saved, host state loaded; the LP continues at HOST_RIP. */
  exit(cause: VmExitCause): InterceptAnswer {
    const current = this.state.current!;
    // "If the 'save VMX-preemption timer value' VM-exit control is 1, the value of the timer is saved into the
    // VMX-preemption timer-value field" (0 on the exit the timer itself caused). See SDM Vol. 3C, "Saving
    // Non-Register State".
    if (this.boundary.timerActive && (this.read32('VM_EXIT_CONTROLS') & VMX_CONTROL.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER) !== 0) {
      current.writeLow(VMCS_SLOT.VMX_PREEMPTION_TIMER_VALUE!, this.boundary.timerValue(this.lp));
    }
    this.boundary.timerActive = false;
    this.boundaryHook = false;
    // The host's memory path has no guest-physical addresses. See SDM Vol. 3C, "EPT Translation Mechanism".
    detachEpt(this.lp);
    const outcome = vmExit({ cpu: this.cpu, vmcs: vmcsAccessOf(current), vmcsPointer: current.pa }, cause);
    resumeHostMappings(this.lp);
    this.state.nonRoot = false;
    if (outcome.kind === 'vmx-abort') this.lp.shutdown(`VMX abort: ${outcome.message}`);
    if (this.observers.active) this.observers.exited(this.lp, current);
    return EXITED;
  }

  // NonRootContext: what the exit causes in ./nonroot read.
  read32(field: VmcsFieldName): number {
    const slot = VMCS_SLOT[field];
    return slot === undefined ? 0 : this.state.current!.readLow(slot) >>> 0;
  }
  read64(field: VmcsFullFieldName): bigint {
    return this.state.current!.readByName(field) ?? 0n;
  }

  /** An instruction boundary while `boundaryHook` is set: MTF, preemption-timer and window exits. */
  atBoundary(lp: LogicalProcessor): boolean {
    return this.boundary.atBoundary(this, lp);
  }

  /** TSC ticks until the preemption timer's exit (Infinity: no timer), for a halted guest LP. */
  ticksUntilIdleExit(lp: LogicalProcessor): number {
    return this.state.nonRoot && this.boundaryHook ? this.boundary.ticksUntilTimerExpiry(lp) : Infinity;
  }

  /** A debug trap at the end of a guest instruction: kept pending if a pending MTF VM exit outranks it. */
  holdDebugTrap(_lp: LogicalProcessor, dr6: number): boolean {
    return this.state.nonRoot && this.boundary.holdDebugTrap(this, dr6);
  }

  /** An event in VMX non-root operation: its exit cause decides (./nonroot). */
  intercept(_lp: LogicalProcessor, event: VmxInterceptEvent): InterceptAnswer {
    if (!this.state.nonRoot) return NATIVE;
    return interceptInNonRoot(this, event);
  }

  /** MOV to CR0/CR4 in VMX root operation must keep the fixed bits, else #GP(0). */
  checkControlRegisterWrite(_lp: LogicalProcessor, cr: 0 | 4, value: bigint): void {
    if (!this.state.inVmxOperation || this.state.nonRoot) return;
    const fixed0 = cr === 0 ? this.caps.cr0Fixed0 : this.caps.cr4Fixed0;
    const fixed1 = cr === 0 ? this.caps.cr0Fixed1 : this.caps.cr4Fixed1;
    if ((value & fixed0) !== fixed0 || (value & ~fixed1 & 0xffffffffn) !== 0n) {
      throw gp(0, `MOV to CR${cr} in VMX operation with a value that breaks IA32_VMX_CR${cr}_FIXED0/1: ${value.toString(16)}H`, 'SDM Vol. 3C, "Restrictions on VMX Operation"');
    }
  }

  /** A SIPI to a guest in the wait-for-SIPI state is a VM exit with the vector as qualification. */
  handleSipi(_lp: LogicalProcessor, vector: number): boolean {
    if (!this.state.nonRoot) return false;
    startupIpi(this, vector);
    return true;
  }

  /**
   * INIT is blocked in VMX root operation, and in VMX non-root operation while the guest waits for SIPI: a blocked
   * INIT stays pending (it is acted on once unblocked, e.g. right after the next VM entry). Otherwise in VMX non-root
   * operation it causes a VM exit and none of its usual effects. See SDM Vol. 3C, "Other Causes of VM Exits" (INIT
   * signals) and "VMX Root Operation" (INIT blocking).
   */
  handleInit(lp: LogicalProcessor): boolean {
    if (!this.state.inVmxOperation) return false;
    if (this.state.nonRoot && lp.activity !== 'wait-for-sipi') initSignal(this);
    else lp.initPending = true; // blocked: still pending
    return true;
  }
}

/**
 * Give every LP of a machine a VMX unit for `model`. The LPs' capability MSRs become the emulated values
 * (`vmxMsrsOf`: consistent with the fields VMX Lab models), read-only as on hardware.
 */
export function attachVmx(cpus: readonly LogicalProcessor[], model: CpuModel): VmxUnitImpl[] {
  const caps = capabilitiesOf(model);
  const msrs = vmxMsrsOf(model);
  return cpus.map((lp) => {
    for (const { index } of VMX_CAPABILITY_MSRS) {
      const value = msrs.get(index);
      if (value !== undefined) lp.definePlainMsr(index, value, false);
    }
    const unit = new VmxUnitImpl(lp, caps);
    lp.vmx = unit;
    return unit;
  });
}

/** VM entry injected an interrupt, NMI or exception (not "other event", which is a pending MTF VM exit itself). */
function injectedVectoredEvent(unit: VmxUnitImpl): boolean {
  const info = unit.read32('VM_ENTRY_INTR_INFO_FIELD');
  return (info & INTR_INFO.VALID) !== 0 && ((info & INTR_INFO.TYPE_MASK) >>> INTR_INFO.TYPE_SHIFT) !== INTR_TYPE.OTHER_EVENT;
}
