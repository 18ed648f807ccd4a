// `vmxlab reset <exercise>`: put the pristine stub back. The learner's current file is copied
// to .vmxlab/backups/ first, so a reset never loses work.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Where the pristine stubs come from: the upstream branch if the learner has committed on top. */
const PRISTINE_REFS = ['origin/HEAD', 'origin/main', 'HEAD'];

export type ResetOutcome = { ok: true; backup?: string } | { ok: false; message: string };

export function resetExercise(root: string, relFile: string): ResetOutcome {
  const pristine = pristineText(root, relFile);
  if (pristine === undefined) {
    return { ok: false, message: `could not find the original ${relFile} in git (tried ${PRISTINE_REFS.join(', ')}). Is this a git checkout of VMX Lab?` };
  }
  const file = join(root, relFile);
  let backup: string | undefined;
  if (existsSync(file)) {
    const dir = join(root, '.vmxlab', 'backups');
    mkdirSync(dir, { recursive: true });
    backup = join(dir, `${basename(relFile)}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
    copyFileSync(file, backup);
  }
  writeFileSync(file, pristine);
  return { ok: true, ...(backup !== undefined ? { backup } : {}) };
}

/** The committed text of `relFile` (the stub the learner started from), or undefined outside a git checkout. */
export function pristineText(root: string, relFile: string): string | undefined {
  for (const ref of PRISTINE_REFS) {
    try {
      return execFileSync('git', ['show', `${ref}:${relFile}`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      // try the next ref
    }
  }
  return undefined;
}
