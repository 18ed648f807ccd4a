// The local APIC of one logical processor: xAPIC registers (MMIO page at IA32_APIC_BASE), x2APIC registers
// (MSRs 800H–8FFH), the APIC timer, interrupt acceptance by priority, and IPIs through the ICR.
// See SDM Vol. 3A, "Advanced Programmable Interrupt Controller (APIC)".
//
// How the machine uses it:
//   - MMIO: the LP routes accesses to the 4-KByte page at `baseAddress` to `read`/`write` (MmioDevice) — per LP,
//     since every processor sees its own APIC at the same physical address.
//   - MSRs: `handlesMsr(msr)` → `readMsr`/`writeMsr`; a result with ok=false means the LP raises #GP(0).
//   - Time: `tick(cycles)` with the instructions retired since the last call; `cyclesUntilTimer()` lets the run
//     loop end a slice exactly when the timer expires.
//   - Interrupts: when RFLAGS.IF = 1 and nothing blocks, the LP takes `pendingVector()` (−1: none), calls
//     `acknowledge(vector)` and delivers it through the IDT. `nmiPending` is set by NMI IPIs and LINT NMIs; the LP
//     clears it when it delivers the NMI. INIT and SIPI arrive as `onInit()` / `onStartup(vector)`: the LP decides
//     (INIT is blocked in VMX root operation, SIPI only matters in wait-for-SIPI) and calls `initReset()` on INIT.
//   - IPIs: writing the ICR calls `bus.sendIpi`; ApicBusImpl (below) routes to the other APICs' `deliver`.
//
// Simplifications, each a legal implementation choice or a documented gap: no TSC-deadline mode (CPUID does not
// report it), no CMCI LVT, no EOI-broadcast suppression, no SMM (SMI IPIs are dropped), no I/O APIC (EOI of a
// level-triggered vector only clears ISR), ExtINT on LINT0 is ignored (no 8259 PIC). One APIC bus clock = one
// retired instruction.

import type { MmioDevice } from './memory.ts';
import { intelHex } from '../util/hex.ts';

export const MSR_IA32_APIC_BASE = 0x1b;
export const APIC_DEFAULT_PHYS_BASE = 0xfee00000;
export const APIC_MMIO_SIZE = 0x1000;

/** IA32_APIC_BASE bits. See SDM Vol. 3A, "Local APIC Status and Location". */
export const APIC_BASE_MSR = {
  BSP: 1 << 8,
  /** x2APIC enable. */
  EXTD: 1 << 10,
  /** APIC global enable. */
  EN: 1 << 11,
} as const;

/** xAPIC register offsets in the MMIO page (Linux names). See SDM Vol. 3A, "Local APIC Register Address Map". */
export const APIC_REG = {
  APIC_ID: 0x20,
  APIC_LVR: 0x30,
  APIC_TASKPRI: 0x80,
  APIC_ARBPRI: 0x90,
  APIC_PROCPRI: 0xa0,
  APIC_EOI: 0xb0,
  APIC_RRR: 0xc0,
  APIC_LDR: 0xd0,
  APIC_DFR: 0xe0,
  APIC_SPIV: 0xf0,
  APIC_ISR: 0x100,
  APIC_TMR: 0x180,
  APIC_IRR: 0x200,
  APIC_ESR: 0x280,
  APIC_ICR: 0x300,
  APIC_ICR2: 0x310,
  APIC_LVTT: 0x320,
  APIC_LVTTHMR: 0x330,
  APIC_LVTPC: 0x340,
  APIC_LVT0: 0x350,
  APIC_LVT1: 0x360,
  APIC_LVTERR: 0x370,
  APIC_TMICT: 0x380,
  APIC_TMCCT: 0x390,
  APIC_TDCR: 0x3e0,
  /** x2APIC only (MSR 83FH). */
  APIC_SELF_IPI: 0x3f0,
} as const;

/** The x2APIC MSR for an xAPIC offset: 800H + offset/16. See SDM Vol. 3A, "x2APIC Register Address Space". */
export function x2apicMsr(offset: number): number {
  return 0x800 + (offset >> 4);
}
export const X2APIC_MSR_FIRST = 0x800;
export const X2APIC_MSR_LAST = 0x8ff;

/** Local APIC version register: version 14H (integrated APIC), six LVT entries (max LVT entry 5). */
export const APIC_VERSION = 0x14 | (5 << 16);

export const LVT = {
  MASKED: 1 << 16,
  DELIVERY_STATUS: 1 << 12,
  REMOTE_IRR: 1 << 14,
  LEVEL_TRIGGER: 1 << 15,
  /** Timer mode bits 18:17: 00 one-shot, 01 periodic (10 TSC-deadline is not modeled). */
  TIMER_PERIODIC: 1 << 17,
} as const;
/** LVT delivery modes (bits 10:8). See SDM Vol. 3A, "Local Vector Table". */
const LVT_DM = { FIXED: 0, SMI: 2, NMI: 4, INIT: 5, EXTINT: 7 } as const;

