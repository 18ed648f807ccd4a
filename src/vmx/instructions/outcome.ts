// How a VMX instruction ends, and the conventions every VMX instruction shares: the #UD conditions common to all
// of them, and VMsucceed / VMfailInvalid / VMfailValid(n) / VMfail(n).
// See SDM Vol. 3C, "VMX Instruction Reference", section "Conventions".
import { CpuFault } from '../../machine/fault.ts';
import { GP_VECTOR, UD_VECTOR } from '../../x86/exceptions.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { RFLAGS, RFLAGS_STATUS } from '../../x86/flags.ts';
import type { VmxCpu } from '../cpu-view.ts';
import type { ExitOutcome } from '../transition/finish-with-host-state.ts';
import type { ExitReasonNumber } from '../exit-reasons.ts';
import { recordDiagnosis, type Diagnosis } from '../diagnosis.ts';
import { SLOT } from '../vmcs.ts';
import type { VmxState } from '../state.ts';

/** The end of a VMX instruction, as a value. Exceptions are values too: the caller delivers them (or oopses). */
export type VmxOutcome =
  /** All six status flags cleared. `value` is the result of VMREAD/VMPTRST when the destination is 'result'. */
  | { readonly kind: 'VMsucceed'; readonly value?: bigint }
  /** CF = 1; PF, AF, ZF, SF, OF cleared. No current VMCS, so no error number. */
  | { readonly kind: 'VMfailInvalid' }
  /** ZF = 1; CF, PF, AF, SF, OF cleared; `error` written into VM_INSTRUCTION_ERROR of the current VMCS. */
  | { readonly kind: 'VMfailValid'; readonly error: number }
  /** #UD, #GP(0), #PF, … — no flags changed. */
  | { readonly kind: 'fault'; readonly fault: CpuFault }
  /** In VMX non-root operation the instruction causes a VM exit with this basic reason (the caller performs it). */
  | { readonly kind: 'vm-exit'; readonly reason: ExitReasonNumber }
  /** VMLAUNCH/VMRESUME: VM entry succeeded; the LP is in VMX non-root operation. */
  /** VM entry succeeded; `pendingMtf`: an injected "other event" made an MTF VM exit pending before the first guest instruction. */
  | { readonly kind: 'vm-entered'; readonly pendingMtf: boolean }
  /**
   * VMLAUNCH/VMRESUME: VM entry failed while or after loading guest state; host state was loaded and the exit
   * reason (with bit 31 set) and qualification are in the VMCS. Execution continues at HOST_RIP.
   */
  | { readonly kind: 'vm-entry-failed'; readonly exitReason: number; readonly qualification: bigint; readonly then: ExitOutcome };

/**
 * An m64 or register operand as the instruction sees it. 'value' is the host-API form: the operand's contents
 * (a number is accepted for values below 2^53, e.g. field encodings, and avoids BigInt work on hot paths).
 */
export type SourceOperand =
  | { readonly kind: 'memory'; readonly linear: bigint }
  | { readonly kind: 'register'; readonly reg: number }
  | { readonly kind: 'value'; readonly value: bigint | number };

/** Where VMREAD/VMPTRST put their result. 'result' returns it in the outcome (host API). */
export type DestinationOperand =
  | { readonly kind: 'memory'; readonly linear: bigint }
  | { readonly kind: 'register'; readonly reg: number }
  | { readonly kind: 'result' };

/** Everything an instruction needs: the LP view and its VMX state. */
export interface VmxContext {
  readonly cpu: VmxCpu;
  readonly state: VmxState;
}

export const CONVENTIONS_SDM = 'SDM Vol. 3C, "VMX Instruction Reference" ("Conventions")';

const SUCCEED: VmxOutcome = Object.freeze({ kind: 'VMsucceed' });
const FAIL_INVALID: VmxOutcome = Object.freeze({ kind: 'VMfailInvalid' });
const ERROR_SLOT = SLOT.VM_INSTRUCTION_ERROR;
const CR0_PE = BigInt(CR0.PE);
/** Bits 11:0: the offset within a 4-KByte page. */
const PAGE_OFFSET_MASK = 0xfffn;

