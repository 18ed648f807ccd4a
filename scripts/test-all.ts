// `npm test`: every check the project has, stopping at nothing — each step runs and the summary
// says which failed. Exit status is non-zero if any step failed.
//   typecheck · unit tests (src/) · chapter tests against the solutions · author checks ·
//   site build · browser tests (when Chromium is installed, always in CI)
// Independent steps run side by side (as many as the machine has cores, at least two: most steps
// wait on child processes part of the time); the browser tests wait for the site build and test
// that build. Each step's output is kept and printed whole when the step ends, so parallel steps
// never interleave. VMXLAB_TEST_JOBS=1 runs the steps one after another.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const REPORTS = join(ROOT, '.vmxlab', 'reports');
rmSync(REPORTS, { recursive: true, force: true });
mkdirSync(REPORTS, { recursive: true });

interface Step {
  name: string;
  cmd: string[];
  env?: Record<string, string>;
  /** A vitest JSON report this step writes, for test counts. */
  report?: string;
  skip?: string;
  /** Steps that must pass before this one starts (it is not run when one fails). */
  after?: string[];
}

const vitest = (project: string, report: string) => [
  'npx', 'vitest', 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${join(REPORTS, report)}`,
];
const chromium = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));
const browserTests = join(ROOT, 'tests', 'browser', 'run.ts');

// In start order: the longest chain first (site build, then the browser tests), then the longest steps.
const steps: Step[] = [
  { name: 'site build', cmd: ['npx', 'vitepress', 'build', 'site'] },
  // Two test workers even on two cores (vitest would take one): the steps beside it wait on child processes and
  // the browser part of the time, and the unit step is the longest (a fresh clone: 185 s with one, 160 s with two).
  { name: 'unit tests', cmd: [...vitest('unit', 'unit.json'), '--maxWorkers=2'], report: 'unit.json' },
  {
    name: 'browser tests',
    // The build of this run, not a second one.
    cmd: ['npx', 'tsx', browserTests, '--no-build'],
    after: ['site build'],
    skip: !existsSync(browserTests)
      ? 'no browser tests yet'
      : chromium === undefined && process.env.CI === undefined
        ? 'Chromium is not installed (apt-get install chromium); CI always runs them'
        : undefined,
  },
  { name: 'author checks', cmd: ['npx', 'tsx', 'scripts/author-checks.ts'] },
  // The reference solutions keep no module state, so their test files may share a process (half the CPU time).
  // Learner code is always graded isolated (src/cli/grader.ts).
  { name: 'chapter tests (solutions)', cmd: [...vitest('chapters', 'chapters.json'), '--isolate=false'], env: { VMXLAB_IMPL: 'solutions' }, report: 'chapters.json' },
  // Incremental (tsconfig.json: the build info lives in .vmxlab/, git-ignored): unchanged files are not re-checked.
  { name: 'typecheck', cmd: ['npx', 'tsc', '-p', 'tsconfig.json'] },
];
// The summary lists the steps in pipeline order.
const ORDER = ['typecheck', 'unit tests', 'chapter tests (solutions)', 'author checks', 'site build', 'browser tests'];

const jobs = Math.max(1, Number(process.env.VMXLAB_TEST_JOBS ?? Math.max(2, availableParallelism())));
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

interface Outcome {
  ok: boolean | 'skipped';
  note: string;
  ms: number;
}

/** Run one step with its output captured (stdout and stderr together, in the order written). */
function run(step: Step): Promise<{ status: number | null; signal: NodeJS.Signals | null; output: string; ms: number }> {
  const started = performance.now();
  // Children write to a pipe here; keep their colours when the output is a terminal.
  const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined ? { FORCE_COLOR: '1' } : {};
  const child = spawn(step.cmd[0]!, step.cmd.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...color, ...step.env } });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((done) => {
    child.on('error', (e) => chunks.push(Buffer.from(`${e.message}\n`)));
    child.on('close', (status, signal) => done({ status, signal, output: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
  });
}

let testsPassed = 0;
let testsFailed = 0;
const outcomes = new Map<string, Outcome>();

async function runStep(step: Step): Promise<void> {
  const blocked = (step.after ?? []).filter((d) => outcomes.get(d)?.ok !== true);
  if (step.skip !== undefined || blocked.length > 0) {
    const ok = step.skip !== undefined ? 'skipped' : false;
    outcomes.set(step.name, { ok, note: step.skip ?? `not run: ${blocked.join(', ')} failed`, ms: 0 });
    return;
  }
  process.stdout.write(`▸ ${step.name} started\n`);
  const r = await run(step);
  const ok = r.status === 0;
  let note = ok ? 'ok' : `failed (exit ${r.status ?? r.signal})`;
  if (step.report !== undefined && existsSync(join(REPORTS, step.report))) {
    const json = JSON.parse(readFileSync(join(REPORTS, step.report), 'utf8')) as { numPassedTests: number; numFailedTests: number };
    testsPassed += json.numPassedTests;
    testsFailed += json.numFailedTests;
    note += ` — ${json.numPassedTests} passed, ${json.numFailedTests} failed`;
  }
  outcomes.set(step.name, { ok, note, ms: r.ms });
  process.stdout.write(`\n━━ ${step.name}: ${step.cmd.join(' ')} (${seconds(r.ms)})\n${r.output}${r.output.endsWith('\n') || r.output === '' ? '' : '\n'}`);
}

// A small scheduler: up to `jobs` steps at once, each started when the steps it waits for have ended.
const started = performance.now();
const pending = [...steps];
const running = new Set<Promise<void>>();
while (pending.length > 0 || running.size > 0) {
  const ready = pending.findIndex((s) => (s.after ?? []).every((d) => outcomes.has(d)));
  if (ready >= 0 && running.size < jobs) {
    const [step] = pending.splice(ready, 1);
    const p: Promise<void> = runStep(step!).finally(() => running.delete(p));
    running.add(p);
    continue;
  }
  if (running.size === 0) throw new Error(`steps wait for steps that do not exist: ${pending.map((s) => s.name).join(', ')}`);
  await Promise.race(running);
}
const wall = performance.now() - started;

process.stdout.write('\n━━ summary\n');
const summary = ORDER.map((name) => ({ name, ...outcomes.get(name)! }));
for (const s of summary) {
  const mark = s.ok === 'skipped' ? '-' : s.ok ? '✓' : '✗';
  process.stdout.write(`  ${mark} ${s.name.padEnd(28)} ${(s.ok === 'skipped' || s.ms === 0 ? '' : seconds(s.ms)).padStart(7)}  ${s.note}\n`);
}
const failedSteps = summary.filter((s) => s.ok === false).length;
process.stdout.write(`steps: ${summary.filter((s) => s.ok === true).length} passed, ${failedSteps} failed; total ${seconds(wall)} wall time (${jobs} at a time)\n`);
// The plain closing line CI reads: vitest test counts, plus one failure per failed step without a vitest report.
const counted = (name: string): boolean => {
  const report = steps.find((x) => x.name === name)?.report;
  return report !== undefined && existsSync(join(REPORTS, report));
};
const stepFailures = summary.filter((s) => s.ok === false && !counted(s.name)).length;
process.stdout.write(`${testsPassed} passed, ${testsFailed + stepFailures} failed\n`);
process.exitCode = failedSteps === 0 ? 0 : 1;
