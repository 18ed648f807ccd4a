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
import type { VmxInstruction, VmxInterceptEvent, VmxUnit } from '../machine/vmx-seam.ts';
import type { VmxCapabilities } from './capabilities.ts';
import { capabilitiesOf, vmxMsrsOf } from './emulated-msrs.ts';
import { VMX_CAPABILITY_MSRS } from './msrs.ts';
import { VMX_CONTROL } from './controls.ts';
import { vmcsAccessOf } from './transition/vmcs-access.ts';
import { VMXERR } from './errors.ts';
import { EXIT_REASON } from './exit-reasons.ts';
import { cpuidExit, hltExit, tripleFaultExit, vmcallExit, vmExit, type VmExitCause } from './exit/index.ts';
import { invept, invvpid, type DescriptorOperand } from './instructions/invept-invvpid.ts';
import {
  fault, vmFail, type DestinationOperand, type SourceOperand, type VmxOutcome,
} from './instructions/outcome.ts';
import { vmclear } from './instructions/vmclear.ts';
import { vmlaunch, vmresume } from './instructions/vmlaunch.ts';
import { vmptrld, vmptrst } from './instructions/vmptrld.ts';
import { vmread, vmwrite } from './instructions/vmread-vmwrite.ts';
import { vmxoff, vmxon } from './instructions/vmxon.ts';
import { LpVmxCpu } from './lp-cpu.ts';
import { VmxState } from './state.ts';
import { supportedSlots } from './vmcs-support.ts';
import { diagnosisOfLastInstruction, type Diagnosis } from './diagnosis.ts';
import { UD_VECTOR } from '../x86/exceptions.ts';

const VMCALL_SDM = 'SDM Vol. 3C, "VMCALL—Call to VM Monitor"';

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

export class VmxUnitImpl implements VmxUnit {
  readonly state: VmxState;
  readonly cpu: LpVmxCpu;

