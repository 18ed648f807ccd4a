// Error messages for learners: keep the message and the learner's own location, drop the
// frames of vitest, node and the kit's internals.
import { relative } from 'node:path';

interface StackLike {
  message?: string;
  stacks?: readonly { file: string; line: number; column: number }[];
  stack?: string;
}

/** Directories whose frames a learner wants to see, most useful first. */
const LEARNER_DIRS = ['exercises/', 'solutions/', 'chapters/'];

export function learnerLocation(root: string, err: StackLike): string | undefined {
  const frames = (err.stacks ?? []).map((f) => ({ ...f, rel: relative(root, f.file.replace(/^file:\/\//, '')) }));
  for (const dir of LEARNER_DIRS) {
    const f = frames.find((fr) => fr.rel.startsWith(dir));
    if (f !== undefined) return `${f.rel}:${f.line}:${f.column}`;
  }
  // Fall back to the raw stack text (syntax errors carry "file:line:col" there).
  const text = `${err.stack ?? ''}\n${err.message ?? ''}`;
  for (const dir of LEARNER_DIRS) {
    const m = new RegExp(`(${dir.replace('/', '\\/')}[^\\s:()]+):(\\d+)(?::(\\d+))?`).exec(text);
    if (m !== null) return `${m[1]}:${m[2]}${m[3] !== undefined ? `:${m[3]}` : ''}`;
  }
  return undefined;
}

/** The first paragraph of a message, without ANSI colours or an appended stack. */
export function cleanMessage(message: string): string {
  const plain = stripAnsi(message);
  const lines = plain.split('\n');
  const cut = lines.findIndex((l) => /^\s+at /.test(l));
  return (cut === -1 ? lines : lines.slice(0, cut)).join('\n').trim();
}

/**
 * A failed test's message. A failed fast-check property carries the assertion that failed as its `cause`:
 * that is the real message, so it comes first; fast-check's report (seed, counterexample, "Enable verbose
 * mode…") follows it.
 */
export function failureMessage(err: { message?: string; cause?: { message?: string } } | undefined): string {
  const message = cleanMessage(err?.message ?? 'failed');
  const cause = err?.cause?.message;
  return cause === undefined ? message : `${cleanMessage(cause)}\n${message}`;
}

/** Text without ANSI colour codes (vitest colours its messages). */
export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[[0-9;]*m/g, '');
}
