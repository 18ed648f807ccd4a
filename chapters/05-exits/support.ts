// Test support for chapter 5 (imported by the tests only, never by learner code):
//  - runPart: a kit hypervisor that runs ONE of your parts on the reference VM (the kit's own VMXON, VMCS and
//    dispatcher), so a part's test grades that part and not your dispatcher or your chapter 4 code;
//  - runHypervisor: your whole hypervisor (exercise 5.1) as a kernel module, watched from outside: every VM exit
//    is recorded, and a handler that oopses, returns without VMRESUME or resumes forever is reported as such;
//  - guest building blocks (an IDT with a #GP handler) and the failure-message helpers.
// Only types come from your code here (erased at run time): the kit never runs your code except the part or
// module under test.
import type { Hypervisor, VmmPart } from '#impl/05-exits/hypervisor';
import type { ControlRequest } from '#impl/04-first-launch/controls';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { LoadResult } from '../../src/kernel/kernel.ts';
import { exitReasonByNumber } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { VMCS, type VmcsFieldName } from '../../src/vmx/fields.ts';
import { vmInstructionError } from '../../src/vmx/errors.ts';
import { diffVmcs, dumpVmcs, formatVmcsDiff, snapshotVmcs, type VmcsDumpSource, type VmcsSnapshot } from '../../src/debug/vmcs-dump.ts';
import {
  bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host, type ReferenceGuest,
} from '../../src/kernel/testing/reference-vm.ts';

export { bootHost, explain, read, write, type Host, type ReferenceGuest };
export { CPU_MODELS } from '../../src/machine/cpu-model.ts';
export { capabilitiesOf } from '../../src/vmx/emulated-msrs.ts';

const CF = 1n, ZF = 1n << 6n;
const FAILED_VMENTRY = 1n << 31n;
const HLT = 12;

// ---------------------------------------------------------------------------------------------------------------
// The exit trace, annotated with what the handler did
// ---------------------------------------------------------------------------------------------------------------

/** One VM exit (or failed VM entry) as the VMX unit reported it (src/vmx/observe.ts), and what happened next. */
export interface ExitRecord {
  readonly n: number;
  /** The whole VM_EXIT_REASON field (bit 31: a failed VM entry). */
  readonly exitReason: number;
  /** Bits 15:0. */
  readonly reason: number;
  readonly entryFailure: boolean;
  readonly qualification: bigint;
  /** VM_EXIT_INSTRUCTION_LEN, or undefined where the SDM leaves it undefined (VMX Lab poisons it: 0xDEADBEEF). */
  readonly length: number | undefined;
  readonly rip: bigint;
  /** The guest's RAX, RCX and RDX at the exit (the VMCS does not save them: they are in the register file). */
  readonly rax: bigint;
  readonly rcx: bigint;
  readonly rdx: bigint;
  /** What happened next (filled in after the handler). */
  then: string;
  /** The VMCS fields the handler changed, when the VM entry after it failed (src/debug/vmcs-dump.ts). */
  changed?: string;
}

