// A throwaway copy of the course, for end-to-end tests and benchmarks that edit exercise files or
// grade as a learner would, without touching the real checkout. node_modules is linked, not copied.
import { cpSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a learner's checkout needs to run `vmxlab`: the kit, the course, and its configuration. */
const COURSE_PATHS = ['package.json', 'tsconfig.json', 'vitest.config.ts', 'vitest.setup.ts', 'bin', 'chapters', 'exercises', 'solutions', 'src', 'data'];

/** Copy the course at `repo` into a new temporary directory and return its path (the caller removes it). */
export function scratchCourse(repo: string, prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  for (const p of COURSE_PATHS) cpSync(join(repo, p), join(root, p), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  return root;
}