export const SVR = { APIC_ENABLED: 1 << 8, FOCUS_DISABLED: 1 << 9 } as const;
/** Error Status Register bits. See SDM Vol. 3A, "Error Handling". */
export const APIC_ESR = { SEND_ILLEGAL_VECTOR: 1 << 5, RECEIVE_ILLEGAL_VECTOR: 1 << 6, ILLEGAL_REGISTER_ADDRESS: 1 << 7 } as const;

export type ApicDeliveryMode = 'fixed' | 'lowest' | 'smi' | 'nmi' | 'init' | 'startup' | 'init-deassert';
export interface ApicIpi {
  vector: number;
  deliveryMode: ApicDeliveryMode;
  destMode: 'physical' | 'logical';
  destination: number;
  shorthand: 'none' | 'self' | 'all-including-self' | 'all-excluding-self';
  level: boolean;
  trigger: 'edge' | 'level';
}
export interface ApicBus {
  sendIpi(from: number, ipi: ApicIpi): void;
}

export type ApicMode = 'disabled' | 'xapic' | 'x2apic';
/** Outcome of an MSR access: ok=false means #GP(0); `reason` is for the explanation channel. */
export type ApicMsrResult = { ok: true; value: bigint } | { ok: false; reason: string };

export interface ApicRegisterDump {
  mode: ApicMode;
  apicBase: bigint;
  id: number;
  tpr: number;
  ppr: number;
  ldr: number;
  dfr: number;
  svr: number;
  esr: number;
  icr: bigint;
  lvtTimer: number;
  lvtThermal: number;
  lvtPerf: number;
  lvtLint0: number;
  lvtLint1: number;
  lvtError: number;
  timerInitialCount: number;
  timerCurrentCount: number;
  timerDivide: number;
  /** 256-bit registers as eight 32-bit words, word 0 holding vectors 0–31. */
  irr: number[];
  isr: number[];
  tmr: number[];
  nmiPending: boolean;
}

export interface LocalApicOptions {
  /** Initial APIC ID (also the x2APIC ID). */
  apicId: number;
  /** Bootstrap processor: IA32_APIC_BASE.BSP is set at reset. */
  bsp?: boolean;
  /** CPUID.1:ECX.x2APIC of the CPU model; without it IA32_APIC_BASE.EXTD is reserved. Default true. */
  x2apicSupported?: boolean;
  /** MAXPHYADDR: IA32_APIC_BASE bits above it are reserved. Default 39. */
  maxPhysAddr?: number;
}

// LVT indices into `lvt`, in register order.
const LVT_TIMER = 0;
const LVT_THERMAL = 1;
const LVT_PERF = 2;
const LVT_LINT0 = 3;
const LVT_LINT1 = 4;
const LVT_ERROR = 5;
/** Writable bits of each LVT entry (vector, delivery mode, polarity, trigger, mask, timer mode). */
const LVT_WRITABLE = [0x000300ff, 0x000107ff, 0x000107ff, 0x0001a7ff, 0x0001a7ff, 0x000100ff] as const;
const ICR_LOW_WRITABLE = 0x000ccfff; // vector, delivery mode, dest mode, level, trigger, shorthand
const DCR_WRITABLE = 0xb; // bits 0, 1 and 3
const SVR_WRITABLE = 0x3ff;

/** Outcome of an x2APIC register write; a string is the #GP reason. */
type WriteOutcome = true | string;

export class LocalApic implements MmioDevice {
  readonly name = 'local-apic';
  readonly apicId: number;
  readonly x2apicSupported: boolean;
  private readonly maxPhysAddr: number;
  private readonly bsp: boolean;

  bus: ApicBus | undefined = undefined;
  /** Set by an NMI IPI or an NMI on LINT0/LINT1; the LP clears it when it delivers the NMI. */
  nmiPending = false;
  onInit: (() => void) | undefined = undefined;
  onStartup: ((vector: number) => void) | undefined = undefined;

