// The emulated PC: physical memory, I/O ports, logical processors (each with its local APIC), and a
// deterministic run loop: round-robin over the LPs with a fixed quantum (a turn ends at a block boundary), ending on
// a budget.

import { PhysicalMemory } from './memory.ts';
import { IoSpace } from './io.ts';
import { LogicalProcessor } from './lp.ts';
import { Executor } from './cpu.ts';
import { LocalApic, ApicBusImpl } from './apic.ts';
import { hasFeature, type CpuModel } from './cpu-model.ts';
import { MSR_IA32_FEATURE_CONTROL } from '../x86/msr.ts';
import { CPUID_FEATURE } from '../x86/cpuid.ts';
import { MtrrRegisters } from './memtype/mtrr-registers.ts';
import { mtrrCapOf } from './memtype/mtrrcap.ts';
import { BOARDS, programFirmwareMtrrs, type BoardName } from './memtype/firmware.ts';

export interface MachineOptions {
  /** Number of logical processors (default 1). LP 0 is the bootstrap processor. */
  cpus?: number;
  /** RAM size in bytes (default 64 MiB). */
  ramBytes?: number;
  /** CPU model: CPUID, MAXPHYADDR, MSR defaults (default: the built-in minimal CPUID). */
  model?: CpuModel;
  /**
   * Instructions per LP turn in the round-robin (default 1000). A turn ends at the first block boundary after that
   * (see Machine.run), so it can be up to a block longer; the next turn of that LP is that much shorter.
   */
  quantum?: number;
  /** Give every LP a local APIC (default true). */
  apic?: boolean;
  /** Whose firmware programmed the MTRRs at boot (default 'pc'; see src/machine/memtype/firmware.ts). Needs a model. */
  board?: BoardName;
}

/**
 * 'breakpoint': an LP is about to execute an address given to addBreakpoint. 'host-entry': a VM exit (or a VM-entry
 * failure) loaded HOST_RIP with an address given to addHostEntry — the caller runs the host code for it.
 */
export type StopReason = 'all-halted' | 'shutdown' | 'budget' | 'breakpoint' | 'host-entry';

export interface RunResult {
  reason: StopReason;
  /** Instructions executed by this call (all LPs). */
  instructions: number;
  /** The LP that caused the stop (shutdown, breakpoint, host entry). */
  lp?: LogicalProcessor;
  /** E.g. the shutdown reason, the breakpoint or host-entry address. */
  detail?: string;
}

export class Machine {
  readonly memory: PhysicalMemory;
  readonly io: IoSpace;
  readonly cpus: LogicalProcessor[] = [];
  readonly apicBus: ApicBusImpl | null;
  readonly model: CpuModel | undefined;
  quantum: number;
  private nextLp = 0;
  /** Per LP: its executor (lp.executor is the narrower ExecutorSeam). */
  private readonly executors: Executor[] = [];
  /** Per LP: how many instructions its last turn ran past its length to end at a block boundary (see run). */
  private readonly overrun: number[] = [];
  /** Host entry points (addHostEntry), shared by every LP's executor. Kernel-text addresses are negative numbers. */
  private readonly hostEntries = new Set<number>();

  constructor(opts: MachineOptions = {}) {
    const n = opts.cpus ?? 1;
    this.memory = new PhysicalMemory({ ramBytes: opts.ramBytes ?? 64 * 1024 * 1024 });
    this.io = new IoSpace();
    this.quantum = opts.quantum ?? 1000;
    this.model = opts.model;
    this.apicBus = opts.apic === false ? null : new ApicBusImpl();
    for (let i = 0; i < n; i++) {
      const lp = new LogicalProcessor({
        id: i, memory: this.memory, io: this.io, bsp: i === 0, maxPhysAddr: opts.model?.maxPhysAddr,
      });
      if (opts.model) applyModel(lp, opts.model, n, opts.board ?? 'pc');
      const executor = new Executor(lp, this.hostEntries);
      lp.executor = executor;
      this.executors.push(executor);
      if (this.apicBus) {
        const apic = new LocalApic({ apicId: i, bsp: i === 0, maxPhysAddr: lp.maxPhysAddr });
        this.apicBus.attach(apic);
        lp.apic = apic;
        lp.interruptSource = apic;
        // INIT and SIPI from other processors' IPIs. See SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems".
        apic.onInit = () => {
          lp.initPending = true; // acted on at the LP's next instruction boundary
        };
        apic.onStartup = (vector) => lp.startup(vector);
      }
      this.cpus.push(lp);
      this.overrun.push(0);
    }
  }

