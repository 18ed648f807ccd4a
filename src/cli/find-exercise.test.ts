import { describe, expect, test } from 'vitest';
import { exerciseLabel, findExercise } from './find-exercise.ts';

const idOf = (r: ReturnType<typeof findExercise>) => (typeof r === 'string' ? r : r.exercise.id);

describe('findExercise', () => {
  test('takes the bare id and the "chapter.id" form the lists print', () => {
    expect(idOf(findExercise('vmxon'))).toBe('vmxon');
    expect(idOf(findExercise('1.vmxon'))).toBe('vmxon');
    expect(idOf(findExercise('0.selector'))).toBe('selector');
  });
  test('a wrong chapter number or an unknown id is a message naming what exists', () => {
    expect(findExercise('2.vmxon')).toMatch(/'vmxon' is in chapter 1 \(1\.vmxon\)/);
    expect(findExercise('no-such')).toMatch(/no exercise 'no-such'\. Exercises: 0\.selector, /);
  });
  test('every label round-trips', () => {
    for (const id of ['selector', 'fixed-bits', 'first-launch']) {
      const ref = findExercise(id);
      if (typeof ref === 'string') throw new Error(ref);
      expect(idOf(findExercise(exerciseLabel(ref)))).toBe(id);
    }
  });
});
