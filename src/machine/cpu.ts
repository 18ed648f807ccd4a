// The execution loop of one logical processor: instruction-boundary events (NMI, interrupts, single-step),
// fetch through the code cache, execute, and fault delivery.
// See SDM Vol. 3A, "Priority Among Concurrent Events" and "Exception and Interrupt Handling".

import { RFLAGS } from '../x86/flags.ts';
import { DB_VECTOR, NMI_VECTOR } from '../x86/exceptions.ts';
import { DR6 } from '../x86/control-registers.ts';

const DR6_BS = DR6.BS;
import { CpuFault } from './fault.ts';
import { decode, type ByteSource } from './decoder.ts';
import { Insn, OP_INVALID } from './insn.ts';
import { execute, deliverFault } from './execute.ts';
import { deliverWithDoubleFault, EVENT_EXTERNAL, EVENT_HW_EXCEPTION, EVENT_NMI } from './interrupts.ts';
import type { LogicalProcessor } from './lp.ts';
import { Block, CodeCache, codeCacheFor, MAX_BLOCK } from './code-cache.ts';
import { ACCESS_EXEC } from './paging.ts';
import { compileBlock, JIT_THRESHOLD } from './jit.ts';
import { VmExitTaken, inVmxNonRoot, vmExitTakes, type VmxInterceptEvent } from './vmx-seam.ts';

/** The one NMI event (it carries no data): offering an NMI to VMX allocates nothing. */
const NMI_EVENT: VmxInterceptEvent = Object.freeze({ kind: 'nmi' });

/** Fetches instruction bytes through the LP's paging (faults like an instruction fetch). */
class FetchSource implements ByteSource {
  lp!: LogicalProcessor;
  base = 0;
  byte(i: number): number {
    return this.lp.fetch8(this.base + i);
  }
}

/** Fetches from one RAM frame only; reading past its end throws PAGE_END (the block stops there). */
const PAGE_END = { pageEnd: true };
class FrameSource implements ByteSource {
  frame!: Uint8Array;
  off = 0;
  byte(i: number): number {
    const o = this.off + i;
    if (o >= 4096) throw PAGE_END;
    return this.frame[o]!;
  }
}

/** Per-LP execution helpers (decoded-instruction scratch, byte sources). */
export class Executor {
  readonly cache: CodeCache;
  private readonly scratchInsn = new Insn();
  private readonly fetchSrc = new FetchSource();
  private readonly frameSrc = new FrameSource();
  /** Called after every instruction retires in single-step mode (tests, tracers, breakpoints). */
  breakpoints = new Set<number>();
  /** The breakpoint address this executor stopped at (NaN: none). Kernel-text addresses are negative numbers. */
  hitBreakpoint = NaN;
  /** The host entry point this executor stopped at (NaN: none): see `hostEntries`. */
  atHostEntry = NaN;
  /** Blocks run (counted for tests that check the guest does not fall back to one instruction at a time). */
  blocksRun = 0;
  /** Use the code cache (false: decode every instruction, for differential testing of the cache). */
  useCache = true;
  useJit = true;

  /**
   * @param hostEntries Host entry points (Machine.addHostEntry): RIPs where host code written in TypeScript runs
   *   instead of the bytes found there. The executor stops when a VM exit or VM-entry failure lands on one.
   */
  constructor(readonly lp: LogicalProcessor, private readonly hostEntries: ReadonlySet<number> = new Set()) {
    this.cache = codeCacheFor(lp.memory);
    // Every context: a host entry that kept its fast write path to a frame now holding code would bypass the cache.
    this.cache.onWatch.push(() => lp.tlb.flushAllContexts());
    this.fetchSrc.lp = lp;
  }

