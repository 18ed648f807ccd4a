// The seam between the CPU core (src/machine) and VMX (src/vmx).
//
// The CPU core knows nothing about VMCS layouts or VM-entry checks. It does two things:
//  1. Every VMX instruction (VMXON … VMFUNC) is decoded and handed to `lp.vmx.execute(lp, insn)` with its
//     operands resolved (register numbers, or a memory operand's effective and linear address). With no
//     VMX unit attached (`lp.vmx === null`) the instruction raises #UD, as on a CPU without VMX.
//  2. While `lp.vmx.nonRoot` is true, anything that can cause a VM exit first calls
//     `lp.vmx.intercept(lp, event)`, which gives one of three answers (`InterceptAnswer`):
//       - EXITED: a VM exit took the event over. The interpreter does not execute the instruction (or deliver
//         the event); the VMX unit has loaded host state itself.
//       - NATIVE: no VM exit; the instruction runs (the event is delivered) as on bare metal.
//       - substitute(value): no VM exit, but the instruction uses `value` instead of what bare metal would use:
//         what MOV from CR0/CR4 reads through the read shadows, what MOV to CR0/CR4 loads when host-owned bits
//         keep their value, the offset TSC RDTSC returns, the TPR-shadow value MOV from CR8 reads.
//         See SDM Vol. 3C, "Changes to Instruction Behavior in VMX Non-Root Operation".
//
// Faults: `execute` and `intercept` may throw a `CpuFault` (e.g. #GP(0), #UD); the interpreter delivers it with
// RIP at the start of the instruction. Before calling `execute`, the interpreter has already set `lp.rip` to
// the next instruction (so VMsucceed/VMfail just return; VMLAUNCH/VM exits overwrite `lp.rip`).
//
// TLB tagging: the LP's software TLB (`src/machine/tlb.ts`) tags entries by context; VMX selects the context of
// (VPID, EP4TA) with `lp.tlb.setContext` at every VM entry and exit (src/vmx/vpid.ts). Guest-physical → host-physical
// translation (EPT) plugs in via `lp.gpaTranslate` (see lp.ts), called by the page walker for every guest-physical
// access while non-root.
//
// A VM exit in the middle of an instruction is signalled in one of two ways. An EPT violation or misconfiguration
// throws a `PendingVmExit` (a CpuFault): guest state is written back as for any fault and the exit is performed
// where faults are delivered, which knows the event in delivery. Any other exit VMX decides on its own throws
// `VmExitTaken` after the VMX unit has loaded host state: the interpreter then abandons the instruction without
// further effects and without counting it.
//
// See SDM Vol. 3C, "VMX Instruction Reference" and "Instructions That Cause VM Exits Conditionally".

import { CpuFault } from './fault.ts';
import type { LogicalProcessor } from './lp.ts';

/** VMX's answer for an event in VMX non-root operation (see the header). */
export type InterceptAnswer =
  | { readonly kind: 'native' }
  | { readonly kind: 'exited' }
  | { readonly kind: 'substitute'; readonly value: bigint };
export const NATIVE: InterceptAnswer = Object.freeze({ kind: 'native' });
export const EXITED: InterceptAnswer = Object.freeze({ kind: 'exited' });
export function substitute(value: bigint): InterceptAnswer {
  return { kind: 'substitute', value };
}

/**
 * True in VMX non-root operation. Call sites test it before building an event for `vmExitTakes`/`nonRootAnswer`,
 * so that code outside a guest (and a guest's instructions that never exit) allocates no event object.
 */
export function inVmxNonRoot(lp: LogicalProcessor): boolean {
  const vmx = lp.vmx;
  return vmx !== null && vmx.nonRoot;
}

/** In VMX non-root operation, offer `event` to VMX; true when a VM exit took it over. */
export function vmExitTakes(lp: LogicalProcessor, event: VmxInterceptEvent): boolean {
  return nonRootAnswer(lp, event).kind === 'exited';
}

/** VMX's answer for `event`: NATIVE outside VMX non-root operation. */
export function nonRootAnswer(lp: LogicalProcessor, event: VmxInterceptEvent): InterceptAnswer {
  return lp.vmx !== null && lp.vmx.nonRoot ? lp.vmx.intercept(lp, event) : NATIVE;
}

/** Thrown by VMX code to abandon the current instruction because a VM exit has already happened. */
export class VmExitTaken {
  constructor(readonly reason: string) {}
}

/** Not an exception vector: what a `PendingVmExit` carries in `CpuFault.vector`. */
export const PENDING_VM_EXIT_VECTOR = 256;

