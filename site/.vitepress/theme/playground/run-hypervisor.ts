// Run a hypervisor module written in the page (inside the playground worker): strip its types with
// sucrase, evaluate it with the kit as its only import ('vmxlab'), insmod it on a
// freshly booted host, run the machine with an instruction budget, and report what a learner needs
// to see: dmesg, port E9H output, every VM exit, the explanation channel and the VMCS.
import { transform } from 'sucrase';
import { traceExits, type TracedExit } from '../../../../src/debug/exit-trace.ts';
import { hex } from '../../../../src/util/hex.ts';
import { dumpVmcs, formatVmcsValue, snapshotVmcs, type VmcsDumpSource, type VmcsSnapshot } from '../../../../src/debug/vmcs-dump.ts';
import { bootHost, type Host } from '../../../../src/kernel/boot-host.ts';
import type { KernelModule } from '../../../../src/kernel/kernel.ts';
import { formatDiagnosis } from '../../../../src/vmx/diagnosis.ts';
import { keepEptOfRun } from './explain-gpa.ts';
import { createKit } from './kit.ts';
import type { ExitRecord, HypervisorRequest, VmcsDumpRow, WorkerReply } from './protocol.ts';

const MAX_BUDGET = 100_000_000;

const STOPS: Record<string, string> = {
  'all-halted': 'every CPU idle (HLT) — the module handed the CPU back',
  budget: 'instruction budget used up',
  shutdown: 'shutdown (triple fault outside a guest)',
  breakpoint: 'breakpoint',
};

/** Strip the types (sucrase: fast and small; nothing is type-checked); syntax errors come back with line and column. */
function transpile(source: string): { js: string } | { errors: string[] } {
  try {
    return { js: transform(source, { transforms: ['typescript', 'imports'], filePath: 'hypervisor.ts' }).code };
  } catch (e) {
    // Sucrase reports "message (line:column)" and the position in `loc`.
    const loc = (e as { loc?: { line: number; column: number } }).loc;
    const message = e instanceof Error ? e.message.replace(/^Error transforming [^:]*: /, '').replace(/ \(\d+:\d+\)$/, '') : String(e);
    return { errors: [loc === undefined ? message : `line ${loc.line}, column ${loc.column + 1}: ${message}`] };
  }
}

function isModule(m: unknown): m is KernelModule {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return typeof r.name === 'string' && typeof r.init === 'function' && (r.exit === undefined || typeof r.exit === 'function');
}

