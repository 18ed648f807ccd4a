// `::: exercise <id>` … `:::` — an exercise box in the notes. Everything it shows except the
// optional body comes from the chapter manifest: the title, the points, the learner's file,
// the hints and the grading command. An id the manifest does not know is a build error.
import type { MarkdownIt } from 'markdown-it';
import type { SiteChapter, SiteExercise } from '../../../scripts/site/course.ts';
import { containerPlugin, escapeHtml } from './container.ts';

export interface ExerciseOptions {
  chapters: readonly SiteChapter[];
  /** Where the learner's file is shown: given the chapter and exercise, a URL. */
  fileUrl: (chapter: SiteChapter, exercise: SiteExercise) => string;
  /** The command that grades a chapter. */
  gradeCommand?: (chapter: SiteChapter) => string;
}

export function defaultGradeCommand(chapter: SiteChapter): string {
  return `npx vmxlab grade ${chapter.slug}`;
}

/** Find an exercise by id, preferring the chapter the page belongs to. */
export function findExercise(
  chapters: readonly SiteChapter[],
  id: string,
  pageSlug?: string,
): { chapter: SiteChapter; exercise: SiteExercise } | null {
  const ordered = [...chapters].sort((a, b) => Number(b.slug === pageSlug) - Number(a.slug === pageSlug));
  for (const chapter of ordered) {
    const exercise = chapter.exercises.find((e) => e.id === id);
    if (exercise !== undefined) return { chapter, exercise };
  }
  return null;
}

export function exercisePlugin(md: MarkdownIt, options: ExerciseOptions): void {
  const grade = options.gradeCommand ?? defaultGradeCommand;
  containerPlugin(md, 'exercise', {
    open(args, env) {
      const id = args.split(/\s+/)[0] ?? '';
      const page = pageSlug(env);
      const found = findExercise(options.chapters, id, page);
      if (found === null) {
        const where = typeof env.relativePath === 'string' ? ` in ${env.relativePath}` : '';
        throw new Error(`::: exercise ${id}${where}: no exercise with this id in chapters/manifest.ts`);
      }
      const { chapter, exercise } = found;
      const path = `exercises/${chapter.slug}/${exercise.file}`;
      return (
        `<div class="vmx-exercise custom-block" id="exercise-${escapeHtml(exercise.id)}" data-exercise="${escapeHtml(exercise.id)}">\n` +
        `<p class="custom-block-title"><span class="vmx-exercise-label">Exercise</span> ` +
        `<code class="vmx-exercise-id">${escapeHtml(exercise.id)}</code> ${escapeHtml(exercise.title)}` +
        `<span class="vmx-exercise-points">${exercise.points} ${exercise.points === 1 ? 'point' : 'points'}</span></p>\n` +
        `<p class="vmx-exercise-file">Your file: <a href="${escapeHtml(options.fileUrl(chapter, exercise))}"><code>${escapeHtml(path)}</code></a></p>\n`
      );
    },
    close(args, env) {
      const id = args.split(/\s+/)[0] ?? '';
      const found = findExercise(options.chapters, id, pageSlug(env));
      if (found === null) return '</div>\n';
      const { exercise } = found;
      // Hints after the task, folded: watch mode reveals them one at a time, the notes all at once on request.
      const hints =
        exercise.hints.length === 0
          ? ''
          : `<details class="vmx-hints"><summary>Hints (${exercise.hints.length})</summary><ol>` +
            exercise.hints.map((h) => `<li>${md.renderInline(h)}</li>`).join('') +
            `</ol></details>\n`;
      return (
        hints +
        `<p class="vmx-exercise-grade">Grade it: <code>${escapeHtml(grade(found.chapter))}</code></p>\n` +
        `</div>\n`
      );
    },
  });
}

/** The chapter slug of the page being rendered (chapter pages are chapters/<slug>.md). */
function pageSlug(env: Record<string, unknown>): string | undefined {
  const rel = env.relativePath;
  if (typeof rel !== 'string') return undefined;
  const m = /^chapters\/(\d\d-[a-z0-9-]+)\.md$/.exec(rel);
  return m?.[1];
}
