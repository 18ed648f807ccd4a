// A logical processor: its architectural state, its memory path (segmentation → paging → TLB → RAM/MMIO),
// and the learner-facing API ("privileged instructions are methods of the current logical processor").
//
// Hot state is kept in typed arrays and plain numbers (no BigInt): GPRs as Int32 low/high halves, linear
// addresses as signed JS numbers (exact for canonical addresses), physical addresses as numbers < 2^52.
// Values cross the learner API as `bigint`.
// See SDM Vol. 1, "Basic Execution Environment" and Vol. 3A, "System Architecture Overview".

import { AR } from '../x86/segments.ts';
import { CR0, CR0_DEFINED, CR4, CR4_SUPPORTED, DR6, DR7_FIXED1, EFER, EFER_DEFINED } from '../x86/control-registers.ts';
import { RFLAGS, RFLAGS_STATUS } from '../x86/flags.ts';
import { GPR64, CS, SS, FS, GS } from '../x86/registers.ts';
import * as MSR from '../x86/msr.ts';
import type { IoSpace } from './io.ts';
import type { MmioDevice, PhysicalMemory } from './memory.ts';
import { CpuFault, gp } from './fault.ts';
import { FlagState, LAZY_NONE, lazyStatus } from './lazy-flags.ts';
import { Tlb, TLB_MASK, PERM_WRITE_S, PERM_WRITE_U } from './tlb.ts';
import { walk, ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC, type Access, type GpaAccessInfo } from './paging.ts';
import { AddressMonitor } from './address-monitor.ts';
import { RandomSource } from './random-source.ts';
import { FpuState } from './isa/fpu-state.ts';
import type { VmxUnit } from './vmx-seam.ts';
import { intelHex } from '../util/hex.ts';
import { PAT_POWER_UP, reservedPatEntry } from './memtype/pat.ts';
import { CacheModel } from './memtype/cache-model.ts';

const TWO32 = 4294967296;
/** Offset of the APIC task-priority register. See SDM Vol. 3A, "Local APIC Register Address Map". */
const APIC_TPR = 0x80;

export type ActivityState = 'active' | 'hlt' | 'shutdown' | 'wait-for-sipi';

/** Something that raises maskable interrupts (the local APIC implements it). */
export interface InterruptSource {
  /** Highest-priority vector ready to be delivered now, or -1. */
  pendingVector(): number;
  /** The CPU accepted `vector` (INTA): move it from IRR to ISR. */
  acknowledge(vector: number): void;
}

/**
 * The LP's local APIC as the CPU core sees it (src/machine/apic.ts implements it): its MMIO page, the
 * IA32_APIC_BASE and x2APIC MSRs, its interrupts and NMIs.
 */
export type LocalApicSeam = MmioDevice & InterruptSource & {
  readonly baseAddress: number;
  readonly mode: 'disabled' | 'xapic' | 'x2apic';
  nmiPending: boolean;
  handlesMsr(msr: number): boolean;
  /** 32-bit register access by offset (CR8 reads and writes the TPR through these). */
  readXapic?(offset: number): number;
  /** Reset the APIC's INIT-affected state (the LP calls it when it performs an INIT). */
  initReset?(): void;
  writeXapic?(offset: number, value: number): void;
  readMsr(msr: number): { ok: true; value: bigint } | { ok: false; reason: string };
  writeMsr(msr: number, value: bigint): { ok: true; value?: bigint } | { ok: false; reason: string };
};

/** What the run loop needs from the LP's executor (src/machine/cpu.ts). */
export interface ExecutorSeam {
  run(budget: number): number;
  stepOne(): void;
  readonly breakpoints: Set<number>;
  hitBreakpoint: number;
  /** The host entry point this executor stopped at (NaN: none); see Executor.atHostEntry. */
  atHostEntry: number;
}

export interface MsrHandler {
  read(lp: LogicalProcessor): bigint;
  /** Absent → the MSR is read-only and WRMSR raises #GP(0). May throw a CpuFault. */
  write?(lp: LogicalProcessor, value: bigint): void;
}

export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}
export type CpuidSource = (leaf: number, subleaf: number, lp: LogicalProcessor) => CpuidResult;

export interface SegmentState {
  selector: number;
  base: bigint;
  limit: number;
  /** Access rights in the VMCS layout (see src/x86/segments.ts AR). */
  ar: number;
}

export const SEGMENT_COUNT = 8;
export const LDTR = 6;
export const TR = 7;
const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'ldtr', 'tr'] as const;
export type SegmentRegisterName = (typeof SEG_NAMES)[number];

export interface LpOptions {
  id: number;
  memory: PhysicalMemory;
  io: IoSpace;
  /** Bootstrap processor (IA32_APIC_BASE.BSP). */
  bsp?: boolean;
  /** MAXPHYADDR (CPUID 80000008H:EAX[7:0]); default 39. */
  maxPhysAddr?: number;
}

export class LogicalProcessor {
  readonly id: number;
  readonly memory: PhysicalMemory;
  readonly io: IoSpace;
  readonly maxPhysAddr: number;

  // ---- General-purpose registers: low and high 32-bit halves. ----
  readonly regLo = new Int32Array(16);
  readonly regHi = new Int32Array(16);
  /** RIP as a signed number (canonical addresses are exact). */
  rip = 0;
  /** RFLAGS except the status flags while `lazy.op !== LAZY_NONE`. Bit 1 always set. */
  rflagsRaw: number = RFLAGS.FIXED1;
  readonly lazy = new FlagState();

  // ---- Segments: ES CS SS DS FS GS LDTR TR (selector + hidden part). ----
  readonly segSel = new Int32Array(SEGMENT_COUNT);
  /** Hidden base (signed number; FS/GS may hold canonical 64-bit bases). */
  readonly segBase = new Float64Array(SEGMENT_COUNT);
  readonly segLimit = new Float64Array(SEGMENT_COUNT);
  readonly segAr = new Int32Array(SEGMENT_COUNT);
  /** Base used for address computation: 0 for ES/CS/SS/DS in 64-bit mode. */
  readonly segEffBase = new Float64Array(6);
  gdtrBase = 0;
  gdtrLimit = 0xffff;
  idtrBase = 0;
  idtrLimit = 0xffff;

