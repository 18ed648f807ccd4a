// End-to-end tests of the learner CLI on a throwaway copy of the course: what a learner sees for
// pristine stubs, solutions, and every kind of bad input. Runs `node bin/vmxlab.js` for real, and
// grades bad input in one warm grader (the GraderClient the CLI uses, kept running as watch mode
// keeps it) rather than a cold `vmxlab` start per case.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CHAPTERS } from '../../chapters/manifest.ts';
import { GraderClient, gradeTimeoutMs } from './grader-client.ts';
import { runVmxlab, scratchGitCourse } from './scratch.ts';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

// These run the real CLI (a node process, then vitest inside it): seconds, not milliseconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });

const REPO = resolve(import.meta.dirname, '../..');
let root: string;
/** The learner's grader, warm across tests (as in watch mode), with the default time limit. */
let grader: GraderClient;
const CHAPTER_0 = CHAPTERS[0]!.exercises.map((e) => e.id);
const ex = (f: string) => join(root, 'exercises/00-machine', f);

const vmxlab = (args: string[], env: Record<string, string> = {}) => runVmxlab(root, args, env);

interface GradeJson {
  passed: boolean;
  chapters: { exercises: { id: string; passed: boolean; problem?: string; tests: { total: number; failed: number } }[] }[];
}
const exercisesOf = (json: GradeJson) => json.chapters.flatMap((c) => c.exercises);

