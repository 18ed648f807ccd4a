// After a damaged state file (progress.ts), which exercises pass is recomputed from the learner's files at
// once. An exercise file still identical to its committed stub is not graded: an untouched stub always fails
// (the author checks make sure of it), so only the files the learner changed cost a test run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allExercises, exercisePaths } from '../../chapters/manifest.ts';
import { saveProgress, type Progress } from './progress.ts';
import { pristineText } from './reset.ts';
import type { ExerciseResult } from './result.ts';

/** Grade the exercises the learner has touched, record those that pass, save. Returns the ids that pass. */
export async function recomputeProgress(
  root: string,
  progress: Progress,
  grade: (ids: readonly string[]) => Promise<ExerciseResult[]>,
): Promise<string[]> {
  const touched = allExercises()
    .filter((ref) => {
      const file = exercisePaths(ref).exercise;
      const stub = pristineText(root, file);
      try {
        return stub === undefined || readFileSync(join(root, file), 'utf8') !== stub;
      } catch {
        return false; // a missing file does not pass
      }
    })
    .map((ref) => ref.exercise.id);
  const results = touched.length === 0 ? [] : await grade(touched);
  const now = new Date().toISOString();
  const passed = results.filter((r) => r.passed).map((r) => r.id);
  for (const id of passed) progress.passed[id] ??= now;
  saveProgress(root, progress);
  return passed;
}