  /**
   * Run up to `budget` instruction steps. Returns the number executed (a faulting attempt counts as one, so a
   * guest that faults forever still ends). Stops early when the LP stops being active, hits a breakpoint or is
   * at a host entry point.
   *
   * `stopAfter` (at most `budget`) lets the run end at a block boundary rather than at an exact count: once
   * `stopAfter` steps have run it stops, but a block (or a compiled loop's iteration) already started runs to its
   * end if `budget` allows. A round-robin turn ends like this, so the end of a turn is compiled code too and not
   * the last instructions of a block interpreted one at a time; `budget` stays exact (the whole run's limit, the
   * APIC timer's expiry).
   */
  run(budget: number, stopAfter = budget): number {
    const lp = this.lp;
    if (stopAfter > budget) stopAfter = budget;
    let done = 0;
    this.atHostEntry = NaN;
    // An LP may also start this run at a host entry (its RIP set there by host code, or a stop not yet handled).
    if (this.hostEntries.size !== 0) lp.checkHostEntry = true;
    while (done < stopAfter) {
      if (lp.workDebt !== 0) {
        // REP iterations count against the budget (see LogicalProcessor.workDebt).
        done += lp.workDebt;
        lp.workDebt = 0;
        if (done >= stopAfter) break;
      }
      // First: an INIT in VMX non-root operation is a VM exit, which loads HOST_RIP for the check below.
      if (lp.initPending) lp.performInit();
      if (lp.checkHostEntry) {
        // A VM exit (or a VM-entry failure) has just loaded RIP from HOST_RIP, or an event was delivered through
        // the IDT: when RIP is now a host entry point, stop before fetching, and the caller runs its TypeScript code.
        // Checked only after such a load, so guests run in blocks and compiled code whatever entries exist (a
        // breakpoint would force one instruction at a time). See SDM Vol. 3C, "VM Exits" and "Loading Host RIP,
        // RSP, RFLAGS, and SSP".
        lp.checkHostEntry = false;
        if (this.hostEntries.has(lp.rip)) {
          this.atHostEntry = lp.rip;
          break;
        }
      }
      if (lp.activity !== 'active') {
        // MTF, preemption-timer and window VM exits happen in the HLT state too. See SDM Vol. 3C, "Activity State".
        if (lp.activity === 'hlt' && lp.vmx !== null && lp.vmx.nonRoot && lp.vmx.boundaryHook && lp.vmx.atBoundary?.(lp)) continue;
        if (!this.wake()) break;
        continue;
      }
      const vmx = lp.vmx;
      if (vmx !== null && vmx.nonRoot && vmx.boundaryHook) {
        // Per-instruction VMX work (MTF, window exits, preemption timer): no blocks while it is wanted.
        if (vmx.atBoundary?.(lp)) {
          done++;
          continue;
        }
        if (this.acceptEvents()) continue;
        this.stepOne();
        done++;
        continue;
      }
      if (this.acceptEvents()) {
        continue;
      }
      if (this.breakpoints.size !== 0 && this.breakpoints.has(lp.rip)) {
        if (this.hitBreakpoint !== lp.rip) {
          this.hitBreakpoint = lp.rip;
          break;
        }
      }
      this.hitBreakpoint = NaN;
      if (lp.rflagsRaw & RFLAGS.TF || lp.shadowAt >= lp.instructions || !this.useCache || this.breakpoints.size !== 0) {
        this.stepOne();
        done++;
      } else done += this.runBlock(budget - done, stopAfter - done);
    }
    return done;
  }

  /** One instruction with full decode (no cache), plus TF single-step. */
  stepOne(): void {
    const lp = this.lp;
    const start = lp.rip;
    const tf = (lp.rflagsRaw & RFLAGS.TF) !== 0;
    const nonRoot = lp.vmx !== null && lp.vmx.nonRoot;
    try {
      this.fetchSrc.base = lp.segEffBase[1]! + start;
      if (lp.bits !== 64) this.fetchSrc.base = (lp.segBase[1]! + start) >>> 0;
      decode(this.scratchInsn, lp.bits, this.fetchSrc);
      execute(lp, this.scratchInsn);
      lp.instructions++;
    } catch (e) {
      if (e instanceof VmExitTaken) return;
      if (!(e instanceof CpuFault)) throw e;
      deliverFault(lp, e, start);
      return;
    }
    // Single-step trap after the instruction. See SDM Vol. 3A, "Single-Step Exception Condition".
    // Not after an instruction that caused a VM exit: the host runs now, and the guest's trap is not delivered to it.
    if (tf && lp.activity !== 'shutdown' && !(nonRoot && !lp.vmx!.nonRoot)) {
      // A pending MTF VM exit outranks the trap: VMX keeps it as a pending debug exception (BS) for that exit to save.
      if (nonRoot && lp.vmx!.holdDebugTrap?.(lp, DR6_BS)) return;
      if (lp.activity === 'hlt') lp.activity = 'active'; // the trap is an event: it ends the halt
      lp.pendingDr6 = DR6_BS; // loaded into DR6 when the #DB is delivered
      deliverWithDoubleFault(lp, { vector: DB_VECTOR, errorCode: -1, explanation: 'single-step trap (RFLAGS.TF)' }, EVENT_HW_EXCEPTION, lp.rip, 0);
    }
  }

