// Exercise 5.1 — the chapter 5 hypervisor: chapter 4's first launch, grown into a hypervisor made of parts.
// Each part handles one kind of VM exit (CPUID, MSRs, I/O, control registers, VMCALL): it names the controls it
// needs, writes the VMCS fields it owns before the first VM entry, and registers a handler per basic exit reason.
// The handler at HOST_RIP reads the exit, dispatches it by basic reason, and resumes the guest — advancing RIP only
// when the exit was caused by an instruction, the only case in which VM_EXIT_INSTRUCTION_LEN is defined.
// Read chapters/05-exits/README.md, sections "The dispatcher" and "Advancing RIP". The module around it (init,
// teardown) is given: it is your chapter 4 launch, with parts. Yours to write: dispatchExit, skipInstruction, and
// vmexit inside createHypervisor.
// See SDM Vol. 3C, "VM Exits", "Basic VM-Exit Information" and "Information for VM Exits Due to Instruction
// Execution".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel, KernelModule } from '../../src/kernel/kernel.ts';
import { EINVAL, EIO, ENOMEM } from '../../src/kernel/errno.ts';
import { EXIT_REASON, exitReasonByNumber } from '../../src/vmx/exit-reasons.ts';
import { vmxOff, vmxOn } from '../01-vmxon/vmxon.ts';
import { allocVmcs, freeVmcs, loadVmcs, type VmxRegion } from '../02-vmcs/vmcs-region.ts';
import { describeVmxError, vmread, vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { firstLaunchControls, writeControls, type ControlRequest } from '../04-first-launch/controls.ts';
import { describeLaunch, diagnoseLaunch, type LaunchDiagnosis } from '../04-first-launch/diagnose.ts';
import { buildGuest, freeGuest, FIRST_GUEST, writeGuestState, type GuestImage } from '../04-first-launch/guest-state.ts';
import { writeHostState } from '../04-first-launch/host-state.ts';

/** One VM exit as a handler sees it: the basic reason (bits 15:0 of VM_EXIT_REASON) and the qualification. */
export interface VmExit {
  readonly reason: number;
  readonly qualification: bigint;
}

/** What a handler asks the dispatcher to do next. */
export type ExitAction =
  /** VMRESUME with RIP as it is (the handler changed it, or the exit was not caused by an instruction). */
  | { readonly kind: 'resume' }
  /** Advance GUEST_RIP by VM_EXIT_INSTRUCTION_LEN, then VMRESUME: the handler emulated the instruction. */
  | { readonly kind: 'skip' }
  /** Stop the guest: VMCLEAR, VMXOFF, free everything. */
  | { readonly kind: 'stop'; readonly why: string };

export const RESUME: ExitAction = { kind: 'resume' };
export const SKIP: ExitAction = { kind: 'skip' };
export function stop(why: string): ExitAction {
  return { kind: 'stop', why };
}

/** The virtual CPU a handler works on: the host CPU in VMX root operation, the guest, the exits so far. */
export interface Vcpu {
  readonly k: Kernel;
  readonly cpu: HostCpu;
  readonly guest: GuestImage;
  /** Basic reasons of the VM exits so far, this one included. */
  readonly exits: readonly number[];
}

export type ExitHandler = (v: Vcpu, exit: VmExit) => ExitAction;
/** Handlers by basic exit reason. */
export type ExitHandlers = Readonly<Partial<Record<number, ExitHandler>>>;

export type SetupResult = { readonly ok: true } | { readonly ok: false; readonly error: string };
export const SETUP_OK: SetupResult = { ok: true };

/** One part of the hypervisor. */
export interface VmmPart {
  readonly name: string;
  /** Controls this part needs on top of the first-launch ones (chapter 4's firstLaunchControls `extra`). */
  readonly controls?: ControlRequest;
  /** After the VMCS is complete and before VMLAUNCH, on the CPU that runs the guest: write this part's fields. */
  setup?(v: Vcpu): SetupResult;
  /** After VMXOFF: free what setup allocated. Called if setup ran, even if it failed. */
  release?(k: Kernel): void;
  readonly handlers: ExitHandlers;
}

/**
 * Basic exit reasons whose VM exits are always caused by executing an instruction, so VM_EXIT_INSTRUCTION_LEN is
 * defined: CPUID, GETSEC, HLT, INVD, INVLPG, RDPMC, RDTSC, RSM, VMCALL and the VMX instructions, CR accesses (MOV
 * CR, CLTS, LMSW), MOV DR, I/O, RDMSR, WRMSR, MWAIT, MONITOR, PAUSE, descriptor-table accesses, INVEPT, RDTSCP,
 * INVVPID, WBINVD, XSETBV, RDRAND, INVPCID, VMFUNC, ENCLS, RDSEED, XSAVES, XRSTORS, PCONFIG, UMWAIT, TPAUSE,
 * LOADIWKEY. The SDM also
 * defines the length for some exits of other reasons (a software exception from INT3/INTO, a fault while
 * delivering a software interrupt): their handlers must look at the interruption type themselves. For every other
 * exit — triple fault, INIT, SIPI, external interrupt, NMI, interrupt window, MTF, preemption timer, EPT violation
 * — the field is undefined. See SDM Vol. 3C, "Information for VM Exits Due to Instruction Execution".
 */
export const INSTRUCTION_EXITS: ReadonlySet<number> = new Set([
  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 36, 39, 40, 46, 47,
  50, 51, 53, 54, 55, 57, 58, 59, 60, 61, 63, 64, 65, 67, 68, 69,
]);

/** An x86 instruction is 1 to 15 bytes long. See SDM Vol. 2A, "Instruction Format". */
const MAX_INSTRUCTION_LENGTH = 15;

/**
 * Call the handler for the exit's basic reason and return what it asks for.
 *  - No handler for that reason: stop, with a message that names the reason's number and name
 *    (exitReasonByNumber(reason)?.name) and the qualification.
 *  - A handler that returns something that is not an ExitAction (isExitAction, below): a bug — stop.
 */
export function dispatchExit(v: Vcpu, exit: VmExit, handlers: ExitHandlers): ExitAction {
  // TODO
  throw new Error('TODO: dispatchExit');
}

/** Is `a` one of RESUME, SKIP, stop(why)? (given) */
export function isExitAction(a: unknown): a is ExitAction {
  if (typeof a !== 'object' || a === null) return false;
  const kind = (a as { kind?: unknown }).kind;
  return kind === 'resume' || kind === 'skip' || (kind === 'stop' && typeof (a as { why?: unknown }).why === 'string');
}

/**
 * GUEST_RIP += VM_EXIT_INSTRUCTION_LEN, for an exit caused by an instruction (INSTRUCTION_EXITS has its basic
 * reason). For any other exit the length is undefined — VMX Lab fills it with poison, 0xDEADBEEF — so return
 * { ok: false, error } instead, saying why. Also refuse a length outside 1–15 (MAX_INSTRUCTION_LENGTH), and report
 * a failed VMREAD/VMWRITE (chapter 2's describeVmxError).
 */
export function skipInstruction(v: Vcpu, exit: VmExit): SetupResult {
  // TODO
  throw new Error('TODO: skipInstruction');
}

/** What the hypervisor saw, for its user (and the tests). */
export interface HypervisorLog {
  /** Basic reasons of the VM exits handled, in order (a failed VM entry is not an exit and is not listed). */
  readonly exits: number[];
  /** A VMfail of VMLAUNCH/VMRESUME, or a VM-entry failure seen at HOST_RIP; null if none. */
  failure: LaunchDiagnosis | null;
  /** Why the hypervisor stopped the guest (a handler's stop, an unhandled exit, a refused skip); null if not. */
  stopped: string | null;
  /** The guest executed HLT and VMX is off again. */
  halted: boolean;
}

export interface Hypervisor {
  readonly module: KernelModule;
  readonly log: HypervisorLog;
}

/** Everything to undo on this CPU, in reverse order of setup. */
interface VmContext {
  cpu: number;
  vmxon: VmxRegion;
  vmcs: VmxRegion | null;
  guest: GuestImage | null;
  /** Parts whose setup ran (their release is due). */
  readonly prepared: VmmPart[];
  gdtLimit: number;
  idtLimit: number;
}

const MODULE = 'vmx_lab_hv';

/** A module that runs `guest` (default: chapter 4's FIRST_GUEST) on the CPU that loads it, with `parts`. */
export function createHypervisor(opts: { guest?: string; parts?: readonly VmmPart[] } = {}): Hypervisor {
  const parts = opts.parts ?? [];
  const log: HypervisorLog = { exits: [], failure: null, stopped: null, halted: false };
  let ctx: VmContext | null = null;
  let vcpu: Vcpu | null = null;

  // HLT ends the guest; the parts add the rest. Two parts may not claim the same reason.
  const handlers: Partial<Record<number, ExitHandler>> = {
    [EXIT_REASON.EXIT_REASON_HLT]: () => {
      log.halted = true;
      return stop('the guest halted');
    },
  };
  const owner = new Map<number, string>();
  let conflict: string | null = null;
  for (const p of parts) {
    for (const [reason, h] of Object.entries(p.handlers)) {
      const n = Number(reason);
      const other = owner.get(n);
      if (other !== undefined) conflict ??= `parts '${other}' and '${p.name}' both handle exit reason ${n}`;
      owner.set(n, p.name);
      if (h !== undefined) handlers[n] = h;
    }
  }

  /** VMCLEAR, VMXOFF, free everything, restore the descriptor-table limits. Runs on ctx.cpu; safe to call twice. */
  function teardown(k: Kernel, cpu: HostCpu): void {
    if (ctx === null) return;
    const c = ctx;
    ctx = null;
    // VMCLEAR before freeing the region: the processor may keep VMCS data cached. See SDM Vol. 3C, "VMCS Life Cycle".
    if (c.vmcs !== null) cpu.vmclear(c.vmcs.pa);
    vmxOff(k, c.vmxon);
    if (c.vmcs !== null) freeVmcs(k, c.vmcs);
    if (c.guest !== null) freeGuest(k, c.guest);
    for (const p of c.prepared.reverse()) p.release?.(k);
    // Every VM exit set the GDTR and IDTR limits to FFFFH. See SDM Vol. 3C, "Loading Host Segment and
    // Descriptor-Table Registers".
    cpu.lgdt(cpu.sgdt().base, c.gdtLimit);
    cpu.lidt(cpu.sidt().base, c.idtLimit);
    k.printk(`${MODULE}: cpu ${cpu.id}: VMX off after ${log.exits.length} VM exits`);
  }

  /** Record why the guest cannot go on, say so, and turn VMX off. */
  function end(k: Kernel, cpu: HostCpu, why: { failure: LaunchDiagnosis } | { stopped: string }): void {
    if ('failure' in why) {
      log.failure = why.failure;
      k.printk(`${MODULE}: ${describeLaunch(why.failure)}`);
    } else {
      log.stopped = why.stopped;
      k.printk(`${MODULE}: ${why.stopped}`);
    }
    teardown(k, cpu);
  }

  /**
   * The handler at HOST_RIP: one call per VM exit or failed VM entry.
   *  1. chapter 4's diagnoseLaunch(cpu, 'host-rip'). Anything but 'vm-exit' (bit 31: a failed VM entry, or a
   *     VMREAD that failed) is not an exit to dispatch: end(k, cpu, { failure: d }).
   *  2. push the basic reason on log.exits; action = dispatchExit(vcpu!, exit, handlers).
   *  3. stop → end(k, cpu, { stopped: action.why }); skip → skipInstruction (on error: end with it as `stopped`);
   *  4. VMRESUME, then diagnoseLaunch(cpu, 'fallthrough'): only a VMfail comes back to this line — end with it.
   */
  function vmexit(k: Kernel, cpu: HostCpu): void {
    // TODO
    throw new Error('TODO: vmexit');
  }

  function init(k: Kernel): number {
    // One CPU from VMXON to VMLAUNCH: no migration in between.
    k.preempt_disable();
    try {
      return launch(k);
    } finally {
      k.preempt_enable();
    }
  }

  function launch(k: Kernel): number {
    if (conflict !== null) {
      k.printk(`${MODULE}: ${conflict}`);
      return -EINVAL;
    }
    const cpu = k.cpu();
    const on = vmxOn(k);
    if (!on.ok) {
      k.printk(`${MODULE}: ${on.error}`);
      return -EIO;
    }
    const c: VmContext = { cpu: cpu.id, vmxon: on.region, vmcs: null, guest: null, prepared: [], gdtLimit: cpu.sgdt().limit, idtLimit: cpu.sidt().limit };
    ctx = c;
    const fail = (errno: number, why: string): number => {
      k.printk(`${MODULE}: ${why}`);
      teardown(k, cpu);
      return errno;
    };

    c.vmcs = allocVmcs(k);
    if (c.vmcs === null) return fail(-ENOMEM, 'cannot allocate the VMCS');
    const loaded = loadVmcs(cpu, c.vmcs);
    if (!loaded.ok) return fail(-EIO, `VMCLEAR/VMPTRLD: ${describeVmxError(loaded.error)}`);
    const controls = firstLaunchControls((msr) => cpu.rdmsr(msr), mergeRequests(parts.map((p) => p.controls ?? {})));
    if (!controls.ok) return fail(-EIO, `this CPU cannot run the guest: ${controls.errors.map((e) => `${e.kind} bit ${e.bit} ${e.reason}`).join('; ')}`);
    c.guest = buildGuest(k, opts.guest ?? FIRST_GUEST);
    if (c.guest === null) return fail(-ENOMEM, 'cannot allocate the guest');

    const rip = k.hostEntry(`${MODULE}_vmexit`, vmexit);
    const steps: [string, () => VmxResult<void>][] = [
      ['controls', () => writeControls(cpu, controls.controls)],
      ['host state', () => writeHostState(k, cpu, { rip, rsp: k.kernelStackTop(cpu.id) })],
      ['guest state', () => writeGuestState(k, cpu, c.guest!)],
    ];
    for (const [what, step] of steps) {
      const r = step();
      if (!r.ok) return fail(-EIO, `writing the ${what}: ${describeVmxError(r.error)}`);
    }
    vcpu = { k, cpu, guest: c.guest, exits: log.exits };
    for (const p of parts) {
      c.prepared.push(p);
      const r = p.setup?.(vcpu) ?? SETUP_OK;
      if (!r.ok) return fail(-EIO, `part '${p.name}': ${r.error}`);
    }

    cpu.vmlaunch();
    const d = diagnoseLaunch(cpu, 'fallthrough');
    if (d.kind !== 'no-vmfail') {
      log.failure = d;
      return fail(-EIO, `VMLAUNCH: ${describeLaunch(d)}`);
    }
    k.printk(`${MODULE}: cpu ${cpu.id}: guest launched with ${parts.length} part(s): ${parts.map((p) => p.name).join(', ')}`);
    return 0;
  }

  function exit(k: Kernel): void {
    // Only a VM exit gives the CPU back; this module cannot force one (chapter 8 sends an IPI).
    if (ctx !== null) k.printk(`${MODULE}: cpu ${ctx.cpu}: the guest is still running; VMX stays on`);
  }

  return { module: { name: MODULE, init, exit }, log };
}

/** The union of the parts' control requests: every wanted bit, every avoided bit. */
function mergeRequests(requests: readonly ControlRequest[]): ControlRequest {
  const out: Record<string, { want: number; avoid: number }> = {};
  for (const r of requests) {
    for (const [kind, req] of Object.entries(r)) {
      const cur = out[kind] ?? { want: 0, avoid: 0 };
      out[kind] = { want: (cur.want | (req?.want ?? 0)) >>> 0, avoid: (cur.avoid | (req?.avoid ?? 0)) >>> 0 };
    }
  }
  return out;
}