/** Record every VM exit of `host` through the observer seam (no VMREAD: nothing the guest or handler sees changes). */
function watchExits(host: Host): { exits: ExitRecord[]; snapshotAtExit: () => VmcsSnapshot | null; stop: () => void } {
  const exits: ExitRecord[] = [];
  let snapshot: VmcsSnapshot | null = null;
  const stops = host.vmx.map((u) => u.observe({
    onVmExit: (e) => {
      const prev = exits[exits.length - 1];
      if (e.entryFailure && prev !== undefined && !prev.entryFailure) {
        // The VMRESUME after the previous exit failed its guest-state checks: show what the handler changed.
        prev.then ||= 'VMRESUME: the VM entry failed (back at HOST_RIP with bit 31)';
        if (snapshot !== null) prev.changed = changedFields(snapshot, u);
      }
      const lp = host.machine.cpus[e.lp]!;
      exits.push({
        n: exits.length + 1, exitReason: e.reason, reason: e.basicReason, entryFailure: e.entryFailure, qualification: e.qualification,
        length: e.instructionLength, rip: e.guestRip, rax: lp.getGpr(0), rcx: lp.getGpr(1), rdx: lp.getGpr(2), then: '',
      });
      snapshot = snapshotVmcs(u);
    },
    onVmEntryFailure: (e) => {
      const prev = exits[exits.length - 1];
      if (prev === undefined || e.instruction !== 'VMRESUME') return;
      prev.then = e.outcome === 'VMfailInvalid' ? 'VMRESUME: VMfailInvalid' : `VMRESUME: VMfailValid(${e.error})`;
      if (snapshot !== null) prev.changed = changedFields(snapshot, u);
    },
  }));
  return { exits, snapshotAtExit: () => snapshot, stop: () => stops.forEach((f) => f()) };
}

/** The fields that differ between the VMCS at the exit and now (the exit-information fields left out). */
function changedFields(atExit: VmcsSnapshot, unit: VmcsDumpSource): string {
  const before = dumpVmcs(atExit), after = dumpVmcs(unit);
  if (before === null || after === null) return '';
  const rows = diffVmcs(before, after).filter((d) => (d.after ?? d.before)?.type !== 'exit-info');
  if (rows.length === 0) return 'no VMCS field changed between the exit and the failed VM entry';
  const lines = formatVmcsDiff(rows).split('\n').slice(1).map((l) => l.trim());
  return `VMCS fields changed between the exit and the failed VM entry (src/debug/vmcs-dump.ts, diffVmcs):\n  ${lines.join('\n  ')}`;
}

export function reasonName(reason: number): string {
  return `${exitReasonByNumber(reason)?.name ?? 'unknown reason'} (${reason})`;
}

/** The exit trace as text, the last `max` exits, with what the handler did after each. */
export function formatTrace(exits: readonly ExitRecord[], max = 16): string {
  if (exits.length === 0) return 'VM exits: none';
  const shown = exits.slice(-max);
  const lines = shown.map((e) => {
    const failed = e.entryFailure ? ' [bit 31: VM-entry failure]' : '';
    const len = e.length === undefined ? 'undefined (VMX Lab poisons it: 0xdeadbeef)' : String(e.length);
    const msr = e.reason === 31 || e.reason === 32 ? `, ECX 0x${(e.rcx & 0xffffffffn).toString(16)}` : '';
    const head = `  #${e.n} ${reasonName(e.reason)}${failed} at RIP 0x${e.rip.toString(16)}, instruction length ${len}, qualification 0x${e.qualification.toString(16)}${msr}${e.then === '' ? '' : ` → ${e.then}`}`;
    return e.changed === undefined ? head : `${head}\n      ${e.changed.replace(/\n/g, '\n      ')}`;
  });
  const skipped = exits.length - shown.length;
  return `VM exits (${exits.length}${skipped > 0 ? `, the last ${shown.length} shown` : ''}):\n${lines.join('\n')}`;
}

/** VMWRITE by name from a test's own handler or setup (failing loudly: a test must not fail silently). */
export function poke(cpu: HostCpu, name: string, value: bigint | number): void {
  const enc = (VMCS as Readonly<Record<string, number>>)[name];
  if (enc === undefined) throw new Error(`test bug: no VMCS field ${name}`);
  cpu.vmwrite(enc, BigInt(value));
  if ((cpu.rflags() & (CF | ZF)) !== 0n) throw new Error(`test bug: VMWRITE ${name} failed`);
}

