// The grader: a warm vitest instance that runs chapter tests against the learner's exercises
// (or the reference solutions) and turns vitest's results into ExerciseResults.
// It runs inside a child process (grader-worker.ts) so the CLI can stop code that never finishes.
import { resolve } from 'node:path';
import type { Reporter, TestCase, TestModule, Vitest } from 'vitest/node';
import { allExercises, exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { preforkPool } from './grader-pool.ts';
import { startPrechecks, type PrecheckItem } from './grader-precheck.ts';
import type { ExerciseResult, TestFailure } from './result.ts';
import { cleanMessage, failureMessage, learnerLocation } from './stack.ts';

/** Whose code the tests import through `#impl/...`: the learner's, the reference, or the committed stubs. */
export type Implementation = 'exercises' | 'solutions' | 'pristine';

/**
 * What a grade request reports while it runs: an exercise's tests started (learner code is running) or
 * ended, or its result is final. The CLI uses these to stop only the exercise that never finishes.
 */
export type GradeEvent = { type: 'running'; id: string } | { type: 'ended'; id: string } | { type: 'done'; result: ExerciseResult };

export interface Grader {
  grade(ids: readonly string[], onEvent?: (e: GradeEvent) => void): Promise<ExerciseResult[]>;
  close(): Promise<void>;
}

/** Where author checks put the committed exercise stubs (see scripts/author-checks.ts). */
// At the same depth as exercises/, so the stubs' relative imports (../../src/…, ../01-vmxon/…) resolve.
export const PRISTINE_DIR = '.pristine-exercises';

export async function createGrader(root: string, impl: Implementation): Promise<Grader> {
  // The compiler loads in its thread while vitest starts here.
  const prechecks = startPrechecks(root, impl);
  // The package-imports condition that points `#impl/...` at solutions/ is chosen when the
  // vitest config loads (vitest.config.ts reads VMXLAB_IMPL).
  process.env.VMXLAB_IMPL = impl;
  const { createVitest } = await import('vitest/node');
  const pool = preforkPool();
  // Test modules of the current request, by test file: their start and end are reported as they happen.
  let onModule: ((m: TestModule, phase: 'queued' | 'end') => void) | undefined;
  const progress: Reporter = {
    onTestModuleQueued: (m) => onModule?.(m, 'queued'),
    onTestModuleEnd: (m) => onModule?.(m, 'end'),
  };
  const vitest: Vitest = await createVitest(
    'test',
    { root, watch: false, project: ['chapters'], reporters: [progress], silent: true, pool },
    {},
  );

  return {
    async grade(ids, onEvent = () => undefined) {
      const refs = ids.map((id) => findRef(id));
      const results = new Map<string, ExerciseResult>();
      const finish = (r: ExerciseResult): void => {
        results.set(r.id, r);
        onEvent({ type: 'done', result: r });
      };
      const items: PrecheckItem[] = refs.map((ref) => ({
        id: ref.exercise.id,
        file: resolve(root, implFile(ref, impl)),
        display: implFile(ref, impl),
        test: resolve(root, exercisePaths(ref).test),
      }));
      const checks = prechecks.run(items);
      const parseProblems = await checks.parsed;
      const runnable = refs.filter((ref) => parseProblems[ref.exercise.id] === undefined);
      for (const ref of refs) {
        const problem = parseProblems[ref.exercise.id];
        if (problem !== undefined) finish(resultOf(ref, [], problem));
      }
      if (runnable.length > 0) {
        // The tests run while the compiler checks types; an exercise that does not compile scores nothing, and
        // its verdict is the compiler's message (the test outcome of code that does not type-check is not shown).
        const byTest = new Map(runnable.map((ref) => [resolve(root, exercisePaths(ref).test), ref]));
        onModule = (m, phase) => {
          const ref = byTest.get(m.moduleId);
          if (ref === undefined) return;
          if (phase === 'queued') return onEvent({ type: 'running', id: ref.exercise.id });
          onEvent({ type: 'ended', id: ref.exercise.id });
          void checks.typed.then((typeProblems) => finish(verdict(ref, m, typeProblems)), () => undefined);
        };
        for (const ref of runnable) vitest.invalidateFile(resolve(root, implFile(ref, impl)));
        const files = [...byTest.keys()];
        const specs = (await vitest.globTestSpecifications(files)).filter((s) => files.includes(s.moduleId));
        const run = await vitest.runTestSpecifications(specs, false).finally(() => {
          onModule = undefined;
        });
        const typeProblems = await checks.typed;
        for (const ref of runnable) {
          if (results.has(ref.exercise.id)) continue;
          const file = resolve(root, exercisePaths(ref).test);
          finish(verdict(ref, run.testModules.find((m) => m.moduleId === file), typeProblems));
        }
      }
      // Keep the caller's order.
      return ids.map((id) => results.get(id)!);

      function verdict(ref: ExerciseRef, mod: TestModule | undefined, typeProblems: Record<string, string>): ExerciseResult {
        const typeProblem = typeProblems[ref.exercise.id];
        return typeProblem !== undefined ? resultOf(ref, [], typeProblem) : fromModule(root, ref, impl, mod);
      }
    },
    async close() {
      pool.dispose();
      await Promise.all([vitest.close(), prechecks.close()]);
    },
  };
}

function findRef(id: string): ExerciseRef {
  const ref = allExercises().find((r) => r.exercise.id === id);
  if (ref === undefined) throw new Error(`unknown exercise '${id}'`);
  return ref;
}

function implFile(ref: ExerciseRef, impl: Implementation): string {
  const p = exercisePaths(ref);
  if (impl === 'solutions') return p.solution;
  if (impl === 'pristine') return `${PRISTINE_DIR}/${ref.chapter.slug}/${ref.exercise.file}`;
  return p.exercise;
}

function fromModule(root: string, ref: ExerciseRef, impl: Implementation, mod: TestModule | undefined): ExerciseResult {
  if (mod === undefined) return resultOf(ref, [], `${exercisePaths(ref).test}: vitest did not run this file.`);
  const cases: TestCase[] = [...mod.children.allTests()];
  const failures: TestFailure[] = [];
  let passed = 0;
  for (const t of cases) {
    const r = t.result();
    if (r.state === 'passed') passed++;
    else if (r.state === 'failed') {
      const err = r.errors[0];
      failures.push({
        test: t.fullName,
        message: failureMessage(err),
        location: err === undefined ? undefined : learnerLocation(root, err),
        diff: typeof err?.diff === 'string' ? err.diff : undefined,
      });
    }
  }
  // A file that failed to load (an exception at import time) has module-level errors and no tests.
  const moduleErrors = mod.errors();
  let problem: string | undefined;
  if (moduleErrors.length > 0) {
    const e = moduleErrors[0]!;
    const where = learnerLocation(root, e) ?? implFile(ref, impl);
    problem = `${where}: ${cleanMessage(e.message)}`;
  }
  return resultOf(ref, failures, problem, cases.length, passed);
}

function resultOf(ref: ExerciseRef, failures: TestFailure[], problem: string | undefined, total = 0, passed = 0): ExerciseResult {
  const ok = problem === undefined && total > 0 && passed === total;
  return {
    id: ref.exercise.id,
    chapter: ref.chapter.slug,
    title: ref.exercise.title,
    passed: ok,
    points: ok ? ref.exercise.points : 0,
    maxPoints: ref.exercise.points,
    tests: { total, passed, failed: total - passed },
    failures,
    ...(problem !== undefined ? { problem } : {}),
  };
}