/** VMsucceed: CF, PF, AF, ZF, SF, OF := 0. */
export function vmSucceed(cpu: VmxCpu, value?: bigint): VmxOutcome {
  cpu.writeRflags(cpu.readRflags() & ~RFLAGS_STATUS);
  return value === undefined ? SUCCEED : { kind: 'VMsucceed', value };
}

/** VMfailInvalid: CF := 1; PF, AF, ZF, SF, OF := 0. */
export function vmFailInvalid(ctx: VmxContext, d: DiagnosisInput): VmxOutcome {
  ctx.cpu.writeRflags((ctx.cpu.readRflags() & ~RFLAGS_STATUS) | RFLAGS.CF);
  record(ctx.state, d, 'VMfailInvalid');
  return FAIL_INVALID;
}

/** VMfailValid(n): ZF := 1; CF, PF, AF, SF, OF := 0; VM-instruction error field := n. Needs a current VMCS. */
export function vmFailValid(ctx: VmxContext, error: number, d: DiagnosisInput): VmxOutcome {
  ctx.cpu.writeRflags((ctx.cpu.readRflags() & ~RFLAGS_STATUS) | RFLAGS.ZF);
  ctx.state.current!.writeLow(ERROR_SLOT, error);
  record(ctx.state, d, `VMfailValid(${error})`);
  return { kind: 'VMfailValid', error };
}

/** VMfail(n): VMfailValid(n) if there is a current VMCS, else VMfailInvalid. */
export function vmFail(ctx: VmxContext, error: number, d: DiagnosisInput): VmxOutcome {
  return ctx.state.current !== null ? vmFailValid(ctx, error, d) : vmFailInvalid(ctx, d);
}

/** A fault as an outcome, with its diagnosis. */
export function fault(ctx: VmxContext, vector: number, d: DiagnosisInput): VmxOutcome {
  const outcome = vector === UD_VECTOR ? '#UD' : vector === GP_VECTOR ? '#GP(0)' : `vector ${vector}`;
  record(ctx.state, d, outcome);
  return { kind: 'fault', fault: new CpuFault(vector, vector === GP_VECTOR ? 0 : -1, `${d.instruction}: ${d.message}`, d.sdm) };
}

/** A fault raised by a memory access (e.g. #PF on the operand), passed through with a diagnosis. */
export function memoryFault(ctx: VmxContext, f: CpuFault, instruction: string, sdm: string): VmxOutcome {
  record(ctx.state, { rule: 'operand-access-fault', sdm, instruction, message: `accessing the memory operand raised ${f.message}` }, f.message);
  return { kind: 'fault', fault: f };
}

export type DiagnosisInput = Omit<Diagnosis, 'outcome' | 'seq'>;

function record(state: VmxState, d: DiagnosisInput, outcome: string): void {
  recordDiagnosis(state, { ...d, outcome });
}

/** 64-bit mode: IA32_EFER.LMA = 1 and CS.L = 1. */
export function in64BitMode(cpu: VmxCpu): boolean {
  return cpu.ia32eModeActive() && cpu.csL();
}

/**
 * The #UD conditions shared by every VMX instruction except VMXON: not in VMX operation, CR0.PE = 0 (real mode),
 * RFLAGS.VM = 1 (virtual-8086 mode), or IA-32e mode with CS.L = 0 (compatibility mode). Returns the outcome or null.
 */
export function commonUd(ctx: VmxContext, instruction: string, sdm: string): VmxOutcome | null {
  const { cpu, state } = ctx;
  if (!state.inVmxOperation) {
    return fault(ctx, UD_VECTOR, {
      rule: 'not-in-vmx-operation', sdm, instruction,
      message: `${instruction} outside VMX operation raises #UD; execute VMXON first (and read VM_INSTRUCTION_ERROR before VMXOFF, not after).`,
    });
  }
  return modeUd(ctx, instruction, sdm);
}