/** The oops report the kernel printed (the last one), if any: from its headline to "---[ end trace ]---". */
export function oopsText(host: Host): string | null {
  const lines = host.kernel.log.lines.map((l) => l.text);
  const end = lines.lastIndexOf('---[ end trace ]---');
  if (end < 0) return null;
  let start = end;
  while (start > 0 && !/^BUG: |\[#\d+\]/.test(lines[start]!)) start--;
  return lines.slice(start, end + 1).join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// runPart: one part on the kit's hypervisor
// ---------------------------------------------------------------------------------------------------------------

export type PartOutcome =
  | { readonly kind: 'halted' }
  | { readonly kind: 'stopped'; readonly why: string }
  | { readonly kind: 'unhandled'; readonly reason: number }
  | { readonly kind: 'entry-failure'; readonly reason: number; readonly qualification: bigint }
  | { readonly kind: 'vmfail'; readonly error: number | null }
  | { readonly kind: 'bad-skip'; readonly reason: number }
  | { readonly kind: 'bad-action'; readonly got: string }
  | { readonly kind: 'oops'; readonly text: string }
  | { readonly kind: 'controls'; readonly why: string }
  | { readonly kind: 'setup-failed'; readonly why: string }
  | { readonly kind: 'budget'; readonly instructions: number };

export interface PartRun {
  readonly host: Host;
  readonly guest: ReferenceGuest;
  readonly exits: readonly ExitRecord[];
  readonly outcome: PartOutcome;
  /** Free pages before your part's setup (compare after release to find a leak). */
  readonly freeBeforeSetup: number;
  /** Free pages after your part's release. */
  readonly freeAfterRelease: number;
  /** A quadword of guest memory at an assembler label. */
  qword(label: string): bigint;
  /** VMREAD after the run (the kit leaves its VMCS current). */
  field(name: VmcsFieldName): bigint;
  /** Everything a failure message needs: what happened, the exit trace, the VMX diagnosis, dmesg. */
  why(extra?: string): string;
}

export interface PartOptions {
  readonly part: VmmPart;
  /** The guest program (Intel syntax, 64-bit). */
  readonly source: string;
  readonly model?: string;
  /** Guest instruction budget (default 20 000). */
  readonly budget?: number;
  /** Change the kit's VMCS before your part's setup (for tests that need a special guest state). */
  readonly before?: (host: Host, cpu: HostCpu, guest: ReferenceGuest) => void;
}

/**
 * Boot `model`, enter VMX with the kit, write the reference VMCS for `source`, give the part the controls it
 * asks for, run its setup (inside a module init, so an exception is an oops with your file and line), VMLAUNCH,
 * and dispatch every VM exit to the part's handler for its basic reason. HLT ends the run unless the part handles
 * it. The kit applies the handler's action the way the SDM says: 'skip' adds VM_EXIT_INSTRUCTION_LEN to
 * GUEST_RIP (refused when the length is undefined), then VMRESUME.
 */
export function runPart(opts: PartOptions): PartRun {
  const host = bootHost({ model: opts.model ?? 'skylake-i5-6300u' });
  const k = host.kernel;
  const cpu = k.cpu();
  const part = opts.part;
  const watch = watchExits(host);
  const exits = watch.exits;
  const reasons: number[] = [];
  let outcome: PartOutcome | null = null;
  let guest: ReferenceGuest | null = null;
  let freeBeforeSetup = 0;
  let vcpu: { k: typeof k; cpu: HostCpu; guest: ReturnType<typeof guestImage>; exits: readonly number[] } | null = null;

  const handler = (_k: typeof k, c: HostCpu): void => {
    const e = watch.exits[watch.exits.length - 1];
    if (e === undefined) throw new Error('kit bug: a host entry without a VM exit');
    if (e.entryFailure) {
      e.then = 'VM-entry failure (the guest did not run)';
      outcome = { kind: 'entry-failure', reason: e.reason, qualification: e.qualification };
      return;
    }
    reasons.push(e.reason);
    const h = part.handlers[e.reason];
    if (h === undefined) {
      if (e.reason === HLT) {
        e.then = 'the guest is done (kit)';
        outcome = { kind: 'halted' };
      } else {
        e.then = 'no handler';
        outcome = { kind: 'unhandled', reason: e.reason };
      }
      return;
    }
    let action: unknown;
    try {
      action = h(vcpu!, { reason: e.reason, qualification: e.qualification });
    } catch (err) {
      e.then = 'your handler threw (oops)';
      outcome = { kind: 'oops', text: '' };
      throw err; // the kernel prints the oops, with your file and line
    }
    const kind = typeof action === 'object' && action !== null ? (action as { kind?: unknown }).kind : undefined;
    if (kind === 'stop') {
      const why = String((action as { why?: unknown }).why);
      e.then = `stop: ${why}`;
      outcome = e.reason === HLT ? { kind: 'halted' } : { kind: 'stopped', why };
      return;
    }
    if (kind !== 'resume' && kind !== 'skip') {
      e.then = `bad action ${describeValue(action)}`;
      outcome = { kind: 'bad-action', got: describeValue(action) };
      return;
    }
    if (kind === 'skip') {
      if (e.length === undefined) {
        e.then = 'skip refused: the instruction length is undefined for this exit';
        outcome = { kind: 'bad-skip', reason: e.reason };
        return;
      }
      write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + BigInt(e.length));
    }
    c.vmresume();
    const f = c.rflags();
    if (c.inVmxNonRoot()) {
      e.then = kind === 'skip' ? 'skip, VMRESUME' : 'VMRESUME';
    } else if ((f & (CF | ZF)) === 0n) {
      // A VM-entry failure: host state is loaded and this handler runs again, with bit 31 set.
      e.then = `${kind === 'skip' ? 'skip, ' : ''}VMRESUME: the VM entry failed (back at HOST_RIP)`;
    } else {
      const error = (f & ZF) !== 0n ? Number(read(c, 'VM_INSTRUCTION_ERROR')) : null;
      outcome = { kind: 'vmfail', error };
    }
  };

  const init = (): number => {
    enterVmx(host, cpu);
    const rip = k.hostEntry('kit_part_vmexit', handler);
    guest = writeReferenceVmcs(host, cpu, rip, opts.source);
    opts.before?.(host, cpu, guest);
    const denied = applyControls(host, cpu, part.controls ?? {});
    if (denied !== null) {
      outcome = { kind: 'controls', why: denied };
      return -22;
    }
    vcpu = { k, cpu, guest: guestImage(guest), exits: reasons };
    freeBeforeSetup = k.pages.freeCount();
    const r = part.setup?.(vcpu) ?? { ok: true };
    if (!r.ok) {
      outcome = { kind: 'setup-failed', why: r.error };
      return -22;
    }
    cpu.vmlaunch();
    const f = cpu.rflags();
    // Back in VMX root operation with CF = ZF = 0 is no VMfail: the entry happened and a VM exit followed at once
    // (during the injected event's delivery, say) or the entry failed into HOST_RIP. The run loop calls the handler.
    if (!cpu.inVmxNonRoot() && (f & (CF | ZF)) !== 0n) {
      outcome = { kind: 'vmfail', error: (f & ZF) !== 0n ? Number(read(cpu, 'VM_INSTRUCTION_ERROR')) : null };
      return -5;
    }
    return 0;
  };
  const loaded = k.insmod({ name: 'kit_part', init });
  let instructions = 0;
  if (loaded.ok) instructions = runGuests(host, opts.budget ?? 20_000).instructions;
  const oops = oopsText(host);
  if (!loaded.ok && loaded.oops !== undefined) outcome = { kind: 'oops', text: loaded.oops.text };
  else if (outcome !== null && (outcome as PartOutcome).kind === 'oops') outcome = { kind: 'oops', text: oops ?? '(no oops report in dmesg)' };
  outcome ??= { kind: 'budget', instructions };
  // The kit turns nothing off: the VMCS stays current for field(); release your part's memory now.
  let freeAfterRelease = k.pages.freeCount();
  if (vcpu !== null) {
    try {
      part.release?.(k);
    } catch (err) {
      outcome = { kind: 'oops', text: `release() threw: ${(err as Error).stack ?? String(err)}` };
    }
    freeAfterRelease = k.pages.freeCount();
  }
  const final = outcome;
  const g = guest as ReferenceGuest | null;
  return {
    host, guest: g!, exits, outcome: final, freeBeforeSetup, freeAfterRelease,
    qword: (label) => {
      const at = g?.labels.get(label);
      if (g === null || at === undefined) throw new Error(`test bug: no guest label ${label}`);
      return k.read64(g.va + (BigInt(at) - g.pa));
    },
    field: (name) => read(cpu, name),
    why: (extra = '') => [extra, `what happened: ${describeOutcome(final)}`, formatTrace(exits), explain(host)].filter((s) => s !== '').join('\n'),
  };
}

/** The chapter 4 GuestImage view of the kit's reference guest (8 pages, same layout). */
function guestImage(g: ReferenceGuest): { va: bigint; pa: bigint; order: number; cr3: bigint; gdtBase: bigint; gdtLimit: number; rip: bigint; rsp: bigint; labels: ReadonlyMap<string, number> } {
  return { va: g.va, pa: g.pa, order: 3, cr3: g.cr3, gdtBase: g.gdtBase, gdtLimit: 0x27, rip: g.rip, rsp: g.rsp, labels: g.labels };
}

export function describeOutcome(o: PartOutcome): string {
  switch (o.kind) {
    case 'halted': return 'the guest ran to its HLT';
    case 'stopped': return `your handler stopped the guest: ${o.why}`;
    case 'unhandled':
      return o.reason === 2
        ? 'the guest crashed: a triple fault (it hit an exception it could not deliver — often because RIP was left pointing into the middle of an instruction, or at the wrong instruction)'
        : `VM exit ${reasonName(o.reason)} arrived and your part has no handler for it`;
    case 'entry-failure': return `the VM entry after your handler failed: exit reason ${reasonName(o.reason)} with bit 31 set, qualification ${o.qualification} — your handler left the VMCS in a state VM entry refuses (the VMX diagnosis below names the check)`;
    case 'vmfail': return o.error === null ? 'VMLAUNCH/VMRESUME failed with VMfailInvalid' : `VMLAUNCH/VMRESUME failed with VMfailValid(${o.error}): ${vmInstructionError(o.error)?.name ?? 'unknown error'} — a control or host-state field is wrong (the VMX diagnosis below names it)`;
    case 'bad-skip': return `your handler asked to skip the instruction on a ${reasonName(o.reason)} exit, which is not caused by an instruction: VM_EXIT_INSTRUCTION_LEN is undefined there (VMX Lab poisons it: 0xdeadbeef)`;
    case 'bad-action': return `your handler returned ${o.got}, not an ExitAction (RESUME, SKIP or stop(why))`;
    case 'oops': return `your code raised an exception and the kernel oopsed:\n${o.text}`;
    case 'controls': return `the controls your part asks for are not possible on this CPU: ${o.why}`;
    case 'setup-failed': return `your part's setup failed: ${o.why}`;
    case 'budget': return `the guest did not reach its HLT within ${o.instructions} instructions (a handler that resumes without advancing RIP runs the same instruction again, forever)`;
  }
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  } catch {
    return String(v);
  }
}

const CONTROL_FIELDS = {
  pin: 'PIN_BASED_VM_EXEC_CONTROL', proc: 'CPU_BASED_VM_EXEC_CONTROL', exit: 'VM_EXIT_CONTROLS', entry: 'VM_ENTRY_CONTROLS',
} as const;

/** Apply a part's control request to the kit VMCS, as chapter 3's adjustment would; null, or why it cannot. */
function applyControls(host: Host, cpu: HostCpu, req: ControlRequest): string | null {
  const eff = host.vmx[cpu.id]!.caps.effective;
  const problems: string[] = [];
  for (const kind of ['pin', 'proc', 'exit', 'entry'] as const) {
    const r = req[kind];
    if (r === undefined) continue;
    const value = ((Number(read(cpu, CONTROL_FIELDS[kind])) | (r.want ?? 0)) & ~(r.avoid ?? 0)) >>> 0;
    const bad = (value & ~eff[kind].allowed1) | (eff[kind].allowed0 & ~value);
    if (bad !== 0) problems.push(`${kind} bits 0x${(bad >>> 0).toString(16)}`);
    else write(host, cpu, CONTROL_FIELDS[kind], value);
  }
  const r2 = req.proc2;
  if (r2 !== undefined && (r2.want ?? 0) !== 0) {
    const value = ((eff.proc2.allowed0 | (r2.want ?? 0)) & ~(r2.avoid ?? 0)) >>> 0;
    if ((value & ~eff.proc2.allowed1) !== 0 || (eff.proc.allowed1 & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) === 0) problems.push(`proc2 bits 0x${value.toString(16)}`);
    else {
      write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS));
      write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', value);
    }
  }
  return problems.length === 0 ? null : problems.join('; ');
}

