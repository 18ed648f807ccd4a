// The current logical processor as host (kernel) code sees it: privileged instructions as
// methods. Each method runs the real instruction on the emulated LP, so it faults and reports
// exactly like hardware: VMX instructions report through RFLAGS (read it with `rflags()`), and a
// fault (#UD, #GP, #PF) is thrown as a CpuFault that the kernel turns into an oops.
//
// VMX instructions take their operands the way the hardware encodings do: a physical address in
// memory (m64) for VMXON/VMCLEAR/VMPTRLD, a field encoding in a register for VMREAD/VMWRITE. The
// memory operand lives in a per-CPU scratch slot; registers used for operands are restored
// afterwards, so guest register values left in the register file after a VM exit are untouched.
// (No closures or option objects here: an exit handler runs these for every VM exit.)
import { CpuFault, ud } from '../machine/fault.ts';
import type { LogicalProcessor, SegmentRegisterName } from '../machine/lp.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import type { VmxInstruction, VmxMnemonic } from '../machine/vmx-seam.ts';
import { IMAGE, imagePa, imageVa, perCpuOffset } from './boot.ts';
import { GPR64, gprIndex, type Gpr64Name } from '../x86/registers.ts';

const RAX = 0, RBX = 3;
/** GPR numbers by name: exit handlers read and write guest registers on every VM exit (other spellings: gprIndex). */
const GPR_NUMBER: ReadonlyMap<string, number> = new Map(GPR64.map((n, i) => [n, i]));
const DS = 3;

export class HostCpu {
  constructor(
    readonly lp: LogicalProcessor,
    private readonly memory: PhysicalMemory,
    /** Kernel-text address reported as RIP for instructions run by host code. */
    private readonly codeAddress: bigint,
  ) {}

  /**
   * Set by the kernel: the LP a VMX instruction really runs on — the CPU the calling task is on now, which is this
   * one unless the task migrated after it took this handle (k.cpu() is only stable with preemption disabled). The
   * kernel also reports a VMX sequence split across CPUs there (src/kernel/smp.ts). Null: always this LP.
   */
  vmxCpu: ((mnemonic: VmxMnemonic, handle: LogicalProcessor) => LogicalProcessor) | null = null;
  /** Set by the kernel: the LP the calling task is on now (null: this one). */
  taskCpu: (() => LogicalProcessor) | null = null;

  /** smp_processor_id() of this CPU. */
  get id(): number {
    return this.lp.id;
  }

  // ---- RFLAGS, the status channel of VMX instructions ----
  rflags(): bigint {
    // The flags of the CPU the task is on: where the last VMX instruction ran (see vmxCpu).
    const lp = this.taskCpu === null ? this.lp : this.taskCpu();
    return BigInt(lp.getRflags() >>> 0);
  }

  // ---- CPUID and MSRs ----
  cpuid(leaf: number, subleaf = 0): { eax: number; ebx: number; ecx: number; edx: number } {
    return this.lp.cpuid(leaf, subleaf);
  }
  rdmsr(msr: number): bigint {
    return this.lp.rdmsr(msr);
  }
  wrmsr(msr: number, value: bigint): void {
    this.lp.wrmsr(msr, value);
  }
  /** Linux's rdmsr_safe(): null instead of an oops when the MSR does not exist (#GP). */
  rdmsrSafe(msr: number): bigint | null {
    try {
      return this.lp.rdmsr(msr);
    } catch (e) {
      if (e instanceof CpuFault) return null;
      throw e;
    }
  }

  // ---- Control registers ----
  readCr0(): bigint { return this.lp.readCr0(); }
  readCr2(): bigint { return this.lp.readCr2(); }
  readCr3(): bigint { return this.lp.readCr3(); }
  readCr4(): bigint { return this.lp.readCr4(); }
  writeCr0(v: bigint): void { this.lp.writeCr0(v); }
  writeCr2(v: bigint): void { this.lp.writeCr2(v); }
  writeCr3(v: bigint): void { this.lp.writeCr3(v); }
  writeCr4(v: bigint): void { this.lp.writeCr4(v); }
  readDr7(): bigint { return this.lp.dr[7]!; }

