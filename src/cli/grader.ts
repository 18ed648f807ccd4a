// The grader: a warm vitest instance that runs chapter tests against the learner's exercises
// (or the reference solutions) and turns vitest's results into ExerciseResults.
// It runs inside a child process (grader-worker.ts) so the CLI can stop code that never finishes.
import { resolve } from 'node:path';
import type { TestCase, TestModule, Vitest } from 'vitest/node';
import { allExercises, exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { importedImplNames, precheckExercise } from './precheck.ts';
import type { ExerciseResult, TestFailure } from './result.ts';
import { cleanMessage, failureMessage, learnerLocation } from './stack.ts';

/** Whose code the tests import through `#impl/...`: the learner's, the reference, or the committed stubs. */
export type Implementation = 'exercises' | 'solutions' | 'pristine';

export interface Grader {
  grade(ids: readonly string[]): Promise<ExerciseResult[]>;
  close(): Promise<void>;
}

/** Where author checks put the committed exercise stubs (see scripts/author-checks.ts). */
// At the same depth as exercises/, so the stubs' relative imports (../../src/…, ../01-vmxon/…) resolve.
export const PRISTINE_DIR = '.pristine-exercises';

export async function createGrader(root: string, impl: Implementation): Promise<Grader> {
  // The package-imports condition that points `#impl/...` at solutions/ is chosen when the
  // vitest config loads (vitest.config.ts reads VMXLAB_IMPL).
  process.env.VMXLAB_IMPL = impl;
  const { createVitest } = await import('vitest/node');
  const vitest: Vitest = await createVitest(
    'test',
    { root, watch: false, project: ['chapters'], reporters: [{}], silent: true },
    {},
  );

  return {
    async grade(ids) {
      const refs = ids.map((id) => findRef(id));
      const results: ExerciseResult[] = [];
      const runnable: ExerciseRef[] = [];
      for (const ref of refs) {
        const problem = precheck(root, ref, impl);
        if (problem !== undefined) results.push(resultOf(ref, [], problem));
        else runnable.push(ref);
      }
      if (runnable.length > 0) {
        for (const ref of runnable) vitest.invalidateFile(resolve(root, implFile(ref, impl)));
        const files = runnable.map((ref) => resolve(root, exercisePaths(ref).test));
        const specs = (await vitest.globTestSpecifications(files)).filter((s) => files.includes(s.moduleId));
        const run = await vitest.runTestSpecifications(specs, false);
        for (const ref of runnable) {
          const file = resolve(root, exercisePaths(ref).test);
          const mod = run.testModules.find((m) => m.moduleId === file);
          results.push(fromModule(root, ref, impl, mod));
        }
      }
      // Keep the caller's order.
      return ids.map((id) => results.find((r) => r.id === id)!);
    },
    async close() {
      await vitest.close();
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

function precheck(root: string, ref: ExerciseRef, impl: Implementation): string | undefined {
  const file = implFile(ref, impl);
  const required = importedImplNames(resolve(root, exercisePaths(ref).test));
  return precheckExercise(resolve(root, file), file, required);
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