  /**
   * Run the block at RIP: at most `budget` instructions, and whole if it fits (a compiled loop: whole iterations
   * while they fit, and none started once `stopAfter` have run).
   */
  private runBlock(budget: number, stopAfter: number): number {
    const lp = this.lp;
    const start = lp.rip;
    this.blocksRun++;
    let pa: number;
    try {
      const la = lp.bits === 64 ? start : (lp.segBase[1]! + start) >>> 0;
      pa = lp.translate(la, ACCESS_EXEC);
    } catch (e) {
      if (e instanceof VmExitTaken) return 1;
      if (!(e instanceof CpuFault)) throw e;
      deliverFault(lp, e, start);
      return 1;
    }
    const key = CodeCache.keyOf(pa, lp.bits);
    let block: Block | null | undefined = this.cache.get(key);
    if (block === undefined) block = this.buildBlock(pa, key);
    if (block === null) {
      this.stepOne();
      return 1;
    }
    const insns = block.insns;
    const n = insns.length;
    let i = 0;
    let done = 0;
    if (block.compiled !== null && n <= budget) {
      const before = lp.instructions;
      try {
        // A compiled loop runs iterations while the next fits in its budget: this one lets it finish the iteration
        // in progress when `stopAfter` falls inside it, and start none after.
        done = block.compiled(lp as never, Math.min(budget, stopAfter + block.compiledCount - 1));
      } catch (e) {
        if (e instanceof VmExitTaken) return lp.instructions - before + 1;
        if (!(e instanceof CpuFault)) throw e;
        // The compiled code left RIP at the faulting instruction and counted those before it.
        deliverFault(lp, e, lp.rip);
        return lp.instructions - before + 1;
      }
      // Continue in the interpreter only if the compiled prefix ran to its end without branching.
      if (block.compiledEnds || done !== block.compiledCount || lp.rip !== start + block.offsetOf(done)) {
        if (done > 0) return done;
      } else i = done;
    } else if (++block.hits >= JIT_THRESHOLD && block.compiled === null && !block.jitFailed && this.useJit) {
      block.compiled = compileBlock(block) as typeof block.compiled;
      if (block.compiled === null) block.jitFailed = true;
    }
    const epoch = this.cache.epoch;
    try {
      for (; i < n && i < budget; i++) {
        const d = insns[i]!;
        const end = execute(lp, d);
        lp.instructions++;
        if (end || this.cache.epoch !== epoch) return i + 1;
      }
    } catch (e) {
      if (e instanceof VmExitTaken) return i + 1;
      if (!(e instanceof CpuFault)) throw e;
      deliverFault(lp, e, lp.rip);
      return i + 1;
    }
    return i;
  }

  /** Decode a block at physical `pa`. Null when the first instruction is not cacheable (MMIO, page-crossing). */
  private buildBlock(pa: number, key: number): Block | null {
    const lp = this.lp;
    const pfn = Math.floor(pa / 4096);
    const frame = lp.memory.frame(pfn, false);
    if (frame === undefined) return null;
    const src = this.frameSrc;
    src.frame = frame;
    const insns: Insn[] = [];
    let off = pa & 0xfff;
    let bytes = 0;
    while (insns.length < MAX_BLOCK) {
      src.off = off;
      const d = new Insn();
      try {
        decode(d, lp.bits, src);
      } catch (e) {
        if (e === PAGE_END || e instanceof CpuFault) break;
        throw e;
      }
      insns.push(d);
      off += d.len;
      bytes += d.len;
      if (!isStraightLine(d)) break;
    }
    if (insns.length === 0) return null;
    const block = new Block(this.cache, key, insns, bytes);
    this.cache.add(block, pfn);
    return block;
  }