/** Evaluate the transpiled module; its only import is the kit. */
function evaluate(js: string, host: Host): { module: KernelModule } | { error: string } {
  const kit = createKit(host);
  const exports: Record<string, unknown> = {};
  const module = { exports };
  const require = (name: string): unknown => {
    if (name === 'vmxlab') return kit;
    throw new Error(`Cannot find module '${name}': a playground module can import only from 'vmxlab'`);
  };
  try {
    new Function('require', 'exports', 'module', `${js}\n//# sourceURL=hypervisor.js`)(require, exports, module);
  } catch (e) {
    const line = editorLine(e);
    return { error: `Your module threw while it was being loaded${line !== undefined ? ` (line ${line})` : ''}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
  const m = (module.exports as Record<string, unknown>).default;
  if (!isModule(m)) return { error: "The module must `export default` a kernel module: { name: string, init(k: Kernel): number, exit?(k: Kernel): void }." };
  // An exception in init or exit becomes an oops; say on which line of the editor it was thrown.
  const cite = <A extends unknown[], R>(fn: (...a: A) => R) => (...a: A): R => {
    try {
      return fn.apply(m, a);
    } catch (e) {
      const line = editorLine(e);
      if (line !== undefined && e instanceof Error) e.message += ` (line ${line} of your module)`;
      throw e;
    }
  };
  return { module: { name: m.name, init: cite(m.init), ...(m.exit !== undefined ? { exit: cite(m.exit) } : {}) } };
}

/**
 * The editor line of the innermost frame of the module in an error's stack. Sucrase keeps the module's lines
 * where they were; `new Function` puts two lines of its own ("function anonymous(…", ") {") before them.
 */
function editorLine(e: unknown): number | undefined {
  const m = /hypervisor\.js:(\d+):\d+/.exec(e instanceof Error ? (e.stack ?? '') : '');
  return m === null ? undefined : Number(m[1]) - 2;
}

/** The trace as the page shows it. */
function exitRecord(e: TracedExit): ExitRecord {
  return {
    cpu: e.lp,
    reason: e.reason,
    basic: e.basicReason,
    name: e.name,
    entryFailure: e.entryFailure,
    qualification: hex(e.qualification, 16),
    guestRip: hex(e.guestRip, 16),
    instructionLength: e.instructionLength ?? null,
  };
}

/** Every field this CPU supports, as the page shows it; fields undefined for the last exit say so. */
function vmcsRows(source: VmcsDumpSource): VmcsDumpRow[] {
  return (dumpVmcs(source)?.rows ?? []).map((r) => ({
    name: r.name, encoding: hex(r.encoding, 4), type: r.type, value: formatVmcsValue(r), undefinedForThisExit: r.undefinedForThisExit,
  }));
}

export async function runHypervisor(req: HypervisorRequest): Promise<WorkerReply> {
  const compiled = transpile(req.source);
  if ('errors' in compiled) return { kind: 'error', error: `TypeScript syntax error:\n${compiled.errors.join('\n')}` };

  const host = bootHost(req.model === '' ? {} : { model: req.model });
  const k = host.kernel;

  // The exit trace, and a copy of the VMCS at every VM exit and every VMLAUNCH/VMRESUME that failed (VMfail):
  // the module may turn VMX off before the run ends. Both come through the VMX units' observer seam.
  const trace = traceExits(host);
  let lastVmcs: { snapshot: VmcsSnapshot; at: string } | null = null;
  for (const unit of host.vmx) {
    const keep = (at: string): void => {
      const snapshot = snapshotVmcs(unit);
      if (snapshot !== null) lastVmcs = { snapshot, at };
    };
    unit.observe({
      onVmExit: (e) => keep(`${e.name}${e.entryFailure ? ' (VM-entry failure)' : ''} on CPU ${e.lp}, before the exit handler ran`),
      onVmEntryFailure: (e) => keep(`${e.instruction} failed (${e.outcome}) on CPU ${e.lp}`),
    });
  }

  const loaded = evaluate(compiled.js, host);
  if ('error' in loaded) return { kind: 'error', error: loaded.error };

  const budget = Math.max(1, Math.min(Math.floor(req.budget), MAX_BUDGET));
  const insmod = k.insmod(loaded.module);
  let stop = 'not run: insmod failed';
  let instructions = 0;
  if (insmod.ok) {
    const r = k.run({ maxInstructions: budget });
    stop = (STOPS[r.reason] ?? r.reason) + (r.detail !== undefined ? `: ${r.detail}` : '');
    instructions = r.instructions;
  }

  const diagnoses: string[] = [];
  const diagnosedFields: string[] = [];
  host.vmx.forEach((u, i) => {
    const d = u.lastDiagnosis();
    if (d === null) return;
    diagnoses.push(`cpu ${i}: ${formatDiagnosis(d)}`);
    if (d.field !== undefined) diagnosedFields.push(d.field);
  });

  // The VMCS after the run: the current one if the module left one, else the copy from the last VM exit.
  const unit = host.vmx[0];
  const current = unit?.state.current ?? null;
  let vmcs: VmcsDumpRow[] = [];
  let vmcsSource = 'none: no VMCS was current after the run, and no VM entry was tried';
  let dumped: VmcsDumpSource | null = null;
  if (unit !== undefined && current !== null) {
    dumped = unit;
    vmcsSource = `the current VMCS of CPU 0 after the run (region at ${hex(current.pa, 8)})`;
  } else if (lastVmcs !== null) {
    const last: { snapshot: VmcsSnapshot; at: string } = lastVmcs;
    dumped = last.snapshot;
    vmcsSource = `the VMCS as it was at the last VM exit or failed VM entry (${last.at}); no VMCS was current after the run`;
  }
  if (dumped !== null) vmcs = vmcsRows(dumped);
  trace.stop();

  return {
    kind: 'hypervisor-result',
    model: host.model.name,
    insmod: insmod.ok ? 'ok' : insmod.message,
    dmesg: k.dmesg(),
    console: host.console.text(),
    exits: trace.entries.map(exitRecord),
    exitsTotal: trace.total,
    exitSummary: trace.summary().map((x) => `${x.name} ×${x.count} (${(100 * x.share).toFixed(1)}%)`),
    diagnoses,
    diagnosedFields,
    stop,
    instructions,
    vmcsSource,
    vmcs,
    // From the same VMCS as the dump; the worker keeps the host so the page can ask about addresses afterwards.
    ept: keepEptOfRun(host, dumped),
  };
}