/**
 * A VM exit decided in the middle of a memory access — an EPT violation or misconfiguration during a guest page
 * walk, the final access or the delivery of an event. Fault-like: it is thrown as a fault, so that the interpreter
 * and compiled code write guest registers back and leave RIP at the instruction (no effect of the instruction
 * remains), and `deliverWithDoubleFault` (interrupts.ts) performs it instead of delivering anything: it knows the
 * event whose delivery was under way (`during`), which the IDT-vectoring information records, and whether the
 * access belonged to an IRET that unblocked NMIs. See SDM Vol. 3C, "EPT-Induced VM Exits" and "Information for VM
 * Exits During Event Delivery".
 */
export class PendingVmExit extends CpuFault {
  constructor(explanation: string, sdm: string,
    readonly perform: (during: EventInDelivery | null, nmiUnblockedByIret: boolean) => void) {
    super(PENDING_VM_EXIT_VECTOR, -1, explanation, sdm);
  }
}

/** The descriptor-table instructions, which "descriptor-table exiting" intercepts. */
export type DescriptorTableInstruction = 'SGDT' | 'SIDT' | 'LGDT' | 'LIDT' | 'SLDT' | 'STR' | 'LLDT' | 'LTR';

export type VmxMnemonic =
  | 'VMXON' | 'VMXOFF' | 'VMCLEAR' | 'VMPTRLD' | 'VMPTRST' | 'VMREAD' | 'VMWRITE'
  | 'VMLAUNCH' | 'VMRESUME' | 'VMCALL' | 'INVEPT' | 'INVVPID' | 'VMFUNC';

/**
 * How an instruction encodes its memory operand, as the VM-exit instruction-information field and the exit
 * qualification (the displacement) describe it. See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export interface MemOperandEncoding {
  /** Segment register index (ES=0 CS=1 SS=2 DS=3 FS=4 GS=5). */
  segment: number;
  /** Base GPR number or -1 (also -1 for RIP-relative addressing). */
  base: number;
  /** Index GPR number or -1. */
  index: number;
  /** Scale factor as a shift: 0..3 (×1, ×2, ×4, ×8). */
  scale: number;
  /** Displacement as encoded (sign-extended); for RIP-relative addressing the offset from the next RIP. */
  displacement: bigint;
  /** RIP-relative addressing (64-bit mode): the effective address is the next RIP + displacement. */
  ripRelative: boolean;
}

/** A memory operand of a VMX instruction: its encoding, and the address it names. */
export interface VmxMemOperand extends MemOperandEncoding {
  /** Effective address (offset within the segment), after address-size truncation. */
  effective: bigint;
  /** Linear address = segment base + effective address (canonical and limit checks done, see `addressFault`). */
  linear: bigint;
  /**
   * Set when those checks failed: the #GP(0) or #SS(0) the instruction raises if it goes on to access the
   * operand (after its #UD checks, its VM exit in VMX non-root operation and its CPL check).
   */
  addressFault?: CpuFault;
}

export interface VmxInstruction {
  mnemonic: VmxMnemonic;
  /** Instruction length in bytes (for VM-exit instruction length). */
  length: number;
  /** RIP of the instruction itself. */
  rip: bigint;
  /** Operand size in bytes: 8 in 64-bit mode, 4 otherwise (VMREAD/VMWRITE); 8 for the m64 operands. */
  operandSize: 4 | 8;
  /** Address size in bytes (2, 4 or 8). */
  addressSize: 2 | 4 | 8;
  /** ModRM.reg operand (VMREAD source-field register, VMWRITE field register, INVEPT/INVVPID type register), or -1. */
  reg: number;
  /** ModRM.rm register operand, or -1 when the operand is in memory (see `mem`) or there is no operand. */
  rmReg: number;
  /** The memory operand, when there is one. */
  mem: VmxMemOperand | null;
}

/** I/O instruction description (for the I/O exit qualification). See SDM Vol. 3C, "Exit Qualification for I/O Instructions". */
export interface IoAccess {
  port: number;
  size: 1 | 2 | 4;
  direction: 'in' | 'out';
  string: boolean;
  rep: boolean;
  /** Port given as an immediate (true) or in DX (false). */
  immediate: boolean;
  /** Address size in bytes (2, 4 or 8): INS/OUTS address their memory operand with (E/R)DI or (E/R)SI of this size. */
  addressSize: 2 | 4 | 8;
  /** INS/OUTS: the memory operand's segment register (ES = 0 for INS; DS = 3 or the override for OUTS); -1 otherwise. */
  segment: number;
  /**
   * INS/OUTS: linear address of the memory operand (segment base + (E/R)DI or (E/R)SI, bits 63:32 clear outside
   * 64-bit mode); null for IN/OUT, and when the segment is unusable.
   */
  linear: bigint | null;
}