  /**
   * Run until every LP is halted (or waiting for SIPI / shut down), one shuts down, a breakpoint is hit, or
   * `maxInstructions` have executed. Deterministic: LPs take turns of `quantum` instructions in id order.
   *
   * A turn that reaches its length inside a block finishes the block (a compiled loop: the iteration in progress)
   * and is charged for it: the LP's next turn is shorter by as much (but at least one instruction long, so with a
   * quantum shorter than the blocks every turn is one block). Ending a turn at an exact count would run the rest of
   * the block in the interpreter, about 40 times slower than compiled code, and start the next turn in the middle
   * of the block (issue 11). The SDM promises no particular interleaving of logical processors; this one stays the
   * same for the same inputs. Two limits are exact, never overrun: `maxInstructions` (a runaway guest ends at its
   * budget) and the LP's APIC timer expiry (the turn ends when the timer fires).
   */
  run(opts: { maxInstructions: number }): RunResult {
    let executed = 0;
    const max = opts.maxInstructions;
    while (executed < max) {
      let progress = false;
      for (let k = 0; k < this.cpus.length && executed < max; k++) {
        const id = this.nextLp;
        const lp = this.cpus[id]!;
        this.nextLp = (id + 1) % this.cpus.length;
        let limit = max - executed;
        const apic = lp.apic as LocalApic | null;
        // End the turn exactly when the APIC timer fires, so timer interrupts are deterministic and prompt.
        if (apic !== null) limit = Math.max(1, Math.min(limit, apic.cyclesUntilTimer()));
        // Likewise a halted guest's VMX-preemption timer: its TSC runs on to the expiry, no further.
        if (lp.activity === 'hlt') limit = Math.max(1, Math.min(limit, idleExitTicks(lp)));
        const turn = Math.min(limit, Math.max(1, this.quantum - this.overrun[id]!));
        const before = lp.instructions;
        const n = this.executors[id]!.run(limit, turn);
        this.overrun[id] = n > turn ? n - turn : 0;
        executed += n;
        if (n > 0) progress = true;
        const elapsed = lp.instructions - before;
        // The TSC counts retired instructions; a halted LP's runs on with the turn, as its APIC timer does (the
        // TSC and the preemption timer count in the HLT state). See SDM Vol. 3B, "Time-Stamp Counter", and
        // Vol. 3C, "VMX-Preemption Timer".
        const idle = lp.activity === 'hlt' && elapsed === 0;
        if (idle) lp.tscOffset += turn;
        if (apic !== null) {
          // One APIC timer clock per retired instruction; a halted LP's timer runs on with the turn.
          const pendingBefore = apic.pendingVector() >= 0;
          apic.tick(idle ? turn : elapsed);
          // A halted LP may wake on an interrupt that just became pending. One that was pending already and did
          // not wake it is blocked (RFLAGS.IF = 0): that is no progress, or a `cli; hlt` would spin forever.
          if (lp.activity === 'hlt' && !pendingBefore && apic.pendingVector() >= 0) progress = true;
        }
        if (lp.activity === 'shutdown') return { reason: 'shutdown', instructions: executed, lp, detail: lp.shutdownReason };
        if (lp.executor!.atHostEntry === lp.rip) {
          return { reason: 'host-entry', instructions: executed, lp, detail: `RIP ${ripHex(lp.rip)}H` };
        }
        if (lp.executor!.hitBreakpoint === lp.rip) {
          return { reason: 'breakpoint', instructions: executed, lp, detail: `RIP ${ripHex(lp.rip)}H` };
        }
      }
      if (!progress) {
        if (!this.anyTimerRunning()) return { reason: 'all-halted', instructions: executed };
        // Everyone is halted waiting for a timer: idle time counts against the budget, so this ends too.
        executed += Math.min(this.quantum, max - executed);
      }
    }
    return { reason: 'budget', instructions: executed };
  }

