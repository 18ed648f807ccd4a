// What watch mode shows on a terminal, as one screen redrawn on every change: the header (chapter,
// exercise, progress, the file to edit, the keys), the verdict, the hints shown so far, short notes, and a
// question waiting for an answer (reset? which exercise?) last, so it is always on screen.
// Pure: the same state gives the same text, so tests read it directly.
import { exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { exerciseLabel } from './find-exercise.ts';
import { formatResult, progressBar, type painter } from './format.ts';
import type { ExerciseResult } from './result.ts';
import { stripAnsi } from './stack.ts';

type Paint = ReturnType<typeof painter>;

export interface WatchScreen {
  readonly ref: ExerciseRef;
  readonly passed: number;
  readonly total: number;
  /** Keys are read (a terminal): show them. */
  readonly interactive: boolean;
  readonly docsUrl?: string;
  /** The latest verdict, or 'checking' while the tests run. */
  readonly verdict: ExerciseResult | 'checking';
  /** How many of the exercise's hints were revealed (they stay on screen). */
  readonly hintsShown: number;
  /** Short messages since the last verdict ("reset done", "cancelled"). */
  readonly notes: readonly string[];
  /** A question waiting for an answer; drawn last. */
  readonly prompt: readonly string[];
  /** Show the whole verdict even if it does not fit (key f). */
  readonly full?: boolean;
}

export const KEYS = 'keys: h hint · n next · l list · r re-run · x reset · f full text · q quit';

export function renderHeader(s: WatchScreen, paint: Paint): string[] {
  const { ref } = s;
  const p = exercisePaths(ref);
  return [
    paint('bold', `Chapter ${ref.chapter.number} — ${ref.chapter.title}`),
    `Exercise ${paint('bold', exerciseLabel(ref))}: ${ref.exercise.title}   ${progressBar(s.passed, s.total)}`,
    `  edit  ${paint('cyan', p.exercise)}`,
    `  read  ${p.notes}${s.docsUrl !== undefined ? `  ·  ${s.docsUrl}` : ''}`,
    ...(s.interactive ? [paint('dim', `  ${KEYS}`)] : []),
  ];
}

/** The verdict: "checking…", or the result with its first failure; after a pass, where the reference is. */
export function renderVerdict(s: WatchScreen, paint: Paint): string[] {
  if (s.verdict === 'checking') return [paint('dim', 'checking…')];
  const lines = formatResult(s.verdict, paint).split('\n');
  if (s.verdict.passed) {
    const p = exercisePaths(s.ref);
    lines.push(`  Reference solution: ${p.solution}`);
    lines.push(paint('dim', `  Compare: git diff --no-index ${p.exercise} ${p.solution}`));
    lines.push(`  ${progressBar(s.passed, s.total)}${s.interactive ? '  — press n for the next exercise' : ''}`);
  }
  return lines;
}

export function renderHints(s: WatchScreen, paint: Paint): string[] {
  const hints = s.ref.exercise.hints;
  if (s.hintsShown === 0) return [];
  const shown = hints.slice(0, s.hintsShown);
  const last = s.hintsShown >= hints.length ? paint('dim', ' (that is every hint)') : '';
  return [paint('bold', `Hints ${shown.length}/${hints.length}:`) + last, ...shown.map((h, i) => `  ${i + 1}. ${h}`)];
}

/**
 * The whole screen for a terminal of `rows` × `columns`. If it does not fit, the verdict is cut (never the
 * header, the hints or the prompt), and a line says how much was left out.
 */
export function renderWatch(s: WatchScreen, paint: Paint, size: { rows?: number; columns?: number } = {}): string {
  const header = renderHeader(s, paint);
  const hints = renderHints(s, paint);
  const tail = [...hints, ...s.notes, ...s.prompt];
  let verdict = renderVerdict(s, paint);
  if (s.full !== true && size.rows !== undefined) {
    const cols = Math.max(20, size.columns ?? 80);
    const height = (lines: readonly string[]) => lines.reduce((n, l) => n + Math.max(1, Math.ceil(stripAnsi(l).length / cols)), 0);
    // One blank line after the header and one before the tail; one row left for the cursor.
    const room = Math.max(3, size.rows - height(header) - height(tail) - (tail.length > 0 ? 3 : 2));
    if (height(verdict) > room) {
      const kept: string[] = [];
      for (const l of verdict) {
        if (height([...kept, l]) > room - 1) break;
        kept.push(l);
      }
      const cut = verdict.length - kept.length;
      verdict = [...kept, paint('dim', `  … ${cut} more line${cut === 1 ? '' : 's'}${s.interactive ? ' (press f to see them all)' : ''}`)];
    }
  }
  return [...header, '', ...verdict, ...(tail.length > 0 ? ['', ...tail] : [])].join('\n');
}
