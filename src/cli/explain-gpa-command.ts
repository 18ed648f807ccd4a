// The `vmxlab explain-gpa` command around explain-gpa.ts: your code runs in a worker thread whose package-imports
// conditions pick exercises/ or solutions/ for `#impl/06-ept/identity-map` — the same `#impl` mapping the grader uses
// (package.json "imports", conditionsOf) — and which is stopped after the grader's time limit if your code never
// finishes (a loop in TypeScript cannot be interrupted from inside the thread that runs it).
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { gradeTimeoutMs } from './grader-client.ts';
import { conditionsOf } from './grader-precheck.ts';
import type { Implementation } from './grader.ts';
import { EXPLAIN_GPA_USAGE, parseExplainGpaArgs, type EptIdentityPart, type ExplainGpaReport } from './explain-gpa.ts';

interface Job {
  readonly vmxlabExplainGpa: true;
  readonly model: string;
  /** Addresses in hex (a bigint cannot cross postMessage in every Node version we support). */
  readonly gpas: readonly string[];
  readonly file: string;
}

/** Parse, run in the worker, print; the exit status (0 explained, 1 your code did not get that far, 2 bad arguments). */
export async function runExplainGpaCommand(argv: readonly string[], timeoutMs = gradeTimeoutMs()): Promise<number> {
  const args = parseExplainGpaArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`vmxlab explain-gpa: ${args}\n\n${EXPLAIN_GPA_USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${EXPLAIN_GPA_USAGE}\n`);
    return 0;
  }
  const impl: Implementation = args.solutions ? 'solutions' : 'exercises';
  const job: Job = {
    vmxlabExplainGpa: true, model: args.model, gpas: args.gpas.map((g) => `0x${g.toString(16)}`), file: `${impl}/06-ept/identity-map.ts`,
  };
  const report = await inWorker(job, impl, timeoutMs);
  if (!report.ok) {
    process.stderr.write(`vmxlab explain-gpa: ${report.error}\n`);
    return 1;
  }
  process.stdout.write(`${report.text}\n`);
  return 0;
}

function inWorker(job: Job, impl: Implementation, timeoutMs: number): Promise<ExplainGpaReport> {
  // The thread runs TypeScript: register tsx there first, as bin/vmxlab.js does for the CLI.
  const [tsx, self] = [import.meta.resolve('tsx/esm/api'), import.meta.url].map((u) => JSON.stringify(u));
  const boot = `import(${tsx}).then((m) => { m.register(); return import(${self}); })`;
  const worker = new Worker(boot, { eval: true, workerData: job, execArgv: conditionsOf(impl).map((c) => `--conditions=${c}`) });
  return new Promise((resolve) => {
    const done = (r: ExplainGpaReport): void => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => done({
      ok: false, error: `${job.file} did not finish within ${timeoutMs / 1000} s (an endless loop?); stopped. Set VMXLAB_TIMEOUT_MS to change the limit.`,
    }), timeoutMs);
    worker.on('message', (r: ExplainGpaReport) => done(r));
    worker.on('error', (e) => done({ ok: false, error: `could not run ${job.file}: ${e.message}` }));
    worker.on('exit', () => done({ ok: false, error: `the explain-gpa worker stopped before it answered` }));
  });
}

// The thread: load the implementation through #impl, explain, answer once. Anything your module does at load
// time (a syntax error, a throw at top level) becomes a message, not a stack trace.
if (!isMainThread && (workerData as { vmxlabExplainGpa?: boolean } | undefined)?.vmxlabExplainGpa === true) {
  const job = workerData as Job;
  const port = parentPort!;
  let report: ExplainGpaReport;
  try {
    const mod: Record<string, unknown> = await import('#impl/06-ept/identity-map');
    const make = mod.eptIdentityPart;
    if (typeof make !== 'function') {
      report = { ok: false, error: `${job.file} does not export eptIdentityPart() (exercise 6.2): there is nothing to run` };
    } else {
      const { explainGpas } = await import('./explain-gpa.ts');
      report = explainGpas(make() as EptIdentityPart, { model: job.model, gpas: job.gpas.map((g) => BigInt(g)), file: job.file });
    }
  } catch (e) {
    report = { ok: false, error: `${job.file} failed before its part could run: ${firstLine(e)}` };
  }
  port.postMessage(report);
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.split('\n').filter((l) => !/^\s+at /.test(l)).join('\n').trim();
}