// ---------------------------------------------------------------------------------------------------------------
// runHypervisor: your whole hypervisor, watched from outside
// ---------------------------------------------------------------------------------------------------------------

export interface HypervisorRun {
  readonly host: Host;
  readonly hv: Hypervisor;
  readonly loaded: LoadResult;
  readonly exits: readonly ExitRecord[];
  /** Where your code registered its VM-exit handler (k.hostEntry), as file:line:col. */
  readonly entrySite: string | null;
  /** GUEST_RIP values your VM-exit handler wrote with VMWRITE, in order. */
  readonly ripWrites: readonly bigint[];
  readonly instructions: number;
  readonly freeBefore: number;
  readonly gdt: { base: bigint; limit: number };
  readonly idt: { base: bigint; limit: number };
  /** VMX operation is still on. */
  vmxOn(): boolean;
  why(extra?: string): string;
}

const GUEST_RIP_ENCODING = 0x681e;

/**
 * Boot `model` and insmod the hypervisor `create` builds. VM exits and failed entries are recorded through the
 * VMX unit's observer seam; the kernel's hostEntry is wrapped to learn where your handler was registered and how
 * each call of it ended (resumed, VMX off, oops, or neither), and VMWRITE to record what it did to GUEST_RIP.
 */
export function runHypervisor(opts: {
  create: () => Hypervisor; model?: string; budget?: number; cpus?: number;
}): HypervisorRun {
  const host = bootHost({ model: opts.model ?? 'skylake-i5-6300u', cpus: opts.cpus ?? 1 });
  const k = host.kernel;
  const watch = watchExits(host);
  const exits = watch.exits;
  const ripWrites: bigint[] = [];
  let entrySite: string | null = null;
  // The VMX unit's own state: probing with VMPTRST would leave a #UD diagnosis behind.
  const vmxOnNow = (c: HostCpu): boolean => host.vmx[c.id]?.state.inVmxOperation ?? false;
  const inHandler = { now: false };
  for (const c of k.allCpus()) watchRipWrites(c, ripWrites, inHandler);
  const hostEntry = k.hostEntry.bind(k);
  k.hostEntry = (name, fn) => {
    entrySite ??= learnerSite(new Error().stack);
    return hostEntry(name, (kk, c) => {
      const e = exits[exits.length - 1];
      inHandler.now = true;
      try {
        fn(kk, c);
      } catch (err) {
        if (e !== undefined) e.then = 'your handler threw: the kernel oopses';
        throw err;
      } finally {
        inHandler.now = false;
      }
      if (e === undefined) return;
      if (c.inVmxNonRoot()) e.then ||= 'VMRESUME';
      else if (!vmxOnNow(c)) e.then ||= 'VMX off';
      else e.then ||= 'returned in VMX root operation with VMX still on: no VMRESUME, no VMXOFF (the CPU idles, the guest is stuck)';
    });
  };
  const free = k.pages.freeCount();
  const gdt = k.cpu().sgdt(), idt = k.cpu().sidt();
  const hv = opts.create();
  const loaded = k.insmod(hv.module);
  let instructions = 0;
  let budgetHit = false;
  if (loaded.ok) {
    const r = runGuests(host, opts.budget ?? 20_000);
    instructions = r.instructions;
    budgetHit = r.reason === 'budget';
  }
  watch.stop();
  const site = (): string => (entrySite === null ? '' : ` (your VM-exit handler, registered at ${entrySite})`);
  const summary = (): string => {
    if (!loaded.ok) return loaded.oops !== undefined ? `insmod oopsed:\n${loaded.oops.text}` : `insmod failed: ${loaded.message}`;
    const oops = oopsText(host);
    if (oops !== null) return `your code raised an exception and the kernel oopsed${site()}:\n${oops}`;
    if (budgetHit) return `the guest did not reach its HLT within ${instructions} instructions${site()}: a handler that resumes without advancing RIP runs the same instruction again, forever`;
    const last = exits[exits.length - 1];
    if (last !== undefined && last.then.startsWith('returned in VMX root')) return `after exit #${last.n} your code ${last.then}${site()}`;
    return `log: ${describeValue(hv.log)}`;
  };
  return {
    host, hv, loaded, exits, entrySite, ripWrites, instructions, freeBefore: free, gdt, idt,
    vmxOn: () => vmxOnNow(k.cpu()),
    why: (extra = '') => [extra, `what happened: ${summary()}`, formatTrace(exits), explain(host)].filter((x) => x !== '').join('\n'),
  };
}

