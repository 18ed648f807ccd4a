// `npm test`: every check the project has, in order, stopping at nothing — each step runs and
// the summary says which failed. Exit status is non-zero if any step failed.
//   typecheck · unit tests (src/) · chapter tests against the solutions · author checks ·
//   site build · browser tests (when Chromium is installed, always in CI)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
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
}

const vitest = (project: string, report: string) => [
  'npx', 'vitest', 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${join(REPORTS, report)}`,
];
const chromium = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));
const browserTests = join(ROOT, 'tests', 'browser', 'run.ts');

const steps: Step[] = [
  { name: 'typecheck', cmd: ['npx', 'tsc', '-p', 'tsconfig.json'] },
  { name: 'unit tests', cmd: vitest('unit', 'unit.json'), report: 'unit.json' },
  { name: 'chapter tests (solutions)', cmd: vitest('chapters', 'chapters.json'), env: { VMXLAB_IMPL: 'solutions' }, report: 'chapters.json' },
  { name: 'author checks', cmd: ['npx', 'tsx', 'scripts/author-checks.ts'] },
  { name: 'site build', cmd: ['npx', 'vitepress', 'build', 'site'] },
  {
    name: 'browser tests',
    cmd: ['npx', 'tsx', browserTests],
    skip: !existsSync(browserTests)
      ? 'no browser tests yet'
      : chromium === undefined && process.env.CI === undefined
        ? 'Chromium is not installed (apt-get install chromium); CI always runs them'
        : undefined,
  },
];

const summary: { name: string; ok: boolean | 'skipped'; note: string }[] = [];
let testsPassed = 0;
let testsFailed = 0;
for (const step of steps) {
  if (step.skip !== undefined) {
    summary.push({ name: step.name, ok: 'skipped', note: step.skip });
    continue;
  }
  process.stdout.write(`\n━━ ${step.name}: ${step.cmd.join(' ')}\n`);
  const r = spawnSync(step.cmd[0]!, step.cmd.slice(1), { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...step.env } });
  const ok = r.status === 0;
  let note = ok ? 'ok' : `failed (exit ${r.status ?? r.signal})`;
  if (step.report !== undefined && existsSync(join(REPORTS, step.report))) {
    const json = JSON.parse(readFileSync(join(REPORTS, step.report), 'utf8')) as { numPassedTests: number; numFailedTests: number };
    testsPassed += json.numPassedTests;
    testsFailed += json.numFailedTests;
    note += ` — ${json.numPassedTests} passed, ${json.numFailedTests} failed`;
  }
  summary.push({ name: step.name, ok, note });
}

process.stdout.write('\n━━ summary\n');
for (const s of summary) process.stdout.write(`  ${s.ok === 'skipped' ? '-' : s.ok ? '✓' : '✗'} ${s.name.padEnd(28)} ${s.note}\n`);
const failedSteps = summary.filter((s) => s.ok === false).length;
process.stdout.write(`steps: ${summary.filter((s) => s.ok === true).length} passed, ${failedSteps} failed\n`);
// The plain closing line CI reads: vitest test counts, plus one failure per failed non-vitest step.
const stepFailures = summary.filter((s) => s.ok === false && !steps.find((x) => x.name === s.name)?.report).length;
process.stdout.write(`${testsPassed} passed, ${testsFailed + stepFailures} failed\n`);
process.exitCode = failedSteps === 0 ? 0 : 1;