  /** A halted LP waits for its APIC timer or, in a guest, its VMX-preemption timer. */
  private anyTimerRunning(): boolean {
    return this.cpus.some((lp) => lp.activity === 'hlt' &&
      ((lp.apic !== null && (lp.apic as LocalApic).cyclesUntilTimer() !== Infinity) || idleExitTicks(lp) !== Infinity));
  }

  /**
   * Make `rip` a host entry point on every LP: when a VM exit or a VM-entry failure loads it from HOST_RIP (or an
   * event delivered through the IDT lands on it), run() stops with reason 'host-entry', and stops again at every
   * run() while the LP's RIP is still there, so the caller can run host code written in TypeScript for it
   * (Kernel.hostEntry). Unlike a breakpoint this costs the executor nothing per instruction: guests keep running
   * in blocks and compiled code. See SDM Vol. 3C, "Loading Host RIP, RSP, RFLAGS, and SSP".
   */
  addHostEntry(rip: bigint | number): void {
    this.hostEntries.add(Number(BigInt.asIntN(64, BigInt(rip))));
  }

  /** Stop when `lp` (default LP 0) is about to execute the instruction at `rip`. */
  addBreakpoint(rip: bigint | number, lp = 0): void {
    this.cpus[lp]!.executor!.breakpoints.add(Number(BigInt.asIntN(64, BigInt(rip))));
  }
  removeBreakpoint(rip: bigint | number, lp = 0): void {
    this.cpus[lp]!.executor!.breakpoints.delete(Number(BigInt.asIntN(64, BigInt(rip))));
  }
}

/** TSC ticks until a halted guest's boundary exit (the VMX-preemption timer), Infinity outside a guest or without one. */
function idleExitTicks(lp: LogicalProcessor): number {
  const vmx = lp.vmx;
  return vmx !== null && vmx.nonRoot && vmx.ticksUntilIdleExit !== undefined ? vmx.ticksUntilIdleExit(lp) : Infinity;
}

/**
 * Configure an LP from a CPU model: CPUID, the model's MSRs as read-only values (except IA32_FEATURE_CONTROL), and
 * the MTRRs as the board's firmware left them.
 */
function applyModel(lp: LogicalProcessor, model: CpuModel, count: number, board: BoardName): void {
  lp.cpuidSource = (leaf, subleaf, p) => model.cpuid(leaf, subleaf, {
    apicId: p.id,
    logicalProcessorCount: count,
    cr4: p.cr4,
    xcr0: p.xcr0,
    apicGlobalEnable: p.apic === null || p.apic.mode !== 'disabled',
    in64BitMode: p.bits === 64,
  });
  for (const [msr, value] of model.msrs) {
    if (msr === MSR_IA32_FEATURE_CONTROL || lp.hasMsr(msr)) continue;
    lp.definePlainMsr(msr, value, false);
  }
  if (hasFeature(model, CPUID_FEATURE.MTRR)) {
    const mtrrs = new MtrrRegisters(mtrrCapOf(model), lp.maxPhysAddr);
    mtrrs.install(lp);
    programFirmwareMtrrs(mtrrs, BOARDS[board]);
  }
  // The register state after reset reports the model's signature in EDX.
  lp.regLo[2] = model.cpuid(1, 0).eax | 0;
}

/**
 * RIP (held as a signed number) in hex as an unsigned 64-bit value. A host entry stops the run once per VM exit, at
 * one of a few RIPs: their text is kept (formatting a 64-bit value costs more than the rest of the stop).
 */
export function ripHex(rip: number): string {
  let text = RIP_TEXT.get(rip);
  if (text === undefined) {
    text = BigInt.asUintN(64, BigInt(rip)).toString(16);
    if (RIP_TEXT.size >= RIP_TEXT_MAX) RIP_TEXT.clear();
    RIP_TEXT.set(rip, text);
  }
  return text;
}
const RIP_TEXT = new Map<number, string>();
const RIP_TEXT_MAX = 256;