/**
 * An event whose delivery through the IDT was under way when another exception arose: what the IDT-vectoring
 * information fields record. `type` as in the interruption-information format (0 external interrupt, 2 NMI,
 * 3 hardware exception, 4 software interrupt, 5 privileged software exception, 6 software exception);
 * `errorCode` −1 when the event pushes none; `length` the instruction length for types 4–6, else 0.
 * See SDM Vol. 3C, "Information for VM Exits During Event Delivery".
 */
export interface EventInDelivery {
  readonly vector: number;
  readonly type: number;
  readonly errorCode: number;
  readonly length: number;
}

/**
 * Events that may cause VM exits in VMX non-root operation. Instruction events carry the instruction length.
 * See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" and "Other Causes of VM Exits".
 */
export type VmxInterceptEvent =
  | { kind: 'cpuid'; length: number }
  | { kind: 'hlt'; length: number }
  | { kind: 'pause'; length: number }
  | { kind: 'invd'; length: number }
  | { kind: 'wbinvd'; length: number }
  | { kind: 'rdtsc'; length: number }
  | { kind: 'rdtscp'; length: number }
  | { kind: 'xsetbv'; length: number }
  | { kind: 'rdmsr'; length: number; msr: number }
  | { kind: 'wrmsr'; length: number; msr: number; value: bigint }
  | { kind: 'io'; length: number; io: IoAccess }
  /**
   * MOV to/from CRn (access 0 = to CR, 1 = from CR), CLTS (2), LMSW (3). `gpr` as in the exit qualification;
   * `value` is what MOV to CR would load (the GPR, truncated to the operand size); `lmswSource` the 16-bit LMSW
   * operand, `lmswLinear` its linear address when it is in memory (else null).
   */
  | { kind: 'cr-access'; length: number; cr: number; access: 0 | 1 | 2 | 3; gpr: number; value: bigint; lmswSource: number; lmswLinear: bigint | null }
  /** MOV DR: `dr` as encoded (DR4/DR5 stay 4/5), `gpr` the general-purpose register. */
  | { kind: 'dr-access'; length: number; dr: number; direction: 'to' | 'from'; gpr: number }
  | { kind: 'invlpg'; length: number; linear: bigint }
  /** INVPCID (after the #UD checks): its memory operand's encoding and the register holding the type. */
  | { kind: 'invpcid'; length: number; addressSize: 2 | 4 | 8; mem: MemOperandEncoding; reg: number }
  /**
   * LGDT LIDT SGDT SIDT LLDT LTR SLDT STR (after the #UD and privilege checks, before the operand is accessed).
   * `mem` is the memory operand, or null for a register operand `reg` (LLDT, LTR, SLDT, STR only).
   * `operandSize` is the instruction's operand-size attribute.
   */
  | { kind: 'descriptor-table'; length: number; instruction: DescriptorTableInstruction; operandSize: 2 | 4 | 8; addressSize: 2 | 4 | 8; mem: MemOperandEncoding | null; reg: number }
  /** RDPMC (after the CPL/CR4.PCE check; before ECX is checked). */
  | { kind: 'rdpmc'; length: number }
  /** MONITOR and MWAIT (after their #UD checks). `monitorArmed`: is the address-range monitor armed? */
  | { kind: 'monitor'; length: number }
  | { kind: 'mwait'; length: number; monitorArmed: boolean }
  /** RDRAND and RDSEED: the destination register and the operand size. */
  | { kind: 'rdrand'; length: number; reg: number; operandSize: 2 | 4 | 8 }
  | { kind: 'rdseed'; length: number; reg: number; operandSize: 2 | 4 | 8 }
  /**
   * An exception about to be delivered. `type` follows the interruption-information types: 3 hardware exception,
   * 5 privileged software exception (INT1), 6 software exception (INT3, INTO). `length` is the instruction
   * length for software exceptions, else 0. `cr2` (#PF) and `dr6` (#DB) are the values the exception would
   * load: on a VM exit they are not loaded but belong in the exit qualification.
   */
  | {
    kind: 'exception'; vector: number; errorCode: number; type: 3 | 5 | 6; length: number; cr2?: bigint; dr6?: bigint;
    /** The event being delivered when this exception arose (null: none, or this is a double fault). */
    during: EventInDelivery | null;
    /** The exception is a fault on an IRET that unblocked NMIs (blocking by NMI was in effect before it). */
    nmiUnblockedByIret: boolean;
  }
  /** INT n: software interrupt (type 4). */
  | { kind: 'software-interrupt'; vector: number; length: number }
  /** An external interrupt the interrupt source has pending (not yet acknowledged). */
  | { kind: 'external-interrupt'; vector: number }
  | { kind: 'nmi' }
  | { kind: 'triple-fault'; reason: string };