  /**
   * Wake from HLT on a deliverable NMI/interrupt. See SDM Vol. 2A, "HLT—Halt". In VMX non-root operation the
   * event is offered to VMX first: if it causes a VM exit, the exit happens from the HLT state (the guest's
   * activity state is saved as HLT). See SDM Vol. 3C, "Saving Non-Register State".
   */
  private wake(): boolean {
    const lp = this.lp;
    if (lp.activity !== 'hlt') return false;
    if (nmiRequested(lp) && !lp.nmiBlocked) {
      if (inVmxNonRoot(lp) && vmExitTakes(lp, NMI_EVENT)) consumeNmi(lp);
      else lp.activity = 'active';
      return true;
    }
    const v = this.interruptToOffer();
    if (v >= 0) {
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'external-interrupt', vector: v })) return true;
      if (lp.rflagsRaw & RFLAGS.IF) {
        lp.activity = 'active';
        return true;
      }
    }
    return false;
  }

  /** Deliver a pending NMI or maskable interrupt at this instruction boundary. Returns true if one was taken. */
  private acceptEvents(): boolean {
    const lp = this.lp;
    // The instruction after STI / MOV SS runs before any interrupt (and, for MOV SS, NMI) is recognised.
    if (lp.shadowAt === lp.instructions) return false;
    if (nmiRequested(lp) && !lp.nmiBlocked) {
      // An NMI that causes a VM exit is consumed by it (VMX then blocks NMIs, see ../vmx/nonroot/interrupts.ts).
      const exited = inVmxNonRoot(lp) && vmExitTakes(lp, NMI_EVENT);
      consumeNmi(lp);
      if (!exited) deliverWithDoubleFault(lp, { vector: NMI_VECTOR, errorCode: -1, explanation: 'NMI' }, EVENT_NMI, lp.rip, 0);
      return true;
    }
    const v = this.interruptToOffer();
    if (v >= 0) {
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'external-interrupt', vector: v })) return true;
      if (lp.rflagsRaw & RFLAGS.IF) {
        lp.interruptSource!.acknowledge(v);
        deliverWithDoubleFault(lp, { vector: v, errorCode: -1, explanation: `external interrupt ${v}` }, EVENT_EXTERNAL, lp.rip, 0);
        return true;
      }
    }
    return false;
  }

  /**
   * The pending external interrupt to consider, or −1. RFLAGS.IF = 0 blocks it, except in VMX non-root operation:
   * with "external-interrupt exiting" IF does not block external interrupts (they cause VM exits), so there the
   * interrupt is offered to VMX whatever IF says, and delivered only if IF = 1. See SDM Vol. 3C, "Changes to
   * Event Blocking" ("Blocking of external interrupts").
   */
  private interruptToOffer(): number {
    const lp = this.lp;
    if (lp.interruptSource === null) return -1;
    if (!(lp.rflagsRaw & RFLAGS.IF) && (lp.vmx === null || !lp.vmx.nonRoot)) return -1;
    return lp.interruptSource.pendingVector();
  }
}

/** The NMI is taken (delivered, or consumed by a VM exit): it is no longer pending. */
function consumeNmi(lp: LogicalProcessor): void {
  lp.nmiPending = false;
  if (lp.apic) lp.apic.nmiPending = false;
}

/** An NMI is requested by the LP itself (tests, the machine) or its local APIC. */
function nmiRequested(lp: LogicalProcessor): boolean {
  return lp.nmiPending || (lp.apic !== null && lp.apic.nmiPending);
}

/**
 * Instructions after which a block may continue: they change no mode, no privilege, no interrupt state and
 * do not branch. Everything else ends the block.
 */
export function isStraightLine(d: Insn): boolean {
  const op = d.op;
  if (op === OP_INVALID) return false;
  if (op < 0x40) return (op & 7) < 6;
  if (op < 0x100) {
    if (op >= 0x40 && op <= 0x6b) return true;
    if (op >= 0x80 && op <= 0x8d) return true;
    if (op === 0x8f || (op >= 0x90 && op <= 0x9c)) return true;
    if (op >= 0xa0 && op <= 0xc1) return true;
    if (op === 0xc6 || op === 0xc7 || op === 0xc9) return true;
    if (op >= 0xd0 && op <= 0xd3) return true;
    if (op === 0xf5 || op === 0xf6 || op === 0xf7 || op === 0xf8 || op === 0xf9 || op === 0xfc || op === 0xfd) return true;
    if (op === 0xfe) return true;
    if (op === 0x9e || op === 0x9f || op === 0xc8) return true; // SAHF, LAHF, ENTER
    if (op === 0xff) return (d.reg & 7) <= 1 || (d.reg & 7) === 6;
    return false;
  }
  if (op >= 0x140 && op <= 0x14f) return true;
  if (op >= 0x190 && op <= 0x19f) return true;
  switch (op) {
    case 0x118: case 0x119: case 0x11a: case 0x11b: case 0x11c: case 0x11d: case 0x11e: case 0x11f:
    case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb: case 0x1ba: case 0x1af: case 0x1b0: case 0x1b1:
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: case 0x1bc: case 0x1bd: case 0x1c0: case 0x1c1:
    case 0x1c8: case 0x1c9: case 0x1ca: case 0x1cb: case 0x1cc: case 0x1cd: case 0x1ce: case 0x1cf:
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad: case 0x1b8: // SHLD/SHRD, POPCNT
      return true;
  }
  return false;
}

void EVENT_HW_EXCEPTION;