beforeAll(() => {
  root = scratchGitCourse(REPO, 'vmxlab-cli-');
  grader = new GraderClient(root, 'exercises');
  void grader.start().catch(() => undefined); // warms up while the CLI tests run; errors surface on the first grade
});
afterAll(async () => {
  await grader?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('vmxlab grade', () => {
  // Chapter 0 only, to keep these end-to-end runs short; author checks grade every chapter's stubs.
  test('a pristine checkout fails every exercise and exits non-zero', () => {
    const r = vmxlab(['grade', '0', '--json']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as GradeJson;
    expect(json.passed).toBe(false);
    const ex = exercisesOf(json);
    expect(ex.length).toBeGreaterThanOrEqual(3);
    for (const e of ex) {
      expect(e.passed, e.id).toBe(false);
      expect(e.problem, e.id).toBeUndefined(); // a stub fails its tests; it does not crash
      expect(e.tests.failed, e.id).toBeGreaterThan(0);
    }
  });

  test('--solutions passes every exercise and exits 0', () => {
    const r = vmxlab(['grade', '0', '--solutions', '--json']);
    expect(r.code).toBe(0);
    expect(exercisesOf(JSON.parse(r.stdout) as GradeJson).every((e) => e.passed)).toBe(true);
  });

  test('an unknown chapter is a usage error, not a crash', () => {
    const r = vmxlab(['grade', '42']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no chapter '42'/);
  });
});

describe('grading bad learner code (one warm grader)', () => {
  const gradeChapter0 = async () => new Map((await grader.grade(CHAPTER_0)).map((r) => [r.id, r]));
  // These tests break chapter 0's files on purpose; later tests grade code that imports them.
  afterAll(() => {
    for (const f of ['selector.ts', 'descriptor.ts', 'calling-convention.ts', 'vmx-status.ts']) {
      writeFileSync(ex(f), readFileSync(join(REPO, 'exercises/00-machine', f), 'utf8'));
    }
  });

  test('bad learner code gets a message naming the file, never the kit internals', async () => {
    writeFileSync(ex('selector.ts'), readFileSync(ex('selector.ts'), 'utf8').replace('export function parseSelector(', 'export function parseSelector(('));
    writeFileSync(ex('descriptor.ts'), `${readFileSync(ex('descriptor.ts'), 'utf8')}\nthrow new Error('boom at import');\n`);
    writeFileSync(ex('calling-convention.ts'), readFileSync(ex('calling-convention.ts'), 'utf8').replace('export function argumentLocation', 'function argumentLocation'));
    const results = await grader.grade(CHAPTER_0);
    const byId = new Map(results.map((r) => [r.id, r]));
    expect(byId.get('selector')?.problem).toMatch(/^exercises\/00-machine\/selector\.ts:\d+:\d+: syntax error/);
    expect(byId.get('descriptor')?.problem).toMatch(/exercises\/00-machine\/descriptor\.ts.*boom at import/);
    expect(byId.get('calling-convention')?.problem).toMatch(/calling-convention\.ts: does not export 'argumentLocation'/);
    expect(results.every((r) => !r.passed)).toBe(true);
    expect(JSON.stringify(results)).not.toMatch(/node_modules|src\/cli|grader\.ts/);
    // Nothing the learner wrote was touched.
    expect(readFileSync(ex('descriptor.ts'), 'utf8')).toContain('boom at import');
  });

  test("a type error is the compiler's message with file and line, not a confusing test failure", async () => {
    // A number compared with a bigint is always unequal at run time: without the type check the tests
    // only say "expected 'VMfailInvalid' to be 'VMsucceed'".
    const solution = readFileSync(join(root, 'solutions/00-machine/vmx-status.ts'), 'utf8');
    const compared = '(rflags & RFLAGS_CF) !== 0n';
    expect(solution).toContain(compared);
    const text = solution.replace(compared, '(rflags & RFLAGS_CF) !== 0');
    writeFileSync(ex('vmx-status.ts'), text);
    const line = text.split('\n').findIndex((l) => l.includes('!== 0)')) + 1;
    const r = (await gradeChapter0()).get('vmx-status');
    expect(r?.passed).toBe(false);
    expect(r?.problem).toMatch(new RegExp(`^exercises/00-machine/vmx-status\\.ts:${line}:\\d+: type error TS2367: .*'bigint' and 'number'`));
    // Fixed, it passes: the verdict came from the compiler, not from leftovers of the broken file.
    writeFileSync(ex('vmx-status.ts'), solution);
    expect((await gradeChapter0()).get('vmx-status')?.passed).toBe(true);
  });

  test('code that never finishes is stopped, and said so; the other exercises are still graded', async () => {
    writeFileSync(ex('vmx-status.ts'), readFileSync(join(REPO, 'exercises/00-machine/vmx-status.ts'), 'utf8').replace("throw new Error('TODO: vmxStatus');", 'for (;;) {}'));
    // A short limit for this request. The loop never ends, so the outcome does not depend on how fast this machine
    // is; the other exercises of the request stop at the prechecks, so no code but the loop runs against the limit.
    const byId = new Map((await grader.grade(['selector', 'vmx-status', 'calling-convention'], { timeoutMs: 3000 })).map((r) => [r.id, r]));
    expect(byId.get('vmx-status')?.problem).toMatch(/exercises\/00-machine\/vmx-status\.ts: did not finish within 3 s/);
    expect(byId.get('calling-convention')?.problem).toMatch(/does not export/);
    expect(byId.get('selector')?.problem).toMatch(/syntax error/);
  });

  test('the time limit is VMXLAB_TIMEOUT_MS when set, else 60 s', () => {
    vi.stubEnv('VMXLAB_TIMEOUT_MS', '3000');
    expect(gradeTimeoutMs()).toBe(3000);
    vi.unstubAllEnvs();
    vi.stubEnv('VMXLAB_TIMEOUT_MS', undefined);
    expect(gradeTimeoutMs()).toBe(60_000);
    vi.unstubAllEnvs();
  });
});


describe('vmxlab explain-gpa (its logic: explain-gpa.test.ts)', () => {
  test('through #impl: the reference under --solutions explains the address; the untouched stub is "not finished", exit 1, no stack', () => {
    const ref = vmxlab(['explain-gpa', '0x1000', '--solutions']);
    expect(ref.code, ref.stderr).toBe(0);
    expect(ref.stdout).toMatch(/^solutions\/06-ept\/identity-map\.ts on skylake-i5-6300u: the guest ran to its HLT\./);
    expect(ref.stdout).toMatch(/guest-physical 0x1000 → host-physical 0x1000: RWX, WB/);
    const stub = vmxlab(['explain-gpa', '0x1000']);
    expect(stub.code).toBe(1);
    expect(stub.stderr).toMatch(/your chapter 6 code is not finished yet: it threw "TODO: /);
    expect(stub.stderr).toMatch(/Called from: exercises\/06-ept\//);
    expect(stub.stderr).not.toMatch(/^\s+at /m);
  });

  test('code that never finishes is stopped after VMXLAB_TIMEOUT_MS, and said so', () => {
    const file = join(root, 'exercises/06-ept/identity-map.ts');
    writeFileSync(file, readFileSync(join(REPO, 'exercises/06-ept/identity-map.ts'), 'utf8').replace("throw new Error('TODO: eptIdentityPart setup');", 'for (;;) {}'));
    // The loop never ends, so the outcome does not depend on how fast this machine is.
    const r = vmxlab(['explain-gpa', '0x1000'], { VMXLAB_TIMEOUT_MS: '2000' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exercises\/06-ept\/identity-map\.ts did not finish within 2 s \(an endless loop\?\); stopped/);
  });
});
