// Exercise ids as the learner types them: the bare id (`vmxon`) or the form the lists print, chapter number
// first (`1.vmxon`).
import { allExercises, type ExerciseRef } from '../../chapters/manifest.ts';

/** How lists show an exercise: "1.vmxon". */
export function exerciseLabel(ref: ExerciseRef): string {
  return `${ref.chapter.number}.${ref.exercise.id}`;
}

/** The exercise `arg` names, or a message saying why none does (with the ids to choose from). */
export function findExercise(arg: string): ExerciseRef | string {
  const all = allExercises();
  const m = /^(\d+)\.(.+)$/.exec(arg);
  const id = m === null ? arg : m[2]!;
  const ref = all.find((r) => r.exercise.id === id);
  if (ref !== undefined && (m === null || Number(m[1]) === ref.chapter.number)) return ref;
  if (ref !== undefined) return `no exercise '${arg}': '${id}' is in chapter ${ref.chapter.number} (${exerciseLabel(ref)})`;
  return `no exercise '${arg}'. Exercises: ${all.map(exerciseLabel).join(', ')}`;
}