  // ---- Control, debug and model-specific registers. ----
  cr0 = 0x60000010;
  /** CR2 as a signed number (page-fault linear address). */
  cr2 = 0;
  /** CR3 as a number (physical address bits plus PWT/PCD/PCID). */
  cr3 = 0;
  cr4 = 0;
  /** CR8 = TPR[7:4]. With a local APIC attached, the APIC may mirror it. */
  cr8 = 0;
  efer = 0;
  xcr0 = 1;
  /** x87/SSE state (FCW, FSW, tag word, MXCSR, register images): see isa/fpu-state.ts. INIT leaves it alone. */
  readonly fpu = new FpuState();
  readonly dr: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n, BigInt(DR6.FIXED1), BigInt(DR7_FIXED1)];
  /** IA32_APIC_BASE. */
  apicBase = 0;
  featureControl = 0;
  private readonly msrs = new Map<number, MsrHandler>();
  private readonly plainMsrs = new Map<number, bigint>();
  tscOffset = 0;

  // ---- Derived mode state (kept in sync by updateMode()). ----
  /** Code size of the current CS: 16, 32 or 64. */
  bits: 16 | 32 | 64 = 16;
  /**
   * The current privilege level: architectural state, not derived from CS.RPL. It is loaded where the SDM
   * loads it — with CS by far transfers and event delivery, from SS.DPL by VM entry ("SS.DPL … will be the
   * current privilege level (CPL) after the VM entry completes"), 0 in real mode and 3 in virtual-8086 mode.
   * CS.RPL and SS.DPL can differ (an unrestricted guest entered with CS.RPL = 3, SS.DPL = 0 runs at CPL 0).
   * See SDM Vol. 3A, "Privilege Levels" and Vol. 3C, "Loading Guest Segment Registers and Descriptor-Table
   * Registers". Change it with `setCpl`.
   */
  cpl = 0;
  /** 1 when CPL = 3 (user-mode accesses), else 0. */
  user = 0;

  // ---- Execution and event state. ----
  activity: ActivityState = 'active';
  shutdownReason = '';
  /** Instructions retired on this LP (also drives the TSC). */
  instructions = 0;
  /**
   * Work beyond one step that an instruction did (REP string iterations): charged to the run budget, not to
   * `instructions`, so a `rep stosb` with a huge RCX still ends at the budget.
   */
  workDebt = 0;
  /**
   * Interrupt shadow: the value of `instructions` at the instruction boundary that is blocked (the one right
   * after STI or MOV SS / POP SS), or -1. See SDM Vol. 3A, "Masking Exceptions and Interrupts When Switching Stacks"
   * and Vol. 2B, "STI—Set Interrupt Flag".
   */
  shadowAt = -1;
  shadowKind: 'sti' | 'mov-ss' | '' = '';
  nmiPending = false;
  /**
   * An INIT signal waits for the next instruction boundary (an INIT IPI can arrive from a memory write in the
   * middle of an instruction, even this LP's own). See `performInit`.
   */
  initPending = false;
  /**
   * RIP was just loaded from somewhere a host entry point (Machine.addHostEntry) can be: HOST_RIP, by a VM exit or a
   * VM-entry failure during or after loading guest state (src/vmx/transition/load-host.ts), or an IDT gate (the host
   * kernel's IDT points at its oops entry). The executor clears it at the next instruction boundary after checking
   * whether RIP is a host entry. A flag, so that the check costs one load per block and a Set lookup only per VM
   * exit or event delivery. See SDM Vol. 3C, "Loading Host RIP, RSP, RFLAGS, and SSP".
   */
  checkHostEntry = false;
  /** NMIs are blocked from the delivery of an NMI until the next IRET. See SDM Vol. 3A, "NMI Handling While Processing an NMI". */
  nmiBlocked = false;
  /**
   * VMX non-root operation with "virtual NMIs" = 1 (set by VMX from VM entry to VM exit): NMIs are not blocked (they
   * cause VM exits), an NMI delivered to the guest is a virtual NMI and sets `virtualNmiBlocked`, and IRET clears
   * that instead of NMI blocking. See SDM Vol. 3C, "Virtual NMIs" and "Changes to Instruction Behavior in VMX
   * Non-Root Operation" (IRET).
   */
  virtualNmis = false;
  /** Virtual-NMI blocking: the guest is not ready for an NMI (bit 3 of the interruptibility state with virtual NMIs). */
  virtualNmiBlocked = false;
  /**
   * `instructions` at an IRET that found NMIs blocked and unblocked them, while that IRET has not completed (−1:
   * none). If the IRET faults, the fault is one "on the IRET instruction" with NMIs unblocked: VMX reports it as
   * "NMI unblocking due to IRET". See SDM Vol. 3C, "Information for VM Exits Due to Vectored Events".
   */
  nmiUnblockedByIretAt = -1;
  /** Set by the page walker: the CR2 value a #PF about to be delivered carries. */
  pendingCr2 = 0;
  /** DR6 bits a #DB about to be delivered sets (e.g. BS for single-step). */
  pendingDr6 = 0;
  /**
   * The last fault raised by an instruction (before delivery), with its explanation and SDM section: the
   * explanation channel for inspectors and oops reports. Never read by the architecture.
   */
  lastFault: CpuFault | null = null;

  // ---- Seams to other layers. ----
  interruptSource: InterruptSource | null = null;
  /** Setting an APIC also makes it the interrupt source (see `attachApic`). */
  apic: LocalApicSeam | null = null;
  executor: ExecutorSeam | null = null;
  /**
   * Guest-physical → host-physical translation, installed by VMX while EPT is in use (null otherwise). The page
   * walker calls it for every paging-structure entry and for the final page; it returns the host-physical
   * address of the same byte (the full guest-physical address goes in, offset included) and the permissions EPT
   * grants in `info.perm`, or throws (a PendingVmExit for an EPT violation or misconfiguration, see vmx-seam.ts).
   * TLB entries then hold the combined translation; tag them with `tlb.setContext` (see tlb.ts).
   */
  gpaTranslate: ((gpa: number, access: Access, info: GpaAccessInfo) => number) | null = null;
  vmx: VmxUnit | null = null;
  cpuidSource: CpuidSource | null = null;
  /** Called when the LP shuts down (triple fault): the machine stops the run loop. */
  onShutdown: ((lp: LogicalProcessor, reason: string) => void) | null = null;

  readonly tlb = new Tlb();
  /** The address-range monitor MONITOR arms and MWAIT waits on. */
  readonly monitor: AddressMonitor;
  /** What RDRAND and RDSEED return: seeded per LP, deterministic. */
  readonly random: RandomSource;
  /**
   * The cache model for device pages (memtype/cache-model.ts): the access type of each TLB entry for a page that is
   * not RAM, the cached device lines of the coherence domain, this LP's write-combining buffers. RAM never uses it.
   */
  readonly caches: CacheModel;
  /** Scratch for 64-bit memory reads: the high half. */
  hi = 0;

  constructor(opts: LpOptions) {
    this.id = opts.id;
    this.memory = opts.memory;
    this.monitor = new AddressMonitor(opts.memory);
    this.random = new RandomSource(opts.id);
    this.caches = new CacheModel(this);
    this.io = opts.io;
    this.maxPhysAddr = opts.maxPhysAddr ?? 39;
    this.apicBase = MSR.APIC_BASE.DEFAULT_BASE | MSR.APIC_BASE.ENABLE | (opts.bsp ? MSR.APIC_BASE.BSP : 0);
    this.resetState();
    if (!opts.bsp) this.activity = 'wait-for-sipi';
  }

  // =====================================================================================================
  // Mode
  // =====================================================================================================

  /**
   * Recompute code size and effective segment bases after CR0/EFER/CS changes. CPL is kept (it is state, see
   * `cpl`) except where the mode fixes it: 0 in real-address mode, 3 in virtual-8086 mode.
   */
  updateMode(): void {
    const pe = (this.cr0 & CR0.PE) !== 0;
    const lma = (this.efer & EFER.LMA) !== 0;
    const csAr = this.segAr[CS]!;
    if (!pe) this.bits = 16;
    else if (lma && csAr & AR.L) this.bits = 64;
    else this.bits = csAr & AR.DB ? 32 : 16;
    if (!pe) this.cpl = 0;
    else if (this.rflagsRaw & RFLAGS.VM) this.cpl = 3;
    this.user = this.cpl === 3 ? 1 : 0;
    for (let s = 0; s < 6; s++) this.segEffBase[s] = this.bits === 64 && s < FS ? 0 : this.segBase[s]!;
  }

  /** Load the CPL (far transfers, event delivery, IRET). Call `updateMode` afterwards, as those paths do. */
  setCpl(cpl: number): void {
    this.cpl = cpl & 3;
    this.user = this.cpl === 3 ? 1 : 0;
  }

  /** In IA-32e mode with CS.L = 1. */
  get longMode64(): boolean {
    return this.bits === 64;
  }

  // =====================================================================================================
  // RFLAGS
  // =====================================================================================================

  /** RFLAGS with the status flags materialised. */
  getRflags(): number {
    if (this.lazy.op === LAZY_NONE) return this.rflagsRaw;
    return (this.rflagsRaw & ~RFLAGS_STATUS) | lazyStatus(this.lazy, this.rflagsRaw);
  }
  setRflags(v: number): void {
    this.rflagsRaw = (v | RFLAGS.FIXED1) >>> 0;
    this.lazy.op = LAZY_NONE;
  }
  /** Freeze lazy flags into rflagsRaw. */
  materializeFlags(): void {
    if (this.lazy.op !== LAZY_NONE) this.setRflags(this.getRflags());
  }

  // =====================================================================================================
  // Memory path. `la` is a linear address (signed number). Faults are thrown as CpuFault.
  // =====================================================================================================

  /**
   * `leaf`: the low dword of the leaf paging entry (its PAT, PCD and PWT flags; -1 with paging off); `ept`: the EPT
   * leaf's memory type | "ignore PAT" << 3 (-1 without EPT); `gpaPage`: the guest-physical page under EPT. Only a
   * page that is not RAM uses them: the cache model keeps them with the entry and decides the page's memory type
   * from them once (again only after CR0.CD, IA32_PAT or an MTRR changes; memtype/cache-model.ts).
   */
  fillTlb(vpn: number, phys: number, perm: number, leaf = -1, ept = -1, gpaPage = phys): void {
    const pfn = phys / 4096;
    let bytes: Uint8Array | null = null;
    let view: DataView | null = null;
    const apicPage = this.isApicPage(pfn);
    if (!apicPage) {
      bytes = this.memory.frame(pfn, true) ?? null;
      view = bytes === null ? null : this.memory.frameView(pfn, true) ?? null;
    }
    // Frames holding cached code never get a fast write path: their writes must reach the code cache.
    if (bytes !== null && this.memory.isCodeFrame(pfn)) perm &= ~(PERM_WRITE_S | PERM_WRITE_U);
    const slot = this.tlb.fill(vpn, phys, perm, bytes, view);
    // The local APIC page is always accessed as UC (the SDM requires it mapped UC; the model does not cache it).
    if (bytes === null && !apicPage) this.caches.noteFill(slot, phys, perm, leaf, ept, gpaPage);
  }

  /** Physical address for an access at the current privilege (user = CPL 3). */
  translate(la: number, access: Access): number {
    const t = this.tlb;
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (t.vpn[i] === vpn && t.stamp[i] === t.current && (t.perm[i]! & (1 << (access * 2 + this.user))) !== 0) {
      return t.phys[i]! + (la & 0xfff);
    }
    return walk(this, la, access, this.user);
  }

  /** Supervisor-mode translation (implicit accesses to GDT/IDT/TSS happen as supervisor accesses). */
  translateSupervisor(la: number, access: Access): number {
    const t = this.tlb;
    const vpn = Math.floor(la / 4096);
    const i = vpn & TLB_MASK;
    if (t.vpn[i] === vpn && t.stamp[i] === t.current && (t.perm[i]! & (1 << (access * 2))) !== 0) {
      return t.phys[i]! + (la & 0xfff);
    }
    return walk(this, la, access, 0);
  }

  /** The xAPIC page of *this* LP's APIC (only in xAPIC mode: x2APIC mode disables the MMIO interface). */
  private isApicPage(pfn: number): boolean {
    return this.apic !== null && this.apic.mode === 'xapic' && pfn === Math.floor(this.apic.baseAddress / 4096);
  }

  read8(la: number): number {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    if (t.page[i] === la - (la & 0xfff) && t.stamp[i] === t.current && (t.perm[i]! & (1 << this.user)) !== 0) {
      const b = t.bytes[i];
      if (b !== null) return b![la & 0xfff]!;
    }
    return this.slowRead(la, 1, ACCESS_READ, this.user);
  }
  read16(la: number): number {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (1 << this.user)) !== 0 && off <= 4094) {
      const v = t.views[i];
      if (v !== null) return v!.getUint16(off, true);
    }
    return this.slowRead(la, 2, ACCESS_READ, this.user);
  }
  /** Returns the value as a signed int32. */
  read32(la: number): number {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (1 << this.user)) !== 0 && off <= 4092) {
      const v = t.views[i];
      if (v !== null) return v!.getInt32(off, true);
    }
    return this.slowRead(la, 4, ACCESS_READ, this.user);
  }
  /** Returns the low half; the high half is left in `this.hi`. */
  read64(la: number): number {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (1 << this.user)) !== 0 && off <= 4088) {
      const v = t.views[i];
      if (v !== null) {
        this.hi = v!.getInt32(off + 4, true);
        return v!.getInt32(off, true);
      }
    }
    return this.slowRead(la, 8, ACCESS_READ, this.user);
  }

  write8(la: number, value: number): void {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    if (t.page[i] === la - (la & 0xfff) && t.stamp[i] === t.current && (t.perm[i]! & (4 << this.user)) !== 0) {
      const b = t.bytes[i];
      if (b !== null) {
        b![la & 0xfff] = value;
        return;
      }
    }
    this.slowWrite(la, 1, value, 0, this.user);
  }
  write16(la: number, value: number): void {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (4 << this.user)) !== 0 && off <= 4094) {
      const v = t.views[i];
      if (v !== null) {
        v!.setUint16(off, value, true);
        return;
      }
    }
    this.slowWrite(la, 2, value, 0, this.user);
  }
  write32(la: number, value: number): void {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (4 << this.user)) !== 0 && off <= 4092) {
      const v = t.views[i];
      if (v !== null) {
        v!.setInt32(off, value, true);
        return;
      }
    }
    this.slowWrite(la, 4, value, 0, this.user);
  }
  write64(la: number, lo: number, hi: number): void {
    const t = this.tlb;
    const i = (la >>> 12) & TLB_MASK;
    const off = la & 0xfff;
    if (t.page[i] === la - off && t.stamp[i] === t.current && (t.perm[i]! & (4 << this.user)) !== 0 && off <= 4088) {
      const v = t.views[i];
      if (v !== null) {
        v!.setInt32(off, lo, true);
        v!.setInt32(off + 4, hi, true);
        return;
      }
    }
    this.slowWrite(la, 8, lo, hi, this.user);
  }

  /** Read `size` bytes at `la` with explicit privilege (user 0/1); handles page crossing and MMIO. */
  slowRead(la: number, size: number, access: Access, user: number): number {
    const off = la & 0xfff;
    if (off + size <= 4096) {
      const pa = user === this.user ? this.translate(la, access) : walkOrHit(this, la, access, user);
      return this.physRead(pa, size, (la >>> 12) & TLB_MASK);
    }
    // Crossing into the next page: translate both pages first, so a #PF on the second page leaves no
    // partial effect. CR2 is then the first byte of the second page.
    const first = 4096 - off;
    const pa1 = walkOrHit(this, la, access, user);
    const pa2 = walkOrHit(this, la + first, access, user);
    let lo = 0, hi = 0;
    for (let k = 0; k < size; k++) {
      const b = k < first ? this.physRead(pa1 + k, 1, (la >>> 12) & TLB_MASK) : this.physRead(pa2 + (k - first), 1, ((la + first) >>> 12) & TLB_MASK);
      if (k < 4) lo |= b << (8 * k);
      else hi |= b << (8 * (k - 4));
    }
    this.hi = hi;
    return lo;
  }

  slowWrite(la: number, size: number, lo: number, hi: number, user: number): void {
    const off = la & 0xfff;
    if (off + size <= 4096) {
      const pa = walkOrHit(this, la, ACCESS_WRITE, user);
      this.physWrite(pa, size, lo, hi, (la >>> 12) & TLB_MASK);
      return;
    }
    const first = 4096 - off;
    const pa1 = walkOrHit(this, la, ACCESS_WRITE, user);
    const pa2 = walkOrHit(this, la + first, ACCESS_WRITE, user);
    for (let k = 0; k < size; k++) {
      const b = k < 4 ? (lo >>> (8 * k)) & 0xff : (hi >>> (8 * (k - 4))) & 0xff;
      if (k < first) this.physWrite(pa1 + k, 1, b, 0, (la >>> 12) & TLB_MASK);
      else this.physWrite(pa2 + (k - first), 1, b, 0, ((la + first) >>> 12) & TLB_MASK);
    }
  }

  /**
   * Physical read of 1/2/4/8 bytes within one page; 8-byte reads leave the high half in `this.hi`. `slot`: the TLB
   * slot that translated the access (-1: none), whose access type a device page is read with (memtype/cache-model.ts).
   */
  physRead(pa: number, size: number, slot = -1): number {
    const pfn = Math.floor(pa / 4096);
    if (this.isApicPage(pfn)) {
      const v = this.apic!.read(pa & 0xfff, size as 1 | 2 | 4 | 8);
      this.hi = Number((v >> 32n) & 0xffffffffn) | 0;
      return Number(v & 0xffffffffn) | 0;
    }
    const view = this.memory.frameView(pfn, false);
    if (view !== undefined) {
      const off = pa & 0xfff;
      switch (size) {
        case 1: return view.getUint8(off);
        case 2: return view.getUint16(off, true);
        case 4: return view.getInt32(off, true);
        default:
          this.hi = view.getInt32(off + 4, true);
          return view.getInt32(off, true);
      }
    }
    const v = slot < 0 ? this.memory.read(pa, size as 1 | 2 | 4 | 8) : this.caches.read(pa, size as 1 | 2 | 4 | 8, this.caches.accessType(slot));
    this.hi = Number((v >> 32n) & 0xffffffffn) | 0;
    return size === 4 || size === 8 ? Number(v & 0xffffffffn) | 0 : Number(v);
  }

  /** Physical write within one page; `slot` as for physRead (a device page is written with its access type). */
  physWrite(pa: number, size: number, lo: number, hi: number, slot = -1): void {
    const pfn = Math.floor(pa / 4096);
    if (this.isApicPage(pfn)) {
      this.apic!.write(pa & 0xfff, size as 1 | 2 | 4 | 8, pairToBig(lo, hi, size));
      return;
    }
    if (slot >= 0 && this.tlb.bytes[slot] === null) {
      this.caches.write(pa, size as 1 | 2 | 4 | 8, pairToBig(lo, hi, size), this.caches.accessType(slot));
      return;
    }
    if (size === 1) this.memory.write8(pa, lo & 0xff);
    else if (size === 4) this.memory.write32(pa, lo);
    else this.memory.write(pa, size as 1 | 2 | 4 | 8, pairToBig(lo, hi, size));
  }

  /** Supervisor (implicit) reads for descriptor tables and the TSS. */
  readSys32(la: number): number {
    return this.slowRead(la, 4, ACCESS_READ, 0);
  }
  readSys64(la: number): number {
    return this.slowRead(la, 8, ACCESS_READ, 0);
  }
  writeSys8(la: number, v: number): void {
    this.slowWrite(la, 1, v, 0, 0);
  }

  /** Instruction fetch of one byte (used by the decoder). */
  fetch8(la: number): number {
    const pa = this.translate(la, ACCESS_EXEC);
    return this.physRead(pa, 1, (la >>> 12) & TLB_MASK);
  }

  cr3Base(): number {
    // CR3[MAXPHYADDR-1:12] holds the PML4 table address. See SDM Vol. 3A, "Use of CR3 with 4-Level Paging".
    return this.cr3 - (this.cr3 % 4096);
  }

  // =====================================================================================================
  // Registers (learner API: bigint values)
  // =====================================================================================================

  getGpr(index: number): bigint {
    const hi = this.regHi[index]! >>> 0, lo = this.regLo[index]! >>> 0;
    // Below 2^53 one exact conversion (host code reads and writes registers on every VM exit); else BigInt arithmetic.
    if (hi < SAFE_HIGH) return BigInt(hi * TWO_32 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  setGpr(index: number, value: bigint): void {
    if (value >= 0n && value <= MAX_SAFE_BIGINT) {
      const n = Number(value);
      const lo = n % TWO_32;
      this.regLo[index] = lo | 0;
      this.regHi[index] = ((n - lo) / TWO_32) | 0;
      return;
    }
    const v = BigInt.asUintN(64, value);
    this.regLo[index] = Number(v & 0xffffffffn) | 0;
    this.regHi[index] = Number(v >> 32n) | 0;
  }

  /** Read a register by name: rax…r15, rip, rflags (and eax… for 32-bit views). */
  getReg(name: string): bigint {
    const n = name.toLowerCase();
    if (n === 'rip') return BigInt.asUintN(64, BigInt(this.rip));
    if (n === 'rflags') return BigInt(this.getRflags() >>> 0);
    const i = (GPR64 as readonly string[]).indexOf(n);
    if (i >= 0) return this.getGpr(i);
    const j = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'].indexOf(n);
    if (j >= 0) return BigInt(this.regLo[j]! >>> 0);
    throw new Error(`unknown register '${name}'`);
  }
  setReg(name: string, value: bigint): void {
    const n = name.toLowerCase();
    if (n === 'rip') {
      this.rip = Number(BigInt.asIntN(64, value));
      return;
    }
    if (n === 'rflags') {
      this.setRflags(Number(value & 0x3f7fd5n) | RFLAGS.FIXED1);
      return;
    }
    const i = (GPR64 as readonly string[]).indexOf(n);
    if (i < 0) throw new Error(`unknown register '${name}'`);
    this.setGpr(i, value);
  }

  /** Segment register state (selector + hidden part). */
  getSegment(name: SegmentRegisterName): SegmentState {
    const s = segIndex(name);
    return {
      selector: this.segSel[s]!,
      base: BigInt.asUintN(64, BigInt(this.segBase[s]!)),
      limit: this.segLimit[s]!,
      ar: this.segAr[s]!,
    };
  }
  /**
   * Load a segment register's selector and hidden part directly (test setup, VM entry/exit). Loading SS also
   * loads the CPL from SS.DPL, as VM entry and VM exit do: the SDM keeps CPL = SS.DPL, while CS.RPL may differ.
   * See SDM Vol. 3C, "Loading Guest Segment Registers and Descriptor-Table Registers".
   */
  setSegment(name: SegmentRegisterName, st: SegmentState): void {
    this.setSegmentAt(segIndex(name), st.selector, Number(BigInt.asIntN(64, st.base)), st.limit, st.ar);
  }
  /**
   * `setSegment` by index (ES CS SS DS FS GS LDTR TR) with the base as a signed number: VM exits and entries
   * load all eight segment registers every time.
   */
  setSegmentAt(s: number, selector: number, base: number, limit: number, ar: number): void {
    this.segSel[s] = selector & 0xffff;
    this.segBase[s] = base;
    this.segLimit[s] = limit >>> 0;
    this.segAr[s] = ar;
    if (s === SS) this.setCpl((ar >>> AR.DPL_SHIFT) & 3);
    this.updateMode();
  }

  readCr0(): bigint { return BigInt(this.cr0 >>> 0); }
  readCr2(): bigint { return BigInt.asUintN(64, BigInt(this.cr2)); }
  readCr3(): bigint { return BigInt(this.cr3); }
  readCr4(): bigint { return BigInt(this.cr4 >>> 0); }
  /** CR8 is TPR[7:4] of the local APIC. See SDM Vol. 3A, "Task Priority in IA-32e Mode". */
  readCr8(): bigint {
    const a = this.apic;
    if (a !== null && a.mode !== 'disabled' && a.readXapic) return BigInt((a.readXapic(APIC_TPR) >>> 4) & 0xf);
    return BigInt(this.cr8);
  }

  /**
   * MOV to CR0 with its #GP checks. See SDM Vol. 2B, "MOV—Move to/from Control Registers" and Vol. 3A,
   * "CR0" description in "Control Registers".
   */
  writeCr0(value: bigint): void {
    if (value >> 32n !== 0n) throw gp(0, 'MOV to CR0 with bits 63:32 set', 'SDM Vol. 3A, "Control Registers"');
    // Reserved bits of CR0[31:0] are ignored on write; ET is hardwired to 1.
    const v = ((Number(value) & CR0_DEFINED) | CR0.ET) >>> 0;
    if (v & CR0.PG && !(v & CR0.PE)) throw gp(0, 'CR0.PG = 1 with CR0.PE = 0', 'SDM Vol. 3A, "Control Registers"');
    if (v & CR0.NW && !(v & CR0.CD)) throw gp(0, 'CR0.NW = 1 with CR0.CD = 0', 'SDM Vol. 3A, "Control Registers"');
    const enablingPaging = v & CR0.PG && !(this.cr0 & CR0.PG);
    if (enablingPaging && this.efer & EFER.LME && !(this.cr4 & CR4.PAE)) {
      throw gp(0, 'enabling paging with EFER.LME = 1 but CR4.PAE = 0', 'SDM Vol. 3A, "Initializing IA-32e Mode"');
    }
    if (!(v & CR0.PG) && this.cr0 & CR0.PG && this.bits === 64) {
      throw gp(0, 'clearing CR0.PG in 64-bit mode', 'SDM Vol. 3A, "IA-32e Mode Operation"');
    }
    this.vmx?.checkControlRegisterWrite?.(this, 0, BigInt(v));
    const changed = (this.cr0 ^ v) >>> 0;
    this.cr0 = v;
    // IA32_EFER.LMA = LME & PG. See SDM Vol. 3A, "Initializing IA-32e Mode".
    if (v & CR0.PG && this.efer & EFER.LME) this.efer |= EFER.LMA;
    else this.efer &= ~EFER.LMA;
    if (changed & (CR0.PG | CR0.WP | CR0.PE)) this.tlb.flushAll();
    this.updateMode();
  }

  writeCr2(value: bigint): void {
    this.cr2 = Number(BigInt.asIntN(64, value));
  }

  /** MOV to CR3: reserved bits above MAXPHYADDR → #GP(0); flushes the (non-global) TLB. */
  writeCr3(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    // With CR4.PCIDE = 1, bit 63 asks not to flush; it is not stored. (This TLB has no PCIDs and flushes
    // anyway, which is always allowed.) See SDM Vol. 3A, "Process-Context Identifiers (PCIDs)".
    if (this.cr4 & CR4.PCIDE) v &= ~(1n << 63n);
    if (this.efer & EFER.LMA && v >> BigInt(this.maxPhysAddr) !== 0n) {
      throw gp(0, `CR3 bits 63:${this.maxPhysAddr} (above MAXPHYADDR) must be 0`, 'SDM Vol. 3A, "Use of CR3 with 4-Level Paging"');
    }
    this.cr3 = Number(v);
    this.tlb.flushAll();
  }

  writeCr4(value: bigint): void {
    const v = Number(BigInt.asUintN(64, value) & 0xffffffffn);
    if (value >> 32n !== 0n || (v & ~CR4_SUPPORTED) !== 0) {
      throw gp(0, `MOV to CR4 sets a reserved (or unsupported) bit: ${BigInt.asUintN(64, value).toString(16)}H`, 'SDM Vol. 3A, "Control Registers"');
    }
    if (this.efer & EFER.LMA && !(v & CR4.PAE)) {
      throw gp(0, 'clearing CR4.PAE while IA-32e mode is active', 'SDM Vol. 3A, "Control Registers"');
    }
    if (v & CR4.PCIDE && !(this.cr4 & CR4.PCIDE) && ((this.cr3 & 0xfff) !== 0 || !(this.efer & EFER.LMA))) {
      throw gp(0, 'setting CR4.PCIDE outside IA-32e mode or with CR3[11:0] ≠ 0', 'SDM Vol. 3A, "Control Registers"');
    }
    this.vmx?.checkControlRegisterWrite?.(this, 4, BigInt(v));
    const changed = this.cr4 ^ v;
    this.cr4 = v;
    if (changed & (CR4.PAE | CR4.PGE | CR4.PSE | CR4.PCIDE | CR4.SMEP | CR4.SMAP)) this.tlb.flushAll();
  }

  writeCr8(value: bigint): void {
    if (value >> 4n !== 0n) throw gp(0, 'CR8 bits 63:4 are reserved', 'SDM Vol. 3A, "Control Registers"');
    this.cr8 = Number(value);
    const a = this.apic;
    if (a !== null && a.mode !== 'disabled' && a.writeXapic) a.writeXapic(APIC_TPR, this.cr8 << 4);
  }

  // ---- Descriptor-table registers ----
  sgdt(): { base: bigint; limit: number } {
    return { base: BigInt.asUintN(64, BigInt(this.gdtrBase)), limit: this.gdtrLimit };
  }
  sidt(): { base: bigint; limit: number } {
    return { base: BigInt.asUintN(64, BigInt(this.idtrBase)), limit: this.idtrLimit };
  }
  lgdt(base: bigint, limit: number): void {
    this.gdtrBase = Number(BigInt.asIntN(64, base));
    this.gdtrLimit = limit & 0xffff;
  }
  lidt(base: bigint, limit: number): void {
    this.idtrBase = Number(BigInt.asIntN(64, base));
    this.idtrLimit = limit & 0xffff;
  }

  // =====================================================================================================
  // MSRs
  // =====================================================================================================

  /** Add or replace an MSR (CPU models and VMX register their MSRs here). */
  defineMsr(index: number, handler: MsrHandler): void {
    this.msrs.set(index >>> 0, handler);
  }
  /** Define a plain read/write MSR with an initial value (`writable: false` → read-only). */
  definePlainMsr(index: number, initial: bigint, writable = true): void {
    this.plainMsrs.set(index >>> 0, initial);
    this.defineMsr(index, {
      read: (lp) => lp.plainMsrs.get(index >>> 0) ?? 0n,
      write: writable ? (lp, v) => void lp.plainMsrs.set(index >>> 0, v) : undefined,
    });
  }
  hasMsr(index: number): boolean {
    return this.msrs.has(index >>> 0);
  }

  /** RDMSR. An MSR this CPU does not have → #GP(0). See SDM Vol. 2B, "RDMSR—Read From Model Specific Register". */
  rdmsr(index: number): bigint {
    const h = this.msrs.get(index >>> 0);
    if (h === undefined) throw gp(0, `RDMSR of MSR ${intelHex(index >>> 0)}, which this CPU does not implement`, 'SDM Vol. 2B, "RDMSR—Read From Model Specific Register"');
    return BigInt.asUintN(64, h.read(this));
  }
  /** WRMSR. Unimplemented or read-only MSR, or reserved bits → #GP(0). */
  wrmsr(index: number, value: bigint): void {
    const h = this.msrs.get(index >>> 0);
    if (h === undefined) throw gp(0, `WRMSR to MSR ${intelHex(index >>> 0)}, which this CPU does not implement`, 'SDM Vol. 2B, "WRMSR—Write to Model Specific Register"');
    if (h.write === undefined) throw gp(0, `WRMSR to read-only MSR ${intelHex(index >>> 0)}`, 'SDM Vol. 2B, "WRMSR—Write to Model Specific Register"');
    h.write(this, BigInt.asUintN(64, value));
  }

  /** Time-stamp counter: one tick per retired instruction, plus the offset WRMSR to IA32_TSC sets. Deterministic. */
  readTsc(): bigint {
    return BigInt.asUintN(64, BigInt(this.instructions) + BigInt(this.tscOffset));
  }

  /** CPUID through the attached CPU model (or a minimal built-in one). */
  cpuid(leaf: number, subleaf = 0): CpuidResult {
    if (this.cpuidSource) return this.cpuidSource(leaf >>> 0, subleaf >>> 0, this);
    return defaultCpuid(leaf >>> 0, subleaf >>> 0, this);
  }

  // =====================================================================================================
  // Reset, INIT, SIPI
  // =====================================================================================================

  /** Power-up/INIT register state. See SDM Vol. 3A, "Processor State After Reset/INIT" (Table "IA-32 and Intel 64 Processor States Following Power-up, Reset, or INIT"). */
  private resetState(): void {
    this.monitor.disarm();
    this.regLo.fill(0);
    this.regHi.fill(0);
    // EDX holds the processor signature (family/model/stepping) after reset.
    this.regLo[2] = this.cpuid(1).eax;
    this.rip = 0xfff0;
    this.setRflags(RFLAGS.FIXED1);
    this.cr0 = 0x60000010;
    this.cr2 = 0;
    this.cr3 = 0;
    this.cr4 = 0;
    this.cr8 = 0;
    this.efer = 0;
    this.xcr0 = 1;
    const dataAr = AR.P | AR.S | AR.RW | AR.ACCESSED; // 93H
    for (let s = 0; s < 6; s++) {
      this.segSel[s] = 0;
      this.segBase[s] = 0;
      this.segLimit[s] = 0xffff;
      this.segAr[s] = dataAr;
    }
    this.segSel[CS] = 0xf000;
    this.segBase[CS] = 0xffff0000;
    this.segAr[CS] = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED; // 9BH
    this.segSel[LDTR] = 0; this.segBase[LDTR] = 0; this.segLimit[LDTR] = 0xffff; this.segAr[LDTR] = AR.P | 0x2;
    this.segSel[TR] = 0; this.segBase[TR] = 0; this.segLimit[TR] = 0xffff; this.segAr[TR] = AR.P | 0xb;
    this.gdtrBase = 0; this.gdtrLimit = 0xffff;
    this.idtrBase = 0; this.idtrLimit = 0xffff;
    this.dr.splice(0, 8, 0n, 0n, 0n, 0n, 0n, 0n, BigInt(DR6.FIXED1), BigInt(DR7_FIXED1));
    this.shadowAt = -1;
    this.shadowKind = '';
    this.nmiPending = false;
    this.nmiBlocked = false;
    this.virtualNmis = false;
    this.virtualNmiBlocked = false;
    this.nmiUnblockedByIretAt = -1;
    this.activity = 'active';
    this.shutdownReason = '';
    // INIT and RESET invalidate every TLB entry, whatever VPID or EP4TA tags it.
    this.tlb.flushAllContexts();
    this.updateMode();
    this.installArchitecturalMsrs();
  }

  /**
   * INIT as an application processor takes it: reset most state and wait for a SIPI. (`performInit`, the path
   * of a real INIT signal, lets the BSP restart at the reset vector instead.) MSRs such as IA32_FEATURE_CONTROL
   * and IA32_APIC_BASE keep their values. See SDM Vol. 3A, "INIT" in "Processor State After Reset/INIT" and
   * "MP Initialization Protocol".
   */
  init(): void {
    const keepMsrs = new Map(this.plainMsrs);
    const fc = this.featureControl, apicBase = this.apicBase;
    this.resetState();
    for (const [k, v] of keepMsrs) this.plainMsrs.set(k, v);
    this.featureControl = fc;
    this.apicBase = apicBase;
    this.activity = 'wait-for-sipi';
  }

  /**
   * Act on a pending INIT at an instruction boundary: VMX may block it (root operation) or turn it into a
   * VM exit (non-root); otherwise the LP and its APIC are reset.
   */
  performInit(): void {
    this.initPending = false;
    if (this.vmx?.handleInit?.(this)) return;
    this.init();
    // The BSP restarts at the reset vector; application processors wait for a start-up IPI.
    // See SDM Vol. 3A, "MP Initialization Protocol Requirements and Restrictions".
    if (this.apicBase & MSR.APIC_BASE.BSP) this.activity = 'active';
    this.apic?.initReset?.();
  }

  /** Start-up IPI: real mode at CS = vector << 8 (base vector << 12), IP = 0. SIPI is ignored unless waiting. */
  startup(vector: number): void {
    if (this.initPending) this.performInit(); // the INIT arrived first
    if (this.activity !== 'wait-for-sipi') return;
    const v = vector & 0xff;
    // In VMX non-root operation the SIPI causes a VM exit instead of starting the LP (see VmxUnit.handleSipi).
    if (this.vmx?.handleSipi?.(this, v)) return;
    this.segSel[CS] = v << 8;
    this.segBase[CS] = v << 12;
    this.rip = 0;
    this.activity = 'active';
    this.updateMode();
  }

  /** Enter the shutdown state (triple fault and similar). */
  shutdown(reason: string): void {
    this.activity = 'shutdown';
    this.shutdownReason = reason;
    this.onShutdown?.(this, reason);
  }

  // =====================================================================================================
  // Architectural MSRs present on every model
  // =====================================================================================================

  private installArchitecturalMsrs(): void {
    if (this.msrs.size > 0) return; // already installed (INIT keeps MSRs)
    this.defineMsr(MSR.MSR_EFER, {
      read: (lp) => BigInt(lp.efer),
      write: (lp, v) => lp.writeEfer(v),
    });
    this.defineMsr(MSR.MSR_IA32_FEATURE_CONTROL, {
      read: (lp) => BigInt(lp.featureControl),
      // Lock semantics: once bit 0 is set, WRMSR raises #GP until reset.
      // See SDM Vol. 3C, "Enabling and Entering VMX Operation".
      write: (lp, v) => {
        if (lp.featureControl & MSR.FEATURE_CONTROL.LOCKED) {
          throw gp(0, 'WRMSR to IA32_FEATURE_CONTROL while its lock bit is set', 'SDM Vol. 3C, "Enabling and Entering VMX Operation"');
        }
        lp.featureControl = Number(v & 0xffffffffn);
      },
    });
    this.defineMsr(MSR.MSR_IA32_APICBASE, {
      read: (lp) => (lp.apic ? apicMsr(lp, MSR.MSR_IA32_APICBASE, null) : BigInt(lp.apicBase >>> 0)),
      write: (lp, v) => {
        if (lp.apic) {
          apicMsr(lp, MSR.MSR_IA32_APICBASE, v);
          lp.tlb.flushAllContexts(); // the xAPIC page may have moved (every context's entries point at frames)
          return;
        }
        // Bits 7:0, 9 and 63:MAXPHYADDR are reserved. See SDM Vol. 3A, "Local APIC Status and Location".
        if ((v & 0x2ffn) !== 0n || v >> BigInt(lp.maxPhysAddr) !== 0n) {
          throw gp(0, 'reserved bit set in IA32_APIC_BASE', 'SDM Vol. 3A, "Local APIC Status and Location"');
        }
        lp.apicBase = Number(v & 0xffffffffn) >>> 0;
        lp.tlb.flushAllContexts();
      },
    });
    this.defineMsr(MSR.MSR_IA32_TIME_STAMP_COUNTER, {
      read: (lp) => lp.readTsc(),
      write: (lp, v) => void (lp.tscOffset = Number(BigInt.asIntN(64, v - BigInt(lp.instructions)))),
    });
    const canonicalBase = (which: 'fs' | 'gs' | 'kgs') => ({
      read: (lp: LogicalProcessor) =>
        BigInt.asUintN(64, BigInt(which === 'fs' ? lp.segBase[FS]! : which === 'gs' ? lp.segBase[GS]! : lp.kernelGsBase)),
      write: (lp: LogicalProcessor, v: bigint) => {
        const s = BigInt.asIntN(64, v);
        if (s < -(1n << 47n) || s >= 1n << 47n) throw gp(0, 'non-canonical base address', 'SDM Vol. 3A, "Segment Loading Instructions in IA-32e Mode"');
        if (which === 'fs') lp.segBase[FS] = Number(s);
        else if (which === 'gs') lp.segBase[GS] = Number(s);
        else lp.kernelGsBase = Number(s);
        lp.updateMode();
      },
    });
    this.defineMsr(MSR.MSR_FS_BASE, canonicalBase('fs'));
    this.defineMsr(MSR.MSR_GS_BASE, canonicalBase('gs'));
    this.defineMsr(MSR.MSR_KERNEL_GS_BASE, canonicalBase('kgs'));
    for (const m of [MSR.MSR_IA32_SYSENTER_CS, MSR.MSR_IA32_SYSENTER_ESP, MSR.MSR_IA32_SYSENTER_EIP, MSR.MSR_STAR,
      MSR.MSR_LSTAR, MSR.MSR_CSTAR, MSR.MSR_SYSCALL_MASK, MSR.MSR_TSC_AUX, MSR.MSR_IA32_DEBUGCTLMSR, MSR.MSR_IA32_SPEC_CTRL,
      MSR.MSR_IA32_TSC_ADJUST, MSR.MSR_IA32_BIOS_SIGN_ID]) {
      this.definePlainMsr(m, 0n);
    }
    // IA32_PAT: the power-up value; WRMSR with a reserved encoding in any entry raises #GP(0). INIT keeps it.
    // See SDM Vol. 3A, "IA32_PAT MSR".
    this.plainMsrs.set(MSR.MSR_IA32_CR_PAT, PAT_POWER_UP);
    this.defineMsr(MSR.MSR_IA32_CR_PAT, {
      read: (lp) => lp.plainMsrs.get(MSR.MSR_IA32_CR_PAT) ?? PAT_POWER_UP,
      write: (lp, v) => {
        const bad = reservedPatEntry(v);
        if (bad >= 0) throw gp(0, `IA32_PAT entry ${bad} holds the reserved encoding ${Number((v >> BigInt(8 * bad)) & 0xffn)}`, 'SDM Vol. 3A, "IA32_PAT MSR"');
        lp.plainMsrs.set(MSR.MSR_IA32_CR_PAT, v);
      },
    });
    this.definePlainMsr(MSR.MSR_IA32_MISC_ENABLE, 1n);
    for (let m = MSR.MSR_X2APIC_FIRST; m <= MSR.MSR_X2APIC_LAST; m++) {
      this.defineMsr(m, {
        read: (lp) => apicMsr(lp, m, null),
        write: (lp, v) => void apicMsr(lp, m, v),
      });
    }
  }

  kernelGsBase = 0;

  /** WRMSR IA32_EFER. See SDM Vol. 3A, "Extended Feature Enable Register" and "Initializing IA-32e Mode". */
  writeEfer(v: bigint): void {
    if ((v & ~BigInt(EFER_DEFINED)) !== 0n) throw gp(0, 'reserved bit set in IA32_EFER', 'SDM Vol. 3A, "Extended Feature Enable Register"');
    const nv = Number(v);
    if ((nv ^ this.efer) & EFER.LME && this.cr0 & CR0.PG) {
      throw gp(0, 'changing IA32_EFER.LME while paging is enabled', 'SDM Vol. 3A, "Initializing IA-32e Mode"');
    }
    // LMA is read-only (set by the processor). NXE changes which PTE bits are reserved → flush.
    const next = (nv & ~EFER.LMA) | (this.efer & EFER.LMA);
    if ((next ^ this.efer) & EFER.NXE) this.tlb.flushAll();
    this.efer = next;
    this.updateMode();
  }

  // =====================================================================================================
  // Interruptibility (for VM entry/exit: GUEST_INTERRUPTIBILITY_INFO uses the same bit layout)
  // =====================================================================================================

  /**
   * Blocking state at the current instruction boundary: bit 0 blocking by STI, bit 1 blocking by MOV SS,
   * bit 3 blocking by NMI. See SDM Vol. 3C, "Guest Non-Register State" (interruptibility state).
   */
  getInterruptibility(): number {
    let v = 0;
    if (this.shadowAt === this.instructions) v |= this.shadowKind === 'mov-ss' ? 2 : 1;
    if (this.nmiBlocked) v |= 8;
    return v;
  }
  /** Load the blocking state (VM entry). */
  setInterruptibility(v: number): void {
    if (v & 3) {
      this.shadowAt = this.instructions;
      this.shadowKind = v & 2 ? 'mov-ss' : 'sti';
    } else {
      this.shadowAt = -1;
      this.shadowKind = '';
    }
    this.nmiBlocked = (v & 8) !== 0;
  }

  // =====================================================================================================
  // Debug state
  // =====================================================================================================

  /** Every register as bigint, for inspectors (register dump, traces, tests). */
  snapshot(): LpSnapshot {
    const gpr = {} as Record<(typeof GPR64)[number], bigint>;
    GPR64.forEach((n, i) => (gpr[n] = this.getGpr(i)));
    const seg = {} as Record<SegmentRegisterName, SegmentState>;
    for (const n of SEG_NAMES) seg[n] = this.getSegment(n);
    return {
      id: this.id,
      ...gpr,
      rip: this.getReg('rip'),
      rflags: this.getReg('rflags'),
      cr0: this.readCr0(), cr2: this.readCr2(), cr3: this.readCr3(), cr4: this.readCr4(), cr8: this.readCr8(),
      efer: BigInt(this.efer),
      dr: [...this.dr],
      segments: seg,
      gdtr: this.sgdt(),
      idtr: this.sidt(),
      activity: this.activity,
      cpl: this.cpl,
      mode: this.bits === 64 ? '64-bit' : !(this.cr0 & CR0.PE) ? 'real' : this.efer & EFER.LMA ? `compatibility (${this.bits}-bit)` : `protected (${this.bits}-bit)`,
      tsc: this.readTsc(),
    };
  }
}

export type LpSnapshot = Record<(typeof GPR64)[number], bigint> & {
  id: number;
  rip: bigint;
  rflags: bigint;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  dr: bigint[];
  segments: Record<SegmentRegisterName, SegmentState>;
  gdtr: { base: bigint; limit: number };
  idtr: { base: bigint; limit: number };
  activity: ActivityState;
  cpl: number;
  mode: string;
  tsc: bigint;
};

const TWO_32 = 2 ** 32;
/** Bits 63:32 below this: the value is below 2^53, exact as a Number. */
const SAFE_HIGH = 2 ** 21;
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

function segIndex(name: string): number {
  const s = (SEG_NAMES as readonly string[]).indexOf(name);
  if (s < 0) throw new Error(`unknown segment register '${name}' (expected one of ${SEG_NAMES.join(', ')})`);
  return s;
}

/** RDMSR/WRMSR (value !== null) through the local APIC; a refused access is #GP(0). */
function apicMsr(lp: LogicalProcessor, msr: number, value: bigint | null): bigint {
  const sdm = 'SDM Vol. 3A, "x2APIC Register Address Space"';
  if (lp.apic === null) throw gp(0, `MSR ${intelHex(msr >>> 0)}: this logical processor has no local APIC`, sdm);
  const r = value === null ? lp.apic.readMsr(msr) : lp.apic.writeMsr(msr, value);
  if (!r.ok) throw gp(0, r.reason, sdm);
  return r.value ?? 0n;
}

function walkOrHit(lp: LogicalProcessor, la: number, access: Access, user: number): number {
  const t = lp.tlb;
  const vpn = Math.floor(la / 4096);
  const i = vpn & TLB_MASK;
  if (t.vpn[i] === vpn && t.stamp[i] === t.current && (t.perm[i]! & (1 << (access * 2 + user))) !== 0) {
    return t.phys[i]! + (la & 0xfff);
  }
  return walk(lp, la, access, user);
}

function pairToBig(lo: number, hi: number, size: number): bigint {
  const v = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  return BigInt.asUintN(size * 8, v);
}


/**
 * A minimal CPUID for when no CPU model is attached: GenuineIntel, family 6, with VMX, long mode, NX and
 * MAXPHYADDR. CPU models (src/machine/cpu-model.ts) replace it through `lp.cpuidSource`.
 * See SDM Vol. 2A, "CPUID—CPU Identification".
 */
function defaultCpuid(leaf: number, _subleaf: number, lp: LogicalProcessor): CpuidResult {
  const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  switch (leaf) {
    case 0:
      r.eax = 1;
      r.ebx = 0x756e6547; // "Genu"
      r.edx = 0x49656e69; // "ineI"
      r.ecx = 0x6c65746e; // "ntel"
      break;
    case 1:
      r.eax = 0x000406e3; // family 6 model 4EH stepping 3
      r.ebx = (lp.id & 0xff) << 24; // initial APIC ID
      r.ecx = (1 << 5) | (1 << 26) | (1 << 27); // VMX, XSAVE, OSXSAVE-capable
      r.edx = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 19);
      break;
    case 0x80000000:
      r.eax = 0x80000008;
      break;
    case 0x80000001:
      r.edx = (1 << 20) | (1 << 26) | (1 << 29); // NX, 1-GByte pages, Intel 64
      break;
    case 0x80000008:
      r.eax = (48 << 8) | lp.maxPhysAddr;
      break;
  }
  return r;
}

export { ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC, CpuFault, SS, CS };
