// Watch mode: the learner edits an exercise; every save re-grades it and shows the first
// failure with its explanation. Keys (on a terminal): h hint, n next, l list, r re-run,
// x reset, q quit. Without a terminal it prints plain results and ignores keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import { allExercises, exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { formatResult, painter, progressBar } from './format.ts';
import { GraderClient } from './grader-client.ts';
import { loadProgress, saveProgress, type Progress } from './progress.ts';
import { resetExercise } from './reset.ts';
import type { ExerciseResult } from './result.ts';
import { stripAnsi } from './stack.ts';

export interface WatchOptions {
  root: string;
  startExercise?: string;
  serveDocs: boolean;
}

export async function runWatch(opts: WatchOptions): Promise<number> {
  const out = process.stdout;
  const paint = painter(out);
  const say = (s = ''): void => {
    out.write(`${s}\n`);
  };
  const all = allExercises();
  const loaded = loadProgress(opts.root);
  const progress: Progress = loaded.progress;
  if (loaded.warning !== undefined) say(paint('yellow', `note: ${loaded.warning}`));

  let ref = pickStart(all, progress, opts.startExercise);
  if (typeof ref === 'string') {
    process.stderr.write(`vmxlab: ${ref}\n`);
    return 2;
  }
  const grader = new GraderClient(opts.root, 'exercises');
  void grader.start().catch(() => undefined); // warm up; errors surface on the first grade
  const docs = opts.serveDocs ? startDocs(opts.root, (url) => say(paint('dim', `notes: ${url}`))) : undefined;

  let last: ExerciseResult | undefined;
  let running = false;
  let again = false;
  let mode: 'normal' | 'confirm-reset' | 'pick' = 'normal';
  let picked = '';
  const interactive = process.stdin.isTTY === true;

  const current = (): ExerciseRef => ref as ExerciseRef;
  const passedCount = () => all.filter((r) => progress.passed[r.exercise.id] !== undefined).length;

  function header(): void {
    const r = current();
    const p = exercisePaths(r);
    say();
    say(paint('bold', `Chapter ${r.chapter.number} — ${r.chapter.title}`));
    say(`Exercise ${paint('bold', r.exercise.id)}: ${r.exercise.title}   ${progressBar(passedCount(), all.length)}`);
    say(`  edit  ${paint('cyan', p.exercise)}`);
    say(`  read  ${p.notes}`);
    if (interactive) say(paint('dim', '  keys: h hint · n next · l list · r re-run · x reset · q quit'));
  }

  async function check(): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        say(paint('dim', 'checking…'));
        const [result] = await grader.grade([current().exercise.id]);
        last = result!;
        say(formatResult(last, paint));
        if (last.passed) onPass();
      } while (again);
    } finally {
      running = false;
    }
  }

  function onPass(): void {
    const r = current();
    const p = exercisePaths(r);
    if (progress.passed[r.exercise.id] === undefined) progress.passed[r.exercise.id] = new Date().toISOString();
    saveProgress(opts.root, progress);
    say(`  Reference solution: ${p.solution}`);
    say(paint('dim', `  Compare: git diff --no-index ${p.exercise} ${p.solution}`));
    say(`  ${progressBar(passedCount(), all.length)}${interactive ? '  — press n for the next exercise' : ''}`);
  }

  function select(next: ExerciseRef): void {
    ref = next;
    progress.current = next.exercise.id;
    saveProgress(opts.root, progress);
    last = undefined;
    rewatch();
    header();
    void check();
  }

  // Re-grade when anything in the current chapter's exercise directory is saved.
  let watcher: ReturnType<typeof chokidarWatch> | undefined;
  let debounce: NodeJS.Timeout | undefined;
  function rewatch(): void {
    void watcher?.close();
    const dir = resolve(opts.root, 'exercises', current().chapter.slug);
    watcher = chokidarWatch(dir, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 } });
    watcher.on('all', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => void check(), 30);
    });
  }

  function showHint(): void {
    const e = current().exercise;
    const shown = Math.min(e.hints.length, (progress.hintsShown[e.id] ?? 0) + 1);
    progress.hintsShown[e.id] = shown;
    saveProgress(opts.root, progress);
    say(paint('bold', `Hint ${shown}/${e.hints.length}:`) + ` ${e.hints[shown - 1] ?? '(no hints)'}`);
    if (shown === e.hints.length) say(paint('dim', '  (that was the last hint)'));
  }

  function showList(): void {
    say(paint('bold', 'Exercises:'));
    all.forEach((r, i) => {
      const done = progress.passed[r.exercise.id] !== undefined ? paint('green', '✓') : '·';
      const here = r.exercise.id === current().exercise.id ? ' ←' : '';
      say(`  ${String(i + 1).padStart(2)}. ${done} ${r.chapter.number}.${r.exercise.id.padEnd(22)} ${r.exercise.title}${here}`);
    });
    say('Type a number and Enter to open it (Esc to cancel).');
    mode = 'pick';
    picked = '';
  }

  let resolveQuit: (code: number) => void = () => undefined;
  const quit = new Promise<number>((r) => {
    resolveQuit = r;
  });

  function onKey(key: string): void {
    if (key === '\u0003') return resolveQuit(130); // Ctrl-C
    if (mode === 'confirm-reset') {
      mode = 'normal';
      if (key.toLowerCase() !== 'y') return say('reset cancelled');
      const outcome = resetExercise(opts.root, exercisePaths(current()).exercise);
      if (!outcome.ok) return say(paint('red', outcome.message));
      say(`reset done.${outcome.backup !== undefined ? ` Your version is saved at ${outcome.backup}` : ''}`);
      return; // the file watcher re-grades
    }
    if (mode === 'pick') {
      if (key === '\u001b') {
        mode = 'normal';
        return say('cancelled');
      }
      if (/^[0-9]$/.test(key)) {
        picked += key;
        out.write(key);
        return;
      }
      if (key === '\r' || key === '\n') {
        mode = 'normal';
        say();
        const n = Number(picked) - 1;
        if (n >= 0 && n < all.length) return select(all[n]!);
        return say(`no exercise number ${picked}`);
      }
      return;
    }
    switch (key) {
      case 'q':
        return resolveQuit(0);
      case 'h':
        return showHint();
      case 'r':
        return void check();
      case 'l':
        return showList();
      case 'x':
        mode = 'confirm-reset';
        return say(`Reset ${exercisePaths(current()).exercise} to the original stub? Your file is backed up first. [y/N]`);
      case 'n': {
        if (last?.passed !== true) return say('Pass this exercise first (press h for a hint).');
        const i = all.findIndex((r) => r.exercise.id === current().exercise.id);
        if (i + 1 >= all.length) return say(paint('green', 'That was the last exercise. Well done!'));
        return select(all[i + 1]!);
      }
      default:
        return;
    }
  }

  if (interactive) {
    process.stdin.setRawMode(true);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (data: string) => {
      for (const ch of data) onKey(ch);
    });
  }
  process.once('SIGINT', () => resolveQuit(130));
  process.once('SIGTERM', () => resolveQuit(143));

  progress.current = current().exercise.id;
  saveProgress(opts.root, progress);
  rewatch();
  header();
  void check();

  const code = await quit;
  if (interactive) process.stdin.setRawMode(false);
  process.stdin.pause();
  await watcher?.close();
  if (docs?.pid !== undefined) {
    try {
      process.kill(-docs.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  grader.kill();
  say('bye');
  return code;
}

function pickStart(all: ExerciseRef[], progress: Progress, wanted: string | undefined): ExerciseRef | string {
  if (wanted !== undefined) {
    return all.find((r) => r.exercise.id === wanted) ?? `no exercise '${wanted}'. Exercises: ${all.map((r) => r.exercise.id).join(', ')}`;
  }
  const current = all.find((r) => r.exercise.id === progress.current);
  if (current !== undefined) return current;
  return all.find((r) => progress.passed[r.exercise.id] === undefined) ?? all[0]!;
}

/** Serve the notes with vitepress on 127.0.0.1 and report the URL once it is listening. */
function startDocs(root: string, onUrl: (url: string) => void): ChildProcess | undefined {
  try {
    const child = spawn(process.execPath, [join(root, 'node_modules', 'vitepress', 'bin', 'vitepress.js'), 'dev', 'site', '--host', '127.0.0.1'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true, // its own process group: quitting stops vitepress and the esbuild it starts
    });
    let buffer = '';
    child.stdout?.on('data', (d: Buffer) => {
      buffer += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(stripAnsi(buffer));
      if (m !== null) {
        onUrl(m[1]!);
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume();
      }
    });
    child.on('error', () => undefined);
    return child;
  } catch {
    return undefined;
  }
}