export interface VmxUnit {
  /** True while the LP is in VMX non-root operation. */
  readonly nonRoot: boolean;
  /** Execute one VMX instruction. Set RFLAGS/registers/memory as the SDM says, or throw a CpuFault. */
  execute(lp: LogicalProcessor, insn: VmxInstruction): void;
  /**
   * Optional, VMX root operation only: VMREAD/VMWRITE as host code issues them (src/kernel/host-cpu.ts), with the
   * field encoding and value handed over as values instead of staged in registers. The architectural result is
   * that of `execute` with register operands (RFLAGS, VM-instruction error, faults, diagnosis); only the register
   * round trip is saved. `hostVmread` returns the value read, or 0 when the instruction did not succeed.
   */
  hostVmread?(field: number): bigint;
  hostVmwrite?(field: number, value: bigint): void;
  /** Called only while `nonRoot`: exit, substitute a value, or let the event run natively. */
  intercept(lp: LogicalProcessor, event: VmxInterceptEvent): InterceptAnswer;
  /**
   * Optional: called before a MOV to CR0/CR4 (in any VMX mode) takes effect, after the architectural #GP checks.
   * In VMX operation, CR0/CR4 must respect the IA32_VMX_CR0/CR4_FIXED0/1 MSRs: throw #GP(0) otherwise.
   * See SDM Vol. 3C, "VMX-Fixed Bits in CR0 and CR4" (appendix "VMX Capability Reporting Facility").
   */
  checkControlRegisterWrite?(lp: LogicalProcessor, cr: 0 | 4, value: bigint): void;
  /**
   * Optional: an INIT signal arrived. Return true if VMX handled it (INIT is blocked in VMX root operation and
   * causes a VM exit in non-root operation); false lets the LP perform the INIT reset.
   * See SDM Vol. 3C, "VMX Operation and INIT" (“INIT signals are blocked whenever a logical processor is in VMX root operation”).
   */
  handleInit?(lp: LogicalProcessor): boolean;
  /**
   * Optional: a start-up IPI with `vector` arrived while the LP is in the wait-for-SIPI state. Return true if VMX
   * handled it: in VMX non-root operation it causes a VM exit (reason 4, the vector as exit qualification)
   * instead of starting the LP at vector × 1000H. See SDM Vol. 3C, "Other Causes of VM Exits" ("SIPIs").
   */
  handleSipi?(lp: LogicalProcessor, vector: number): boolean;
  /**
   * Optional: while true in non-root operation, the CPU calls `atBoundary` at every instruction boundary (before
   * events are accepted) and runs the guest one instruction at a time. VMX turns it on for the monitor trap flag,
   * interrupt-/NMI-window exiting and the preemption timer, and off otherwise (blocks and the JIT are faster).
   * `atBoundary` returns true when it caused a VM exit. See SDM Vol. 3C, "Monitor Trap Flag",
   * "Interrupt-Window Exiting and Virtual-Interrupt Delivery" and "VMX-Preemption Timer".
   */
  readonly boundaryHook?: boolean;
  atBoundary?(lp: LogicalProcessor): boolean;
  /**
   * Optional, VMX non-root operation: TSC ticks until a boundary exit that needs no instruction happens (the
   * VMX-preemption timer reaches 0), Infinity if none. The machine lets a halted LP's TSC run on to that point, no
   * further, so the timer's exit from HLT comes at its exact TSC. The timer "counts down ... in the HLT ... activity
   * state". See SDM Vol. 3C, "VMX-Preemption Timer".
   */
  ticksUntilIdleExit?(lp: LogicalProcessor): number;
  /**
   * Optional, VMX non-root operation: a debug trap (`dr6`: the DR6 bits, e.g. BS for single-step) arose at the end of
   * an instruction. Return true if VMX keeps it pending instead of the CPU delivering it now — with the monitor trap
   * flag, "MTF VM exits take priority over debug-trap exceptions", and the exit saves the trap in the pending debug
   * exceptions field. See SDM Vol. 3C, "Monitor Trap Flag" and "Saving Non-Register State".
   */
  holdDebugTrap?(lp: LogicalProcessor, dr6: number): boolean;
}
