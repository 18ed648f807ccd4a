// Watch mode: the learner edits an exercise; every save re-grades it and shows the first
// failure with its explanation. On a terminal each change redraws one screen (watch-screen.ts) and keys
// work: h hint, n next, l list, r re-run, x reset, f full text, q quit. Without a terminal it appends plain
// results, like a log, and ignores keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import { allExercises, exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { exerciseLabel, findExercise } from './find-exercise.ts';
import { painter } from './format.ts';
import { GraderClient } from './grader-client.ts';
import { loadProgress, saveProgress, type Progress } from './progress.ts';
import { resetExercise } from './reset.ts';
import type { ExerciseResult } from './result.ts';
import { stripAnsi } from './stack.ts';
import { renderHeader, renderVerdict, renderWatch, type WatchScreen } from './watch-screen.ts';

export interface WatchOptions {
  root: string;
  startExercise?: string;
  serveDocs: boolean;
  /** The terminal (default: the process's stdin and stdout); tests pass their own. */
  io?: { stdin: NodeJS.ReadStream; stdout: NodeJS.WriteStream };
}

export async function runWatch(opts: WatchOptions): Promise<number> {
  const out = opts.io?.stdout ?? process.stdout;
  const stdin = opts.io?.stdin ?? process.stdin;
  const paint = painter(out);
  const interactive = stdin.isTTY === true;
  const all = allExercises();
  const loaded = loadProgress(opts.root);
  const progress: Progress = loaded.progress;

  let ref = pickStart(all, progress, opts.startExercise);
  if (typeof ref === 'string') {
    process.stderr.write(`vmxlab: ${ref}\n`);
    return 2;
  }
  const grader = new GraderClient(opts.root, 'exercises');
  void grader.start().catch(() => undefined); // warm up; errors surface on the first grade

  let verdict: ExerciseResult | 'checking' = 'checking';
  let last: ExerciseResult | undefined;
  let running = false;
  let again = false;
  let mode: 'normal' | 'confirm-reset' | 'pick' = 'normal';
  let picked = '';
  let docsUrl: string | undefined;
  let full = false;
  let stopped = false;
  /** Short messages shown until the next verdict. */
  let notes: string[] = loaded.warning !== undefined ? [paint('yellow', `note: ${loaded.warning}`)] : [];

  const current = (): ExerciseRef => ref as ExerciseRef;
  const passedCount = () => all.filter((r) => progress.passed[r.exercise.id] !== undefined).length;

  function prompt(): string[] {
    if (mode === 'confirm-reset') return [`Reset ${exercisePaths(current()).exercise} to the original stub? Your file is backed up first. [y/N]`];
    if (mode !== 'pick') return [];
    const lines = [paint('bold', 'Exercises:')];
    all.forEach((r, i) => {
      const done = progress.passed[r.exercise.id] !== undefined ? paint('green', '✓') : '·';
      const here = r.exercise.id === current().exercise.id ? ' ←' : '';
      lines.push(`  ${String(i + 1).padStart(2)}. ${done} ${exerciseLabel(r).padEnd(24)} ${r.exercise.title}${here}`);
    });
    lines.push(`Type a number and Enter to open it (Esc to cancel): ${picked}`);
    return lines;
  }

  function screen(): WatchScreen {
    return {
      ref: current(), passed: passedCount(), total: all.length, interactive, verdict, notes, prompt: prompt(), full,
      hintsShown: progress.hintsShown[current().exercise.id] ?? 0, ...(docsUrl !== undefined ? { docsUrl } : {}),
    };
  }

  /** On a terminal: clear it and draw the whole screen, so the header and any question stay in view. */
  function draw(): void {
    if (interactive && !stopped) out.write(`${CLEAR}${renderWatch(screen(), paint, { rows: out.rows, columns: out.columns })}\n`);
  }
  /** Without a terminal: append, as a log. */
  const say = (lines: readonly string[]): void => {
    if (!interactive && !stopped) out.write(`${lines.join('\n')}\n`);
  };
  function note(text: string): void {
    notes.push(text);
    draw();
    say([text]);
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
        verdict = 'checking';
        draw();
        say(renderVerdict(screen(), paint));
        const [result] = await grader.grade([current().exercise.id]);
        last = result!;
        if (last.passed && progress.passed[last.id] === undefined) {
          progress.passed[last.id] = new Date().toISOString();
          saveProgress(opts.root, progress);
        }
        verdict = last;
        notes = [];
        full = false;
        draw();
        say(renderVerdict(screen(), paint));
      } while (again);
    } finally {
      running = false;
    }
  }

  function select(next: ExerciseRef): void {
    ref = next;
    progress.current = next.exercise.id;
    saveProgress(opts.root, progress);
    last = undefined;
    notes = [];
    rewatch();
    say(['', ...renderHeader(screen(), paint)]);
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
    if (e.hints.length === 0) return note('(this exercise has no hints)');
    progress.hintsShown[e.id] = Math.min(e.hints.length, (progress.hintsShown[e.id] ?? 0) + 1);
    saveProgress(opts.root, progress);
    draw();
  }

  let resolveQuit: (code: number) => void = () => undefined;
  const quit = new Promise<number>((r) => {
    resolveQuit = r;
  });

  function onKey(key: string): void {
    if (key === '\u0003') return resolveQuit(130); // Ctrl-C
    if (mode === 'confirm-reset') {
      mode = 'normal';
      if (key.toLowerCase() !== 'y') return note('reset cancelled');
      const outcome = resetExercise(opts.root, exercisePaths(current()).exercise);
      if (!outcome.ok) return note(paint('red', outcome.message));
      // The stub does not pass: forget the pass, so the progress bar and `list` say so.
      delete progress.passed[current().exercise.id];
      saveProgress(opts.root, progress);
      return note(`reset done.${outcome.backup !== undefined ? ` Your version is saved at ${outcome.backup}` : ''}`); // the file watcher re-grades
    }
    if (mode === 'pick') {
      if (key === '\u001b') {
        mode = 'normal';
        picked = '';
        return note('cancelled');
      }
      if (/^[0-9]$/.test(key)) {
        picked += key;
        return draw();
      }
      if (key === '\u007f' || key === '\b') {
        picked = picked.slice(0, -1);
        return draw();
      }
      if (key === '\r' || key === '\n') {
        mode = 'normal';
        const n = Number(picked) - 1;
        const typed = picked;
        picked = '';
        if (n >= 0 && n < all.length) return select(all[n]!);
        return note(`no exercise number ${typed}`);
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
      case 'f':
        full = true;
        return draw();
      case 'l':
        mode = 'pick';
        picked = '';
        return draw();
      case 'x':
        mode = 'confirm-reset';
        return draw();
      case 'n': {
        if (last?.passed !== true) return note('Pass this exercise first (press h for a hint).');
        const i = all.findIndex((r) => r.exercise.id === current().exercise.id);
        if (i + 1 >= all.length) return note(paint('green', 'That was the last exercise. Well done!'));
        return select(all[i + 1]!);
      }
      default:
        return;
    }
  }

  if (interactive) {
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.on('data', (data: string) => {
      for (const ch of data) onKey(ch);
    });
    out.on('resize', draw);
  }
  const onSignal = (code: number) => () => resolveQuit(code);
  const onInt = onSignal(130), onTerm = onSignal(143);
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);

  const docs = opts.serveDocs
    ? startDocs(opts.root, (url) => {
        docsUrl = url;
        draw();
        say([paint('dim', `notes: ${url}`)]);
      })
    : undefined;
  progress.current = current().exercise.id;
  saveProgress(opts.root, progress);
  rewatch();
  say(['', ...notes, ...renderHeader(screen(), paint)]);
  void check();

  const code = await quit;
  stopped = true;
  clearTimeout(debounce);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  if (interactive) out.off('resize', draw);
  if (interactive) stdin.setRawMode(false);
  stdin.pause();
  await watcher?.close();
  if (docs?.pid !== undefined) {
    try {
      process.kill(-docs.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  grader.kill();
  out.write('bye\n');
  return code;
}

/** Clear the screen and its scrollback, cursor home: each verdict replaces the last. */
const CLEAR = '\u001b[2J\u001b[3J\u001b[H';

function pickStart(all: ExerciseRef[], progress: Progress, wanted: string | undefined): ExerciseRef | string {
  if (wanted !== undefined) return findExercise(wanted);
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