  // ---- General-purpose registers ----
  // After a VM exit the guest's GPRs other than RSP and RIP are still in the register file (the VMCS
  // does not save them): an exit handler reads and writes the guest's RAX…R15 here.
  // See SDM Vol. 3C, "Saving Guest State" and "Loading Host State".
  readGpr(name: Gpr64Name): bigint { return this.lp.getGpr(GPR_NUMBER.get(name) ?? gprIndex(name)); }
  writeGpr(name: Gpr64Name, value: bigint): void { this.lp.setGpr(GPR_NUMBER.get(name) ?? gprIndex(name), value); }

  /** True while this CPU runs a guest (VMX non-root operation): after a successful VMLAUNCH/VMRESUME. */
  inVmxNonRoot(): boolean { return this.lp.vmx?.nonRoot === true; }

  // ---- Segments and descriptor tables ----
  sgdt(): { base: bigint; limit: number } { return this.lp.sgdt(); }
  sidt(): { base: bigint; limit: number } { return this.lp.sidt(); }
  /** LGDT / LIDT (e.g. to restore the limits a VM exit set to FFFFH). */
  lgdt(base: bigint, limit: number): void { this.lp.lgdt(base, limit); }
  lidt(base: bigint, limit: number): void { this.lp.lidt(base, limit); }
  /** STR: the TR selector. */
  str(): number { return this.lp.getSegment('tr').selector; }
  /** SLDT: the LDTR selector. */
  sldt(): number { return this.lp.getSegment('ldtr').selector; }
  /** MOV r16, Sreg: a segment register's selector. */
  readSelector(seg: Exclude<SegmentRegisterName, 'ldtr' | 'tr'>): number {
    return this.lp.getSegment(seg).selector;
  }
  /** RDFSBASE/RDGSBASE (or IA32_FS_BASE/IA32_GS_BASE). */
  readFsBase(): bigint { return this.lp.getSegment('fs').base; }
  readGsBase(): bigint { return this.lp.getSegment('gs').base; }

  // ---- VMX instructions (SDM Vol. 3C, "VMX Instruction Reference") ----
  vmxon(pa: bigint): void { this.withM64('VMXON', pa); }
  vmxoff(): void { this.run('VMXOFF', -1, -1, null); }
  vmclear(pa: bigint): void { this.withM64('VMCLEAR', pa); }
  vmptrld(pa: bigint): void { this.withM64('VMPTRLD', pa); }
  /** VMPTRST m64: the current-VMCS pointer (all ones when there is none). */
  vmptrst(): bigint {
    this.run('VMPTRST', -1, -1, this.scratch());
    return this.memory.read64(imagePa(this.scratchOffset()));
  }
  /**
   * False: every VMREAD/VMWRITE goes through the general instruction path (operands staged in RAX/RBX, the
   * instruction executed as decoded), as tests that compare the two paths need. The result is the same.
   */
  useFastVmAccess = true;

