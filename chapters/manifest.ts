// The course, in the order learners follow it. Each chapter is defined once, in
// chapters/<slug>/chapter.ts; this list only orders them. The CLI, the site and the
// author checks all read it.
import type { Chapter, Exercise } from '../src/cli/chapter.ts';
import machine from './00-machine/chapter.ts';
import vmxon from './01-vmxon/chapter.ts';
import vmcs from './02-vmcs/chapter.ts';
import capabilities from './03-capabilities/chapter.ts';
import firstLaunch from './04-first-launch/chapter.ts';
import exits from './05-exits/chapter.ts';
import ept from './06-ept/chapter.ts';
import mtrr from './07-mtrr/chapter.ts';
import smp from './08-smp/chapter.ts';
import events from './09-events/chapter.ts';

export type { Chapter, Exercise };

export const CHAPTERS: readonly Chapter[] = [machine, vmxon, vmcs, capabilities, firstLaunch, exits, ept, mtrr, smp, events];

export interface ExerciseRef {
  readonly chapter: Chapter;
  readonly exercise: Exercise;
}

/** Every exercise of the course, in order. */
export function allExercises(): ExerciseRef[] {
  return CHAPTERS.flatMap((chapter) => chapter.exercises.map((exercise) => ({ chapter, exercise })));
}

/** Paths of an exercise's files, relative to the repository root. */
export function exercisePaths(ref: ExerciseRef): { exercise: string; solution: string; test: string; notes: string } {
  const { chapter, exercise } = ref;
  return {
    exercise: `exercises/${chapter.slug}/${exercise.file}`,
    solution: `solutions/${chapter.slug}/${exercise.file}`,
    test: `chapters/${chapter.slug}/${exercise.test}`,
    notes: `chapters/${chapter.slug}/README.md`,
  };
}
