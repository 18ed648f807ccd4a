// Watch mode on a terminal: one screen, redrawn on every verdict — the header (file, keys, progress) always
// on top, a pending question always at the bottom. The screen function is tested on its own, and the whole
// loop on a captured fake terminal grading a throwaway copy of the course.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { allExercises } from '../../chapters/manifest.ts';
import type { ExerciseResult } from './result.ts';
import { scratchCourse } from './scratch.ts';
import { stripAnsi } from './stack.ts';
import { renderWatch, type WatchScreen } from './watch-screen.ts';
import { runWatch } from './watch.ts';

const plain = (_style: string, text: string) => text;
const descriptor = allExercises().find((r) => r.exercise.id === 'descriptor')!;

function failing(lines: number): ExerciseResult {
  return {
    id: 'descriptor', chapter: '00-machine', title: descriptor.exercise.title, passed: false, points: 0, maxPoints: 10,
    tests: { total: 7, passed: 0, failed: 7 },
    failures: [{ test: 'decodeDescriptor > a test', location: 'exercises/00-machine/descriptor.ts:37:9', message: Array.from({ length: lines }, (_, i) => `line ${i + 1}`).join('\n') }],
  };
}
const screen = (over: Partial<WatchScreen>): WatchScreen => ({
  ref: descriptor, passed: 3, total: 19, interactive: true, verdict: failing(3), hintsShown: 0, notes: [], prompt: [], ...over,
});

describe('renderWatch', () => {
  test('starts with the header: chapter, exercise and progress, the file to edit, the keys', () => {
    const lines = renderWatch(screen({}), plain).split('\n');
    expect(lines[0]).toBe('Chapter 0 — The machine you will virtualize');
    expect(lines[1]).toMatch(/^Exercise 0\.descriptor: .*\[###-+\] 3\/19$/);
    expect(lines[2]).toBe('  edit  exercises/00-machine/descriptor.ts');
    expect(lines[4]).toMatch(/keys: h hint · n next · l list · r re-run · x reset · f full text · q quit/);
  });
  test('a long verdict is cut to fit the terminal; the header stays on top and the question at the bottom', () => {
    const s = screen({ verdict: failing(80), hintsShown: 1, prompt: ['Reset exercises/00-machine/descriptor.ts to the original stub? [y/N]'] });
    const lines = renderWatch(s, plain, { rows: 24, columns: 100 }).split('\n');
    expect(lines.length).toBeLessThanOrEqual(23); // one row for the cursor
    expect(lines[0]).toMatch(/^Chapter 0/);
    expect(lines.at(-1)).toMatch(/\[y\/N\]$/);
    expect(lines).toContain('  1. ' + descriptor.exercise.hints[0]);
    expect(lines.some((l) => /… \d+ more lines \(press f to see them all\)/.test(l))).toBe(true);
    // Asked for in full, nothing is cut.
    expect(renderWatch({ ...s, full: true }, plain, { rows: 24 }).split('\n')).toContain('    line 80');
  });
  test('long lines count as the rows they wrap to', () => {
    const wide = failing(1);
    const s = screen({ verdict: { ...wide, failures: [{ ...wide.failures[0]!, message: Array.from({ length: 12 }, () => 'x'.repeat(150)).join('\n') }] } });
    expect(renderWatch(s, plain, { rows: 24, columns: 80 })).toMatch(/… \d+ more lines/);
    expect(renderWatch(s, plain, { rows: 24, columns: 200 })).not.toMatch(/more lines/);
  });
});

// ---- the whole loop, on a fake terminal ----
vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });
const REPO = resolve(import.meta.dirname, '../..');
let root: string;
beforeAll(() => {
  root = scratchCourse(REPO, 'vmxlab-watch-');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A terminal: keys go in through `stdin`, everything written is kept in `output`. */
function fakeTerminal() {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin });
  let output = '';
  const stdout = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        output += chunk.toString();
        done();
      },
    }),
    { isTTY: true, rows: 40, columns: 120 },
  );
  const frames = () => stripAnsi(output).split('\u001b[2J\u001b[3J\u001b[H').filter((f) => f !== '');
  const waitFor = (re: RegExp) =>
    vi.waitFor(() => {
      if (!re.test(frames().at(-1) ?? '')) throw new Error(`not on screen yet: ${re}\n${frames().at(-1)}`);
    }, { timeout: 60_000, interval: 50 });
  return { stdin, stdout, frames, waitFor };
}

test('watch mode redraws the whole screen on each verdict, and a reset question outlives a re-grade', async () => {
  const term = fakeTerminal();
  const done = runWatch({ root, startExercise: '0.descriptor', serveDocs: false, io: { stdin: term.stdin as never, stdout: term.stdout as never } });
  await term.waitFor(/✗ FAIL descriptor/);
  // The progress bar counts every exercise of the course: 0 done of allExercises().length.
  const header = new RegExp(`^Chapter 0 — The machine you will virtualize\\nExercise 0\\.descriptor: .*\\[-+\\] 0/${allExercises().length}\\n {2}edit {2}exercises/00-machine/descriptor\\.ts\\n`);
  // Every frame, "checking…" and the verdict, is a whole screen that starts with the header.
  expect(term.frames().length).toBeGreaterThanOrEqual(2);
  for (const f of term.frames()) expect(f).toMatch(header);

  term.stdin.write('h');
  await term.waitFor(/Hints 1\/3:/);
  term.stdin.write('x');
  await term.waitFor(/\[y\/N\]\n$/);
  // A save while the question is open: the new verdict is drawn, the question stays at the bottom.
  const file = join(root, 'exercises/00-machine/descriptor.ts');
  writeFileSync(file, readFileSync(join(root, 'solutions/00-machine/descriptor.ts')));
  await term.waitFor(/✓ PASS descriptor/);
  const last = term.frames().at(-1)!;
  expect(last).toMatch(new RegExp(`^Chapter 0 — .*\\nExercise 0\\.descriptor: .*\\[#-+\\] 1/${allExercises().length}\\n`));
  expect(last).toMatch(/Hints 1\/3:/);
  expect(last).toMatch(/Reset exercises\/00-machine\/descriptor\.ts to the original stub\? .*\[y\/N\]\n$/);

  term.stdin.write('n'); // not "y": nothing is reset
  await term.waitFor(/reset cancelled\n$/);
  expect(readFileSync(file, 'utf8')).toBe(readFileSync(join(root, 'solutions/00-machine/descriptor.ts'), 'utf8'));
  term.stdin.write('q');
  expect(await done).toBe(0);
});