/** The mode-dependent #UD conditions (also checked by VMXON, which has no "in VMX operation" requirement). */
export function modeUd(ctx: VmxContext, instruction: string, sdm: string): VmxOutcome | null {
  const { cpu } = ctx;
  if ((cpu.readCr0() & CR0_PE) === 0n) {
    return fault(ctx, UD_VECTOR, { rule: 'real-mode', sdm, instruction, field: 'CR0', value: cpu.readCr0(), expected: 'CR0.PE = 1', message: `${instruction} is not available in real-address mode (CR0.PE = 0).` });
  }
  if ((cpu.readRflags() & RFLAGS.VM) !== 0) {
    return fault(ctx, UD_VECTOR, { rule: 'virtual-8086-mode', sdm, instruction, field: 'RFLAGS', value: BigInt(cpu.readRflags()), expected: 'RFLAGS.VM = 0', message: `${instruction} is not available in virtual-8086 mode.` });
  }
  if (cpu.ia32eModeActive() && !cpu.csL()) {
    return fault(ctx, UD_VECTOR, { rule: 'compatibility-mode', sdm, instruction, field: 'CS.L', value: 0n, expected: 'CS.L = 1 in IA-32e mode', message: `${instruction} is not available in compatibility mode (IA32_EFER.LMA = 1 but CS.L = 0).` });
  }
  return null;
}

/**
 * The VMREAD/VMWRITE fast path: the #UD checks of `commonUd` folded with the operand-size question.
 * Returns 8 in 64-bit mode, 4 otherwise, or the #UD outcome.
 */
export function operandSizeOrUd(ctx: VmxContext, instruction: string, sdm: string): 4 | 8 | VmxOutcome {
  const { cpu } = ctx;
  if (ctx.state.inVmxOperation && (cpu.readRflags() & RFLAGS.VM) === 0 && (cpu.readCr0() & CR0_PE) !== 0n) {
    if (!cpu.ia32eModeActive()) return 4;
    if (cpu.csL()) return 8;
  }
  return commonUd(ctx, instruction, sdm) ?? 4;
}

/** #GP(0) when CPL > 0 (VMX instructions are privileged). */
export function cplGp(ctx: VmxContext, instruction: string, sdm: string): VmxOutcome | null {
  const cpl = ctx.cpu.cpl();
  if (cpl === 0) return null;
  return fault(ctx, GP_VECTOR, { rule: 'cpl-not-0', sdm, instruction, field: 'CPL', value: BigInt(cpl), expected: '0', message: `${instruction} requires CPL 0.` });
}

/** Read a 64-bit source operand (m64 or register), or the fault the read raised. */
export function readSource(ctx: VmxContext, op: SourceOperand, size: 4 | 8): { ok: true; value: bigint } | { ok: false; fault: CpuFault } {
  if (op.kind === 'value') {
    // A number that is not a finite integer cannot be a register's contents; the host API passes bigints.
    const v = typeof op.value === 'bigint' ? op.value : Number.isFinite(op.value) ? BigInt(Math.trunc(op.value)) : 0n;
    return { ok: true, value: size === 8 ? BigInt.asUintN(64, v) : BigInt.asUintN(32, v) };
  }
  if (op.kind === 'register') {
    const v = ctx.cpu.readGpr(op.reg);
    return { ok: true, value: size === 8 ? v : v & 0xffffffffn };
  }
  return ctx.cpu.readLinear(op.linear, size);
}

/** Physical-address width for the VMXON region, VMCS regions and the structures they reference. */
export function structureAddressWidth(cpu: VmxCpu): number {
  // IA32_VMX_BASIC[48] = 1 limits these addresses to 32 bits. See SDM Vol. 3D, "Basic VMX Information".
  return cpu.caps.basic.physAddr32 ? 32 : cpu.maxPhysAddr();
}

/** A VMXON/VMCS pointer must be 4-KByte aligned and within the physical-address width. */
export function badRegionAddress(cpu: VmxCpu, addr: bigint): string | null {
  if ((addr & PAGE_OFFSET_MASK) !== 0n) return 'is not 4-KByte aligned (bits 11:0 must be 0)';
  const width = structureAddressWidth(cpu);
  if (addr >> BigInt(width) !== 0n) return `sets bits beyond the physical-address width (${width} bits)`;
  return null;
}