  private modeValue: ApicMode = 'xapic';
  private base = APIC_DEFAULT_PHYS_BASE;
  private tpr = 0;
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private esr = 0;
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(6);
  private timerInitial = 0;
  private timerCurrent = 0;
  private timerPrescale = 0;
  private dcr = 0;
  private readonly irr = new Uint32Array(8);
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);

  constructor(opts: LocalApicOptions) {
    this.apicId = opts.apicId >>> 0;
    this.bsp = opts.bsp ?? false;
    this.x2apicSupported = opts.x2apicSupported ?? true;
    this.maxPhysAddr = opts.maxPhysAddr ?? 39;
    this.reset();
  }

  // ---- reset, IA32_APIC_BASE and modes ---------------------------------------------------------------------

  /** Power-up or RESET: xAPIC mode at FEE00000H. See SDM Vol. 3A, "Local APIC State After Power-Up or Reset". */
  reset(): void {
    this.modeValue = 'xapic';
    this.base = APIC_DEFAULT_PHYS_BASE;
    this.nmiPending = false;
    this.resetRegisters();
  }

  /**
   * INIT: registers as after power-up, but the APIC ID, IA32_APIC_BASE and the x2APIC mode are kept.
   * See SDM Vol. 3A, "Local APIC State After an INIT Reset (“Wait-for-SIPI” State)".
   */
  initReset(): void {
    this.resetRegisters();
  }

  private resetRegisters(): void {
    this.tpr = 0;
    this.ldr = this.modeValue === 'x2apic' ? this.x2apicLdr() : 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT.MASKED);
    this.timerInitial = 0;
    this.timerCurrent = 0;
    this.timerPrescale = 0;
    this.dcr = 0;
    this.irr.fill(0);
    this.isr.fill(0);
    this.tmr.fill(0);
  }

  get mode(): ApicMode {
    return this.modeValue;
  }

  /** Physical address of the xAPIC page (IA32_APIC_BASE[MAXPHYADDR-1:12]). */
  get baseAddress(): number {
    return this.base;
  }

  /** APIC software enable, SVR[8]. */
  get softwareEnabled(): boolean {
    return (this.svr & SVR.APIC_ENABLED) !== 0;
  }

  readApicBase(): bigint {
    const flags =
      (this.bsp ? APIC_BASE_MSR.BSP : 0) |
      (this.modeValue !== 'disabled' ? APIC_BASE_MSR.EN : 0) |
      (this.modeValue === 'x2apic' ? APIC_BASE_MSR.EXTD : 0);
    return BigInt(this.base) | BigInt(flags);
  }

  /**
   * WRMSR to IA32_APIC_BASE. Reserved bits (7:0, 9, MAXPHYADDR and up, EXTD without x2APIC support), the invalid
   * state EN=0/EXTD=1 and the transitions x2APIC→xAPIC and disabled→x2APIC raise #GP.
   * See SDM Vol. 3A, "x2APIC State Transitions". BSP is set by hardware; writes to it are ignored.
   */
  writeApicBase(value: bigint): ApicMsrResult {
    let reserved = 0xffn | BigInt(1 << 9) | ~((1n << BigInt(this.maxPhysAddr)) - 1n);
    if (!this.x2apicSupported) reserved |= BigInt(APIC_BASE_MSR.EXTD);
    if ((BigInt.asUintN(64, value) & BigInt.asUintN(64, reserved)) !== 0n) {
      return { ok: false, reason: 'IA32_APIC_BASE: a reserved bit is set' };
    }
    const en = (value & BigInt(APIC_BASE_MSR.EN)) !== 0n;
    const extd = (value & BigInt(APIC_BASE_MSR.EXTD)) !== 0n;
    if (!en && extd) return { ok: false, reason: 'IA32_APIC_BASE: EN=0 with EXTD=1 is an invalid state' };
    const next: ApicMode = !en ? 'disabled' : extd ? 'x2apic' : 'xapic';
    const prev = this.modeValue;
    if (prev === 'x2apic' && next === 'xapic') {
      return { ok: false, reason: 'IA32_APIC_BASE: x2APIC to xAPIC is illegal; disable the APIC first' };
    }
    if (prev === 'disabled' && next === 'x2apic') {
      return { ok: false, reason: 'IA32_APIC_BASE: disabled to x2APIC is illegal; enable xAPIC mode first' };
    }
    this.base = Number(value & ~0xfffn & ((1n << BigInt(this.maxPhysAddr)) - 1n));
    if (next === prev) return { ok: true, value: 0n };
    this.modeValue = next;
    if (next === 'disabled') {
      // A globally disabled APIC loses its state; re-enabling starts from the power-up values.
      this.resetRegisters();
    } else if (next === 'x2apic') {
      // xAPIC → x2APIC: the LDR becomes the derived logical x2APIC ID; other registers are kept.
      // See SDM Vol. 3A, "State Changes From xAPIC Mode to x2APIC Mode".
      this.ldr = this.x2apicLdr();
    }
    return { ok: true, value: 0n };
  }

  /** Logical x2APIC ID: cluster = x2APIC ID[19:4] in bits 31:16, one bit for ID[3:0] in bits 15:0. */
  private x2apicLdr(): number {
    return (((this.apicId >>> 4) << 16) | (1 << (this.apicId & 0xf))) >>> 0;
  }

  // ---- MSR interface (IA32_APIC_BASE and x2APIC registers) -------------------------------------------------

  handlesMsr(msr: number): boolean {
    return msr === MSR_IA32_APIC_BASE || (msr >= X2APIC_MSR_FIRST && msr <= X2APIC_MSR_LAST);
  }

  /** RDMSR. See SDM Vol. 3A, "x2APIC Register Address Space" for the #GP conditions. */
  readMsr(msr: number): ApicMsrResult {
    if (msr === MSR_IA32_APIC_BASE) return { ok: true, value: this.readApicBase() };
    if (this.modeValue !== 'x2apic') return { ok: false, reason: `RDMSR ${intelHex(msr)}: x2APIC registers exist only in x2APIC mode` };
    const offset = (msr - X2APIC_MSR_FIRST) << 4;
    switch (offset) {
      case APIC_REG.APIC_ICR:
        return { ok: true, value: (BigInt(this.icrHigh) << 32n) | BigInt(this.icrLow) };
      case APIC_REG.APIC_EOI:
      case APIC_REG.APIC_SELF_IPI:
        return { ok: false, reason: `RDMSR ${intelHex(msr)}: write-only x2APIC register` };
      case APIC_REG.APIC_ARBPRI:
      case APIC_REG.APIC_RRR:
      case APIC_REG.APIC_DFR:
      case APIC_REG.APIC_ICR2:
        return { ok: false, reason: `RDMSR ${intelHex(msr)}: no such register in x2APIC mode` };
    }
    const v = this.readRegister(offset);
    if (v === undefined) return { ok: false, reason: `RDMSR ${intelHex(msr)}: reserved x2APIC MSR` };
    return { ok: true, value: BigInt(v) };
  }

  /** WRMSR. Non-zero writes to reserved bits raise #GP ("Reserved Bit Checking"). */
  writeMsr(msr: number, value: bigint): ApicMsrResult {
    if (msr === MSR_IA32_APIC_BASE) return this.writeApicBase(value);
    if (this.modeValue !== 'x2apic') return { ok: false, reason: `WRMSR ${intelHex(msr)}: x2APIC registers exist only in x2APIC mode` };
    const v = BigInt.asUintN(64, value);
    const offset = (msr - X2APIC_MSR_FIRST) << 4;
    if (offset === APIC_REG.APIC_ICR) {
      const low = Number(v & 0xffffffffn);
      // Delivery status (bit 12) is read-only; the other bits outside the defined fields are reserved.
      if ((low & ~(ICR_LOW_WRITABLE | LVT.DELIVERY_STATUS)) !== 0) return { ok: false, reason: 'WRMSR ICR: reserved bit set' };
      this.icrHigh = Number(v >> 32n);
      this.icrLow = low & ICR_LOW_WRITABLE;
      this.sendIpiFromIcr();
      return { ok: true, value: 0n };
    }
    if (v > 0xffffffffn) return { ok: false, reason: `WRMSR ${intelHex(msr)}: bits 63:32 are reserved` };
    const outcome = this.writeX2apicRegister(offset, Number(v));
    return outcome === true ? { ok: true, value: 0n } : { ok: false, reason: `WRMSR ${intelHex(msr)}: ${outcome}` };
  }

  private writeX2apicRegister(offset: number, v: number): WriteOutcome {
    switch (offset) {
      case APIC_REG.APIC_TASKPRI:
        if ((v & ~0xff) !== 0) return 'TPR bits 31:8 are reserved';
        break;
      case APIC_REG.APIC_EOI:
        if (v !== 0) return 'a non-zero write to EOI raises #GP';
        break;
      case APIC_REG.APIC_ESR:
        if (v !== 0) return 'a non-zero write to ESR raises #GP';
        break;
      case APIC_REG.APIC_SPIV:
        if ((v & ~SVR_WRITABLE) !== 0) return 'SVR reserved bit set';
        break;
      case APIC_REG.APIC_TDCR:
        if ((v & ~DCR_WRITABLE) !== 0) return 'divide configuration reserved bit set';
        break;
      case APIC_REG.APIC_TMICT:
        break;
      case APIC_REG.APIC_SELF_IPI:
        if ((v & ~0xff) !== 0) return 'SELF IPI bits 31:8 are reserved';
        this.acceptInterrupt(v & 0xff, false);
        return true;
      default: {
        const i = lvtIndex(offset);
        if (i >= 0) {
          const readOnly = LVT.DELIVERY_STATUS | (i === LVT_LINT0 || i === LVT_LINT1 ? LVT.REMOTE_IRR : 0);
          if ((v & ~(LVT_WRITABLE[i]! | readOnly)) !== 0) return 'LVT reserved bit set';
          break;
        }
        // ID, version, PPR, LDR, ISR/TMR/IRR, current count are read-only; DFR and ICR2 do not exist.
        return this.readRegister(offset) === undefined || offset === APIC_REG.APIC_DFR || offset === APIC_REG.APIC_ICR2
          ? 'reserved x2APIC MSR'
          : 'read-only x2APIC register';
      }
    }
    this.writeRegister(offset, v);
    return true;
  }

  // ---- xAPIC MMIO --------------------------------------------------------------------------------------------

  /**
   * MMIO read. Registers are 32 bits wide on 16-byte boundaries; the other 12 bytes of each slot read 0.
   * Outside xAPIC mode the page is not decoded by the APIC and reads as all ones.
   * See SDM Vol. 3A, "Local APIC Register Address Map" and "x2APIC Register Address Space".
   */
  read(offset: number, size: 1 | 2 | 4 | 8): bigint {
    if (this.modeValue !== 'xapic') return (1n << BigInt(size * 8)) - 1n;
    const within = offset & 0xf;
    if (within >= 4) return 0n;
    const reg = this.readXapic(offset & 0xff0);
    return BigInt.asUintN(size * 8, BigInt(reg >>> (within * 8)));
  }

  /**
   * MMIO write. The SDM defines only aligned 32-bit accesses; narrower writes and writes to bytes 4–15 of a slot
   * are ignored here.
   */
  write(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (this.modeValue !== 'xapic' || (offset & 0xf) !== 0 || size < 4) return;
    this.writeXapic(offset & 0xff0, Number(value & 0xffffffffn));
  }

  /** 32-bit xAPIC register read by offset (no BigInt); an unknown offset reads 0 and logs an ESR error. */
  readXapic(offset: number): number {
    switch (offset) {
      case APIC_REG.APIC_ID:
        return ((this.apicId & 0xff) << 24) >>> 0;
      case APIC_REG.APIC_DFR:
        return this.dfr;
      case APIC_REG.APIC_ICR2:
        return this.icrHigh;
      case APIC_REG.APIC_ARBPRI:
      case APIC_REG.APIC_RRR:
      case APIC_REG.APIC_EOI:
        return 0;
      case APIC_REG.APIC_SELF_IPI:
        break; // x2APIC only
      default: {
        const v = this.readRegister(offset);
        if (v !== undefined) return v;
      }
    }
    this.signalError(APIC_ESR.ILLEGAL_REGISTER_ADDRESS);
    return 0;
  }

  /** 32-bit xAPIC register write by offset; read-only registers ignore writes. */
  writeXapic(offset: number, v: number): void {
    switch (offset) {
      case APIC_REG.APIC_ICR2:
        this.icrHigh = v & 0xff000000;
        return;
      case APIC_REG.APIC_ICR:
        this.icrLow = v & ICR_LOW_WRITABLE;
        this.sendIpiFromIcr();
        return;
      case APIC_REG.APIC_LDR:
        this.ldr = v & 0xff000000;
        return;
      case APIC_REG.APIC_DFR:
        this.dfr = (v | 0x0fffffff) >>> 0; // bits 27:0 read as 1
        return;
      case APIC_REG.APIC_ID:
      case APIC_REG.APIC_LVR:
      case APIC_REG.APIC_PROCPRI:
      case APIC_REG.APIC_TMCCT:
        return; // read-only (the APIC ID is not software-writable in this model)
      case APIC_REG.APIC_SELF_IPI:
        this.signalError(APIC_ESR.ILLEGAL_REGISTER_ADDRESS);
        return;
      case APIC_REG.APIC_EOI:
        this.eoi(); // write-only: any value signals end of interrupt
        return;
    }
    if (this.readRegister(offset) === undefined) {
      this.signalError(APIC_ESR.ILLEGAL_REGISTER_ADDRESS);
      return;
    }
    if (offset >= APIC_REG.APIC_ISR && offset < APIC_REG.APIC_ESR) return; // ISR, TMR, IRR are read-only
    this.writeRegister(offset, v);
  }

  // ---- registers shared by both modes ------------------------------------------------------------------------

  /** Read a register that exists in both modes; undefined for a reserved offset. */
  private readRegister(offset: number): number | undefined {
    switch (offset) {
      case APIC_REG.APIC_ID:
        return this.apicId; // x2APIC ID (xAPIC reads go through readXapic)
      case APIC_REG.APIC_LVR:
        return APIC_VERSION;
      case APIC_REG.APIC_TASKPRI:
        return this.tpr;
      case APIC_REG.APIC_PROCPRI:
        return this.processorPriority();
      case APIC_REG.APIC_LDR:
        return this.ldr;
      case APIC_REG.APIC_SPIV:
        return this.svr;
      case APIC_REG.APIC_ESR:
        return this.esr;
      case APIC_REG.APIC_ICR:
        return this.icrLow;
      case APIC_REG.APIC_TMICT:
        return this.timerInitial;
      case APIC_REG.APIC_TMCCT:
        return this.timerCurrent;
      case APIC_REG.APIC_TDCR:
        return this.dcr;
    }
    if (offset >= APIC_REG.APIC_ISR && offset < APIC_REG.APIC_ESR && (offset & 0xf) === 0) {
      const word = (offset >> 4) & 7;
      const bank = offset < APIC_REG.APIC_TMR ? this.isr : offset < APIC_REG.APIC_IRR ? this.tmr : this.irr;
      return bank[word]!;
    }
    const i = lvtIndex(offset);
    return i >= 0 ? this.lvt[i]! : undefined;
  }

  /** Write a register that exists in both modes (the caller has checked access rights and reserved bits). */
  private writeRegister(offset: number, v: number): void {
    switch (offset) {
      case APIC_REG.APIC_TASKPRI:
        this.tpr = v & 0xff;
        return;
      case APIC_REG.APIC_EOI:
        this.eoi();
        return;
      case APIC_REG.APIC_SPIV:
        this.svr = v & SVR_WRITABLE;
        // Software disable masks every LVT entry. See SDM Vol. 3A, "Local APIC State After It Has Been Software
        // Disabled".
        if (!this.softwareEnabled) for (let i = 0; i < this.lvt.length; i++) this.lvt[i]! |= LVT.MASKED;
        return;
      case APIC_REG.APIC_ESR:
        // A write latches the errors logged since the previous write and clears the log. See "Error Handling".
        this.esr = this.esrPending;
        this.esrPending = 0;
        return;
      case APIC_REG.APIC_TMICT:
        // Writing the initial count starts the timer (0 stops it). See SDM Vol. 3A, "APIC Timer".
        this.timerInitial = v >>> 0;
        this.timerCurrent = this.timerInitial;
        this.timerPrescale = 0;
        return;
      case APIC_REG.APIC_TDCR:
        this.dcr = v & DCR_WRITABLE;
        return;
    }
    const i = lvtIndex(offset);
    if (i >= 0) {
      let entry = v & LVT_WRITABLE[i]!;
      if (!this.softwareEnabled) entry |= LVT.MASKED; // cannot be unmasked while software-disabled
      this.lvt[i] = entry;
    }
  }

  /** A named snapshot of the registers, for inspectors and oops reports (no side effects, no ESR logging). */
  registers(): ApicRegisterDump {
    const bank = (b: Uint32Array) => Array.from(b);
    return {
      mode: this.modeValue,
      apicBase: this.readApicBase(),
      id: this.apicId,
      tpr: this.tpr,
      ppr: this.processorPriority(),
      ldr: this.ldr,
      dfr: this.dfr,
      svr: this.svr,
      esr: this.esr,
      icr: (BigInt(this.icrHigh) << 32n) | BigInt(this.icrLow),
      lvtTimer: this.lvt[LVT_TIMER]!,
      lvtThermal: this.lvt[LVT_THERMAL]!,
      lvtPerf: this.lvt[LVT_PERF]!,
      lvtLint0: this.lvt[LVT_LINT0]!,
      lvtLint1: this.lvt[LVT_LINT1]!,
      lvtError: this.lvt[LVT_ERROR]!,
      timerInitialCount: this.timerInitial,
      timerCurrentCount: this.timerCurrent,
      timerDivide: this.timerDivide(),
      irr: bank(this.irr),
      isr: bank(this.isr),
      tmr: bank(this.tmr),
      nmiPending: this.nmiPending,
    };
  }

  // ---- interrupt acceptance and priorities -------------------------------------------------------------------

  /**
   * PPR: TPR if TPR[7:4] ≥ ISRV[7:4], else ISRV[7:4]:0, where ISRV is the highest vector in service.
   * See SDM Vol. 3A, "Processor Priority Register (PPR)".
   */
  processorPriority(): number {
    const isrv = highestBit(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrClass ? this.tpr : isrClass;
  }

  /**
   * The vector the APIC would deliver now, or −1: the highest IRR vector whose priority class is above the PPR's.
   * See SDM Vol. 3A, "Interrupt, Task, and Processor Priority".
   */
  pendingVector(): number {
    if (this.modeValue === 'disabled') return -1;
    const v = highestBit(this.irr);
    if (v < 0 || (v & 0xf0) <= (this.processorPriority() & 0xf0)) return -1;
    return v;
  }

  /** The processor took `vector` (INTA): IRR → ISR. */
  acknowledge(vector: number): void {
    clearBit(this.irr, vector);
    setBit(this.isr, vector);
  }

  /** EOI: retire the highest-priority vector in service. See SDM Vol. 3A, "Signaling Interrupt Servicing Completion". */
  private eoi(): void {
    const v = highestBit(this.isr);
    if (v >= 0) clearBit(this.isr, v);
  }

  /** Accept a fixed interrupt into IRR (TMR records the trigger mode). Vectors 0–15 are illegal. */
  private acceptInterrupt(vector: number, levelTriggered: boolean): void {
    if (vector < 16) {
      this.signalError(APIC_ESR.RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(this.irr, vector);
    if (levelTriggered) setBit(this.tmr, vector);
    else clearBit(this.tmr, vector);
  }

  /** Log an error and raise the LVT error interrupt. See SDM Vol. 3A, "Error Handling". */
  private signalError(bit: number): void {
    const first = (this.esrPending & bit) === 0;
    this.esrPending |= bit;
    const entry = this.lvt[LVT_ERROR]!;
    // Guard against an illegal error vector logging errors forever.
    if (first && (entry & LVT.MASKED) === 0 && (entry & 0xff) >= 16) this.acceptInterrupt(entry & 0xff, false);
  }

  /** An edge on LINT0 or LINT1, delivered as its LVT entry says (fixed or NMI; ExtINT/SMI are not modeled). */
  raiseLint(pin: 0 | 1): void {
    if (this.modeValue === 'disabled') return;
    const entry = this.lvt[pin === 0 ? LVT_LINT0 : LVT_LINT1]!;
    if ((entry & LVT.MASKED) !== 0) return;
    const dm = (entry >> 8) & 7;
    if (dm === LVT_DM.FIXED) this.acceptInterrupt(entry & 0xff, (entry & LVT.LEVEL_TRIGGER) !== 0);
    else if (dm === LVT_DM.NMI) this.nmiPending = true;
    else if (dm === LVT_DM.INIT) this.onInit?.();
  }

  // ---- timer ------------------------------------------------------------------------------------------------

  /** Divide value from the divide configuration register (bits 3, 1:0): 2, 4, …, 128, then 1 for 111B. */
  timerDivide(): number {
    const code = ((this.dcr >> 1) & 4) | (this.dcr & 3);
    return code === 7 ? 1 : 2 << code;
  }

  /**
   * Advance the timer by `cycles` bus clocks. The current count drops by one every `timerDivide()` clocks; at 0
   * the LVT timer vector is raised (unless masked) and a periodic timer reloads the initial count. Expirations
   * that fall into one call coalesce, as they would in IRR. See SDM Vol. 3A, "APIC Timer".
   */
  tick(cycles: number): void {
    if (this.timerCurrent === 0 || !(cycles > 0)) return; // also rejects NaN
    const divide = this.timerDivide();
    const total = this.timerPrescale + cycles;
    const decrements = Math.floor(total / divide);
    this.timerPrescale = total - decrements * divide;
    if (decrements < this.timerCurrent) {
      this.timerCurrent -= decrements;
      return;
    }
    const beyond = decrements - this.timerCurrent;
    const entry = this.lvt[LVT_TIMER]!;
    if ((entry & LVT.TIMER_PERIODIC) !== 0) {
      this.timerCurrent = this.timerInitial - (beyond % this.timerInitial);
    } else {
      this.timerCurrent = 0;
      this.timerPrescale = 0;
    }
    if ((entry & LVT.MASKED) === 0) this.acceptInterrupt(entry & 0xff, false);
  }

  /** Bus clocks until the timer next reaches 0 (Infinity when stopped): lets the run loop stop exactly there. */
  cyclesUntilTimer(): number {
    if (this.timerCurrent === 0) return Infinity;
    return this.timerCurrent * this.timerDivide() - this.timerPrescale;
  }

  // ---- IPIs -------------------------------------------------------------------------------------------------

  /** Decode the ICR and hand the IPI to the bus. See SDM Vol. 3A, "Interrupt Command Register (ICR)". */
  private sendIpiFromIcr(): void {
    const low = this.icrLow;
    const vector = low & 0xff;
    const dm = (low >> 8) & 7;
    const level = (low & (1 << 14)) !== 0;
    const trigger = (low & (1 << 15)) !== 0 ? 'level' : 'edge';
    const modes: (ApicDeliveryMode | undefined)[] = ['fixed', 'lowest', 'smi', undefined, 'nmi', 'init', 'startup', undefined];
    let deliveryMode = modes[dm];
    if (deliveryMode === undefined) return; // reserved delivery modes send nothing
    if (deliveryMode === 'init' && !level && trigger === 'level') deliveryMode = 'init-deassert';
    if ((deliveryMode === 'fixed' || deliveryMode === 'lowest') && vector < 16) {
      this.signalError(APIC_ESR.SEND_ILLEGAL_VECTOR);
      return;
    }
    const shorthands = ['none', 'self', 'all-including-self', 'all-excluding-self'] as const;
    const ipi: ApicIpi = {
      vector,
      deliveryMode,
      destMode: (low & (1 << 11)) !== 0 ? 'logical' : 'physical',
      destination: this.modeValue === 'x2apic' ? this.icrHigh >>> 0 : this.icrHigh >>> 24,
      shorthand: shorthands[(low >> 18) & 3]!,
      level,
      trigger,
    };
    if (this.bus !== undefined) {
      this.bus.sendIpi(this.apicId, ipi);
    } else if (
      // An APIC on no bus (a one-processor machine) can still interrupt itself.
      ipi.shorthand === 'self' ||
      ipi.shorthand === 'all-including-self' ||
      (ipi.shorthand === 'none' && this.matchesDestination(ipi.destMode, ipi.destination))
    ) {
      this.deliver(ipi);
    }
  }

  /** Receive an IPI from the bus. See SDM Vol. 3A, "Interrupt Command Register (ICR)" for the delivery modes. */
  deliver(ipi: ApicIpi): void {
    if (this.modeValue === 'disabled') return;
    switch (ipi.deliveryMode) {
      case 'fixed':
      case 'lowest':
        // A software-disabled APIC does not accept fixed interrupts (it still takes NMI, INIT and SIPI).
        if (this.softwareEnabled) this.acceptInterrupt(ipi.vector, ipi.trigger === 'level');
        return;
      case 'nmi':
        this.nmiPending = true;
        return;
      case 'init':
        this.onInit?.();
        return;
      case 'startup':
        this.onStartup?.(ipi.vector);
        return;
      case 'smi':
      case 'init-deassert':
        return; // no SMM; INIT level de-assert only resynchronises arbitration IDs
    }
  }

  /**
   * Does this APIC belong to the destination? Physical: the APIC ID or the broadcast ID (FFH / FFFFFFFFH).
   * Logical: flat or cluster model (DFR) in xAPIC mode; cluster ID and bit mask in x2APIC mode.
   * See SDM Vol. 3A, "Determining IPI Destination" and "Logical Destination Mode in x2APIC Mode".
   */
  matchesDestination(destMode: 'physical' | 'logical', destination: number): boolean {
    if (this.modeValue === 'disabled') return false;
    if (this.modeValue === 'x2apic') {
      const dest = destination >>> 0;
      if (dest === 0xffffffff) return true;
      if (destMode === 'physical') return dest === this.apicId;
      return dest >>> 16 === this.ldr >>> 16 && (dest & this.ldr & 0xffff) !== 0;
    }
    const dest = destination & 0xff;
    if (destMode === 'physical') return dest === 0xff || dest === (this.apicId & 0xff);
    const logicalId = this.ldr >>> 24;
    if (this.dfr >>> 28 === 0xf) return (logicalId & dest) !== 0; // flat model
    // Cluster model: bits 7:4 name the cluster (FH = all clusters), bits 3:0 select processors in it.
    const cluster = dest >> 4;
    return (cluster === 0xf || cluster === logicalId >> 4) && (dest & logicalId & 0xf) !== 0;
  }
}

/**
 * Routes IPIs among a machine's APICs by shorthand, physical or logical destination. Delivery is immediate, so the
 * sender's delivery-status bit is always idle. Lowest-priority delivery picks the target with the lowest PPR
 * (ties: the first attached), a deterministic choice among those the SDM allows.
 */
export class ApicBusImpl implements ApicBus {
  private readonly apics: LocalApic[] = [];

  constructor(apics: Iterable<LocalApic> = []) {
    for (const a of apics) this.attach(a);
  }

  attach(apic: LocalApic): void {
    this.apics.push(apic);
    apic.bus = this;
  }

  sendIpi(from: number, ipi: ApicIpi): void {
    let targets: LocalApic[];
    if (ipi.deliveryMode === 'init-deassert') targets = this.apics; // sent to all, regardless of destination
    else if (ipi.shorthand === 'self') targets = this.apics.filter((a) => a.apicId === from);
    else if (ipi.shorthand === 'all-including-self') targets = this.apics;
    else if (ipi.shorthand === 'all-excluding-self') targets = this.apics.filter((a) => a.apicId !== from);
    else targets = this.apics.filter((a) => a.matchesDestination(ipi.destMode, ipi.destination));
    if (ipi.deliveryMode === 'lowest' && targets.length > 1) {
      let best = targets[0]!;
      for (const t of targets) if ((t.processorPriority() & 0xf0) < (best.processorPriority() & 0xf0)) best = t;
      targets = [best];
    }
    for (const t of targets) t.deliver(ipi);
  }
}

function lvtIndex(offset: number): number {
  if (offset < APIC_REG.APIC_LVTT || offset > APIC_REG.APIC_LVTERR || (offset & 0xf) !== 0) return -1;
  return (offset - APIC_REG.APIC_LVTT) >> 4;
}

function setBit(bank: Uint32Array, vector: number): void {
  bank[vector >>> 5]! |= 1 << (vector & 31);
}

function clearBit(bank: Uint32Array, vector: number): void {
  bank[vector >>> 5]! &= ~(1 << (vector & 31));
}

/** Highest set vector in a 256-bit register bank, or −1. */
function highestBit(bank: Uint32Array): number {
  for (let w = 7; w >= 0; w--) {
    const word = bank[w]!;
    if (word !== 0) return w * 32 + 31 - Math.clz32(word);
  }
  return -1;
}