/** Record, on one CPU, the GUEST_RIP values VMWRITE stores while your VM-exit handler runs. */
function watchRipWrites(c: HostCpu, ripWrites: bigint[], inHandler: { now: boolean }): void {
  const vmwrite = c.vmwrite.bind(c);
  c.vmwrite = (field, value) => {
    if (inHandler.now && field === GUEST_RIP_ENCODING) ripWrites.push(value);
    vmwrite(field, value);
  };
}

/** The first frame of learner code (exercises/ or solutions/) in a stack. */
function learnerSite(stack: string | undefined): string | null {
  const m = /((?:exercises|solutions)\/[^\s:()]+):(\d+):(\d+)/.exec(stack ?? '');
  return m === null ? null : `${m[1]}:${m[2]}:${m[3]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Guest building blocks
// ---------------------------------------------------------------------------------------------------------------

/**
 * A guest program with an IDT whose #GP handler records the error code, the faulting RIP and a count, then
 * continues at the address in R14 (like a kernel's exception table). `body` runs after the IDT is loaded and
 * should end in HLT. Labels: gp_error, gp_rip, gp_count, and whatever `body` and `data` define.
 */
export function withGpHandler(body: string, data = ''): string {
  return `
bits 64
default rel
        lea rax, [gp_handler]
        lea rdi, [idt + 13*16]
        mov [rdi], ax
        mov word [rdi+2], 0x08
        mov word [rdi+4], 0x8e00        ; present, DPL 0, 64-bit interrupt gate
        shr rax, 16
        mov [rdi+6], ax
        shr rax, 16
        mov [rdi+8], eax
        lidt [idtr]
${body}
gp_handler:
        pop rax                         ; the error code
        mov [gp_error], rax
        mov rax, [rsp]                  ; the RIP of the faulting instruction
        mov [gp_rip], rax
        inc qword [gp_count]
        mov [rsp], r14                  ; continue at the fixup address
        iretq
align 8
gp_error: dq -1
gp_rip:   dq 0
gp_count: dq 0
${data}
align 8
idtr:   dw 16*32-1
        dq idt
align 16
idt:    times 32*16 db 0
`;
}
