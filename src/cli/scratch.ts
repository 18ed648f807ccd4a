// A throwaway copy of the course, for end-to-end tests and benchmarks that edit exercise files or
// grade as a learner would, without touching the real checkout. node_modules is linked, not copied.
import { execFileSync, spawnSync } from 'node:child_process';
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

/** scratchCourse, committed as a fresh git repository: a learner's clone, whose stubs `vmxlab reset` restores. */
export function scratchGitCourse(repo: string, prefix: string): string {
  const root = scratchCourse(repo, prefix);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, stdio: 'ignore' });
  git('init', '-q');
  git('add', '.');
  git('-c', 'user.email=t@example.invalid', '-c', 'user.name=t', 'commit', '-qm', 'course');
  return root;
}

/** Run `node bin/vmxlab.js args` in the course at `root` (no colours) and return its exit code and output. */
export function runVmxlab(root: string, args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/vmxlab.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