  constructor(
    readonly lp: LogicalProcessor,
    readonly caps: VmxCapabilities,
  ) {
    this.state = new VmxState(supportedSlots(caps));
    this.cpu = new LpVmxCpu(lp, caps);
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

  execute(lp: LogicalProcessor, insn: VmxInstruction): void {
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
      case 'VMLAUNCH': outcome = vmlaunch(ctx); break;
      case 'VMRESUME': outcome = vmresume(ctx); break;
      case 'INVEPT': outcome = invept(ctx, regOperand(insn), descriptorOperand(insn)); break;
      case 'INVVPID': outcome = invvpid(ctx, regOperand(insn), descriptorOperand(insn)); break;
      case 'VMCALL': outcome = this.vmcall(); break;
      case 'VMFUNC':
        // VM functions are not enabled by any VMCS this emulator accepts yet: #UD, as with "enable VM functions" = 0.
        // See SDM Vol. 3C, "VMFUNC—Invoke VM function".
        outcome = fault(ctx, UD_VECTOR, { rule: 'vmfunc-not-enabled', sdm: 'SDM Vol. 3C, "VMFUNC—Invoke VM function"', instruction: 'VMFUNC', message: 'VMFUNC outside VMX non-root operation, or with "enable VM functions" = 0, is an invalid opcode.' });
        break;
    }
    this.perform(lp, insn, outcome);
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
      case 'vm-exit': {
        // A VMX instruction executed by the guest. VMCALL has its own cause; the others carry the length
        // (their instruction-information and qualification fields arrive with the next chapter's exits).
        const cause: VmExitCause = outcome.reason === EXIT_REASON.EXIT_REASON_VMCALL
          ? vmcallExit(insn.length, insn.rip)
          : { reason: outcome.reason, instructionLength: insn.length, guestRip: insn.rip };
        this.exit(lp, cause);
        return;
      }
      case 'vm-entered':
        // "Other event" injection: an MTF VM exit is pending at the instruction boundary right after VM entry,
        // before the guest runs anything. See SDM Vol. 3C, "Monitor Trap Flag" and "Event Injection".
        if (outcome.pendingMtf && this.state.nonRoot) this.exit(lp, { reason: EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG });
        return;
      case 'vm-entry-failed':
        if (outcome.then.kind === 'vmx-abort') lp.shutdown(`VMX abort: ${outcome.then.message}`);
        return;
    }
  }

  /** Perform a VM exit: exit information, guest state saved, host state loaded; the LP continues at HOST_RIP. */
  exit(lp: LogicalProcessor, cause: VmExitCause): void {
    const current = this.state.current!;
    const outcome = vmExit({ cpu: this.cpu, vmcs: vmcsAccessOf(current), vmcsPointer: current.pa }, cause);
    this.state.nonRoot = false;
    if (outcome.kind === 'vmx-abort') lp.shutdown(`VMX abort: ${outcome.message}`);
  }

  intercept(lp: LogicalProcessor, event: VmxInterceptEvent): boolean {
    if (!this.state.nonRoot) return false;
    const vmcs = this.state.current!;
    const proc = Number(vmcs.readByName('CPU_BASED_VM_EXEC_CONTROL') ?? 0n);
    switch (event.kind) {
      case 'cpuid':
        this.exit(lp, cpuidExit(event.length));
        return true;
      case 'hlt':
        if ((proc & VMX_CONTROL.CPU_BASED_HLT_EXITING) === 0) return false;
        this.exit(lp, hltExit(event.length));
        return true;
      case 'triple-fault':
        this.exit(lp, tripleFaultExit());
        return true;
      case 'rdmsr':
      case 'wrmsr': {
        if (!this.msrExits(proc, event.kind === 'wrmsr', event.msr)) return false;
        const reason = event.kind === 'rdmsr' ? EXIT_REASON.EXIT_REASON_MSR_READ : EXIT_REASON.EXIT_REASON_MSR_WRITE;
        this.exit(lp, { reason, instructionLength: event.length });
        return true;
      }
      default:
        // Other exit causes (I/O, CR/DR access, exceptions, interrupts, …) arrive with the VM-exits chapter.
        return false;
    }
  }

  /**
   * RDMSR/WRMSR exit unless "use MSR bitmaps" = 1 and the bitmap bit for the MSR is 0. MSRs outside
   * 0–1FFFH and C0000000H–C0001FFFH always exit. Bitmap layout: read-low at 0, read-high at 1024,
   * write-low at 2048, write-high at 3072; MSR n is bit n % 8 of byte n / 8 (LSB first).
   * See SDM Vol. 3C, "MSR-Bitmap Address" and "Instructions That Cause VM Exits Conditionally".
   */
  private msrExits(proc: number, write: boolean, msr: number): boolean {
    if ((proc & VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS) === 0) return true;
    const m = msr >>> 0;
    let base: number;
    if (m <= 0x1fff) base = 0;
    else if (m >= 0xc0000000 && m <= 0xc0001fff) base = 1024;
    else return true;
    const index = m & 0x1fff;
    const bitmap = Number(this.state.current!.readByName('MSR_BITMAP') ?? 0n);
    const byte = this.lp.memory.read8(bitmap + (write ? 2048 : 0) + base + (index >> 3));
    return ((byte >> (index & 7)) & 1) === 1;
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
  handleSipi(lp: LogicalProcessor, vector: number): boolean {
    if (!this.state.nonRoot) return false;
    this.exit(lp, { reason: EXIT_REASON.EXIT_REASON_SIPI_SIGNAL, qualification: BigInt(vector & 0xff) });
    return true;
  }

  /** INIT is blocked in VMX root operation and causes a VM exit in VMX non-root operation. */
  handleInit(lp: LogicalProcessor): boolean {
    if (!this.state.inVmxOperation) return false;
    if (this.state.nonRoot) this.exit(lp, { reason: EXIT_REASON.EXIT_REASON_INIT_SIGNAL });
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
