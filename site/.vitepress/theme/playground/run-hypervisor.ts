// Run a hypervisor module written in the page (inside the playground worker): strip its types with
// sucrase, evaluate it with the kit as its only import ('vmxlab'), insmod it on a
// freshly booted host, run the machine with an instruction budget, and report what a learner needs
// to see: dmesg, port E9H output, every VM exit, the explanation channel and the VMCS.
import { transform } from 'sucrase';
import { bootHost, type Host } from '../../../../src/kernel/boot-host.ts';
import type { HostEntry, KernelModule } from '../../../../src/kernel/kernel.ts';
import { formatDiagnosis } from '../../../../src/vmx/diagnosis.ts';
import { EXIT_REASON_BASIC_MASK, VMX_EXIT_REASONS_FAILED_VMENTRY, exitReasonByNumber } from '../../../../src/vmx/exit-reasons.ts';
import { SLOT_FIELDS, SLOT_WIDTH, WIDTH16, WIDTH32 } from '../../../../src/vmx/vmcs.ts';
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

function hex(v: bigint, digits: number): string {
  return '0x' + v.toString(16).toUpperCase().padStart(digits, '0');
}

/** Every field this CPU supports, from a copy of a VMCS's field data (lo/hi 32-bit pairs per slot). */
function dumpVmcs(data: Uint32Array, supported: Uint8Array): VmcsDumpRow[] {
  const rows: VmcsDumpRow[] = [];
  SLOT_FIELDS.forEach((f, slot) => {
    if (supported[slot] !== 1) return;
    const value = (BigInt(data[2 * slot + 1]!) << 32n) | BigInt(data[2 * slot]!);
    const digits = SLOT_WIDTH[slot] === WIDTH16 ? 4 : SLOT_WIDTH[slot] === WIDTH32 ? 8 : 16;
    rows.push({ name: f.name, encoding: hex(BigInt(f.encoding), 4), type: f.type, value: hex(value, digits) });
  });
  return rows;
}

export async function runHypervisor(req: HypervisorRequest): Promise<WorkerReply> {
  const compiled = transpile(req.source);
  if ('errors' in compiled) return { kind: 'error', error: `TypeScript syntax error:\n${compiled.errors.join('\n')}` };

  const host = bootHost(req.model === '' ? {} : { model: req.model });
  const k = host.kernel;

  // Every call of a host entry point is a VM exit (or a failed VM entry): record it, and keep a copy of the VMCS as
  // it was at that moment — the module may turn VMX off before the run ends.
  const exits: ExitRecord[] = [];
  let lastVmcs: { data: Uint32Array; supported: Uint8Array; at: string } | null = null;
  const register = k.hostEntry.bind(k);
  k.hostEntry = (name: string, fn: HostEntry): bigint =>
    register(name, (kernel, cpu) => {
      const state = host.vmx[cpu.id]?.state;
      const vmcs = state?.current ?? null;
      if (state !== undefined && vmcs !== null) {
        const reason = Number(vmcs.readByName('VM_EXIT_REASON') ?? 0n);
        const basic = reason & EXIT_REASON_BASIC_MASK;
        const record: ExitRecord = {
          cpu: cpu.id,
          reason,
          basic,
          name: exitReasonByNumber(basic)?.name ?? `unknown exit reason ${basic}`,
          entryFailure: (reason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0,
          qualification: hex(vmcs.readByName('EXIT_QUALIFICATION') ?? 0n, 16),
          guestRip: hex(vmcs.readByName('GUEST_RIP') ?? 0n, 16),
          instructionLength: Number(vmcs.readByName('VM_EXIT_INSTRUCTION_LEN') ?? 0n),
        };
        exits.push(record);
        lastVmcs = { data: vmcs.data.slice(), supported: state.supportedSlots, at: `${record.name}, before ${name} ran` };
      }
      fn(kernel, cpu);
    });

  // A VMLAUNCH or VMRESUME that falls through failed (VMfailInvalid or VMfailValid): keep the VMCS it refused.
  for (const cpu of k.allCpus()) {
    for (const op of ['vmlaunch', 'vmresume'] as const) {
      const instruction = cpu[op].bind(cpu);
      cpu[op] = (): void => {
        instruction();
        const state = host.vmx[cpu.id]?.state;
        if (state?.current != null && !state.nonRoot) {
          lastVmcs = { data: state.current.data.slice(), supported: state.supportedSlots, at: `${op.toUpperCase()} failed on CPU ${cpu.id}` };
        }
      };
    }
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
  const state = host.vmx[0]?.state;
  let vmcs: VmcsDumpRow[] = [];
  let vmcsSource = 'none: no VMCS was current after the run, and no VM entry was tried';
  if (state?.current != null) {
    vmcs = dumpVmcs(state.current.data, state.supportedSlots);
    vmcsSource = `the current VMCS of CPU 0 after the run (region at ${hex(state.current.pa, 8)})`;
  } else if (lastVmcs !== null) {
    const last: { data: Uint32Array; supported: Uint8Array; at: string } = lastVmcs;
    vmcs = dumpVmcs(last.data, last.supported);
    vmcsSource = `the VMCS as it was at the last VM exit or failed VM entry (${last.at}); no VMCS was current after the run`;
  }

  return {
    kind: 'hypervisor-result',
    model: host.model.name,
    insmod: insmod.ok ? 'ok' : insmod.message,
    dmesg: k.dmesg(),
    console: host.console.text(),
    exits,
    diagnoses,
    diagnosedFields,
    stop,
    instructions,
    vmcsSource,
    vmcs,
  };
}