  /** VMREAD r64, r64: the value of `field`; check rflags() for the outcome. */
  vmread(field: number): bigint {
    const lp = this.vmxCpu === null ? this.lp : this.vmxCpu('VMREAD', this.lp);
    // In VMX root operation the unit takes the operands as values (same result, no register round trip).
    const vmx = lp.vmx;
    if (vmx !== null && !vmx.nonRoot && vmx.hostVmread !== undefined && this.useFastVmAccess) return vmx.hostVmread(field);
    const savedRax = lp.getGpr(RAX), savedRbx = lp.getGpr(RBX);
    lp.setGpr(RBX, BigInt(field >>> 0));
    lp.setGpr(RAX, 0n);
    try {
      this.run('VMREAD', RBX, RAX, null, lp);
      return lp.getGpr(RAX);
    } finally {
      lp.setGpr(RAX, savedRax);
      lp.setGpr(RBX, savedRbx);
    }
  }
  /** VMWRITE r64, r64: write `value` to `field`; check rflags() for the outcome. */
  vmwrite(field: number, value: bigint): void {
    const lp = this.vmxCpu === null ? this.lp : this.vmxCpu('VMWRITE', this.lp);
    const vmx = lp.vmx;
    if (vmx !== null && !vmx.nonRoot && vmx.hostVmwrite !== undefined && this.useFastVmAccess) return vmx.hostVmwrite(field, value);
    const savedRax = lp.getGpr(RAX), savedRbx = lp.getGpr(RBX);
    lp.setGpr(RBX, BigInt(field >>> 0));
    lp.setGpr(RAX, BigInt.asUintN(64, value));
    try {
      this.run('VMWRITE', RBX, RAX, null, lp);
    } finally {
      lp.setGpr(RAX, savedRax);
      lp.setGpr(RBX, savedRbx);
    }
  }
  vmlaunch(): void { this.run('VMLAUNCH', -1, -1, null); }
  vmresume(): void { this.run('VMRESUME', -1, -1, null); }
  /** INVEPT type, m128 (descriptor: EPTP, reserved). */
  invept(type: bigint, eptp: bigint): void { this.withM128('INVEPT', type, eptp, 0n); }
  /** INVVPID type, m128 (descriptor: VPID in bits 15:0, linear address). */
  invvpid(type: bigint, vpid: number, linear = 0n): void { this.withM128('INVVPID', type, BigInt(vpid & 0xffff), linear); }

  // ---- helpers ----
  private scratchOffset(): number {
    return perCpuOffset(this.lp.id, IMAGE.PERCPU_SCRATCH);
  }
  private scratch(): bigint {
    return imageVa(this.scratchOffset());
  }

  private withM64(m: VmxMnemonic, value: bigint): void {
    this.memory.write64(imagePa(this.scratchOffset()), BigInt.asUintN(64, value));
    this.run(m, -1, -1, this.scratch());
  }

  private withM128(m: VmxMnemonic, type: bigint, lo: bigint, hi: bigint): void {
    this.memory.write64(imagePa(this.scratchOffset()), BigInt.asUintN(64, lo));
    this.memory.write64(imagePa(this.scratchOffset()) + 8, BigInt.asUintN(64, hi));
    const lp = this.vmxCpu === null ? this.lp : this.vmxCpu(m, this.lp);
    const saved = lp.getGpr(RAX);
    lp.setGpr(RAX, type);
    try {
      this.run(m, RAX, -1, this.scratch(), lp);
    } finally {
      lp.setGpr(RAX, saved);
    }
  }

  /** Execute one VMX instruction as if it stood at `codeAddress` in kernel text. */
  private run(mnemonic: VmxMnemonic, reg: number, rmReg: number, mem: bigint | null, on?: LogicalProcessor): void {
    const lp = on ?? (this.vmxCpu === null ? this.lp : this.vmxCpu(mnemonic, this.lp));
    const vmx = lp.vmx;
    if (vmx === null) throw ud(`${mnemonic}: this CPU has no VMX unit`, 'SDM Vol. 3C, "VMX Instruction Reference"');
    const insn: VmxInstruction = {
      mnemonic,
      length: 3,
      rip: this.codeAddress,
      operandSize: 8,
      addressSize: 8,
      reg,
      rmReg,
      mem: mem === null ? null : { segment: DS, base: -1, index: -1, scale: 0, displacement: mem, ripRelative: false, effective: mem, linear: mem },
    };
    // The instruction's RIP is set to the next instruction before execution, as the interpreter does. One that
    // completes in place (no VM entry, no VM-entry failure loading HOST_RIP) then gives RIP back to the host code
    // that ran it: an exit handler that returns without entering a guest leaves RIP at its entry point, where
    // Kernel.run parks the CPU (instead of running whatever bytes follow codeAddress).
    const hostRip = lp.rip;
    const next = this.codeAddress + 3n;
    lp.setReg('rip', next);
    try {
      vmx.execute(lp, insn);
    } finally {
      if (lp.getReg('rip') === next) lp.rip = hostRip;
    }
  }

}
