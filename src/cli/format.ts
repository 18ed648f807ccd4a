// Text output of the CLI: results, progress bars, chapter lists. Colour only on a terminal
// (and never with NO_COLOR), so logs and CI output stay plain.
import { styleText } from 'node:util';
import type { Chapter } from './chapter.ts';
import type { ExerciseResult } from './result.ts';
import { stripAnsi } from './stack.ts';

type Style = 'green' | 'red' | 'yellow' | 'dim' | 'bold' | 'cyan';

export function painter(stream: NodeJS.WriteStream): (style: Style, text: string) => string {
  const color = stream.isTTY === true && process.env.NO_COLOR === undefined;
  return (style, text) => (color ? styleText(style, text) : text);
}

/** `[###-----] 3/8`. Any progress shows at least one mark, and the bar is full only when everything is done. */
export function progressBar(done: number, total: number, width = 20): string {
  const share = total === 0 ? 0 : Math.round((done / total) * width);
  const filled = done <= 0 || total === 0 ? 0 : done >= total ? width : Math.min(width - 1, Math.max(1, share));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}`;
}

/** One exercise's verdict, with its first failure explained (or every failure with `all`). */
export function formatResult(r: ExerciseResult, paint: ReturnType<typeof painter>, opts: { all?: boolean } = {}): string {
  const lines: string[] = [];
  if (r.passed) {
    lines.push(`${paint('green', '✓ PASS')} ${r.id} — ${r.title} (${r.tests.passed}/${r.tests.total} tests, ${r.points}/${r.maxPoints} points)`);
    return lines.join('\n');
  }
  if (r.problem !== undefined) {
    lines.push(`${paint('red', '✗ FAIL')} ${r.id} — ${r.title}`);
    lines.push(`  ${r.problem}`);
    return lines.join('\n');
  }
  lines.push(`${paint('red', '✗ FAIL')} ${r.id} — ${r.title} (${r.tests.passed}/${r.tests.total} tests pass)`);
  const shown = opts.all === true ? r.failures : r.failures.slice(0, 1);
  for (const f of shown) {
    lines.push(`  ${paint('bold', f.test)}`);
    if (f.location !== undefined) lines.push(`  ${paint('cyan', f.location)}`);
    for (const l of f.message.split('\n')) lines.push(`    ${l}`);
    if (f.diff !== undefined) for (const l of stripAnsi(f.diff).split('\n')) lines.push(`    ${l}`);
  }
  if (shown.length < r.failures.length) lines.push(paint('dim', `  (+${r.failures.length - shown.length} more failing tests)`));
  return lines.join('\n');
}

/** A table of exercises for `grade`: one line each, then per-chapter and total points. */
export function formatGrades(chapters: readonly { chapter: Chapter; results: readonly ExerciseResult[] }[], paint: ReturnType<typeof painter>): string {
  const lines: string[] = [];
  let points = 0;
  let max = 0;
  let passed = 0;
  let count = 0;
  for (const { chapter, results } of chapters) {
    lines.push(paint('bold', `Chapter ${chapter.number} — ${chapter.title}`));
    let cp = 0;
    let cm = 0;
    for (const r of results) {
      const mark = r.passed ? paint('green', '✓') : paint('red', '✗');
      const tests = r.problem !== undefined ? 'not run' : `${r.tests.passed}/${r.tests.total} tests`;
      lines.push(`  ${mark} ${r.id.padEnd(24)} ${`${r.points}/${r.maxPoints}`.padStart(6)} points   ${tests}`);
      if (!r.passed) {
        const why = r.problem ?? (r.failures[0] === undefined ? '' : `${r.failures[0].location ?? ''} ${r.failures[0].message.split('\n')[0]}`.trim());
        if (why !== '') lines.push(paint('dim', `      ${why}`));
      }
      cp += r.points;
      cm += r.maxPoints;
      passed += r.passed ? 1 : 0;
      count++;
    }
    lines.push(`  chapter ${chapter.number}: ${cp}/${cm} points`);
    points += cp;
    max += cm;
  }
  lines.push('');
  lines.push(paint('bold', `Total: ${points}/${max} points, ${passed}/${count} exercises passed`));
  return lines.join('\n');
}
