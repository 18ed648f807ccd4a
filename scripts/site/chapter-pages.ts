// Chapter pages: site/chapters/<slug>.md is generated from chapters/<slug>/README.md, never
// edited by hand. The generator adds what the manifest knows (objectives, prev/next, the
// exercise boxes the notes did not place themselves) and a `source` front-matter key that
// edit links and the repo-link rewriter use to find the original file.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chapterHasNotes, chapterReadme, type SiteChapter } from './course.ts';
import { REPO_ROOT } from './load.ts';

export interface Page {
  /** Path relative to site/, e.g. "chapters/00-machine.md". */
  path: string;
  content: string;
}

export function chapterLink(c: SiteChapter): string {
  return `/chapters/${c.slug}`;
}

export function chapterLabel(c: SiteChapter): string {
  return `${c.number}. ${c.title}`;
}

/** YAML scalar: JSON strings are valid YAML double-quoted strings. */
const y = (s: string): string => JSON.stringify(s);

export function chapterPage(chapters: readonly SiteChapter[], index: number, readNotes = readReadme): Page {
  const c = chapters[index];
  const prev = chapters[index - 1];
  const next = chapters[index + 1];
  const source = chapterReadme(c.slug);
  const notes = readNotes(c.slug);
  const front = [
    '---',
    `title: ${y(chapterLabel(c))}`,
    `description: ${y(c.summary)}`,
    `source: ${y(source)}`,
    `chapter: ${c.number}`,
    prev === undefined ? 'prev: false' : `prev:\n  text: ${y(chapterLabel(prev))}\n  link: ${y(chapterLink(prev))}`,
    next === undefined ? 'next: false' : `next:\n  text: ${y(chapterLabel(next))}\n  link: ${y(chapterLink(next))}`,
    '---',
    '',
  ].join('\n');

  // The manifest's objectives, unless the notes already have their own section for them.
  const notesHaveObjectives = notes !== null && /^#{2,3}\s+(learning\s+)?objectives\b/im.test(notes);
  const objectives =
    c.objectives.length === 0 || notesHaveObjectives
      ? ''
      : `::: info What you will be able to do\n${c.objectives.map((o) => `- ${o}`).join('\n')}\n:::\n\n`;

  let body: string;
  if (notes === null) {
    body =
      `# ${c.title}\n\n${objectives}${c.summary}\n\n` +
      `::: warning Notes in progress\nThe notes for this chapter (\`${source}\`) have not been written yet; ` +
      `the exercises below are already graded.\n:::\n`;
  } else {
    body = insertAfterTitle(notes, objectives, c.title);
  }

  // Every exercise of the manifest appears once: where the notes put it, else at the end.
  const missing = c.exercises.filter((e) => !new RegExp(`^:::\\s*exercise\\s+${escapeRegExp(e.id)}\\s*$`, 'm').test(body));
  if (missing.length > 0) {
    body += `\n\n## Exercises\n\n` + missing.map((e) => `::: exercise ${e.id}\n:::\n`).join('\n');
  }
  return { path: `chapters/${c.slug}.md`, content: front + body.trimEnd() + '\n' };
}

/** The chapter list page, /chapters/, with the chapters still to come named as such. */
export function chaptersIndexPage(chapters: readonly SiteChapter[], coming: readonly { number: number; title: string }[] = []): Page {
  let md = `---\ntitle: Chapters\n---\n\n# Chapters\n\nOne hypervisor, built chapter by chapter: each chapter uses your code from the ones before.\n\n`;
  md += `| # | Chapter | What you do | Exercises | Points |\n|---|---|---|---|---|\n`;
  for (const c of chapters) {
    const points = c.exercises.reduce((sum, e) => sum + e.points, 0);
    md += `| ${c.number} | [${escapeCell(c.title)}](${chapterLink(c)}) | ${escapeCell(c.summary)} | ${c.exercises.length} | ${points} |\n`;
  }
  if (coming.length > 0) {
    md += `\n**Coming** (not written yet): ${coming.map((c) => `${c.number}. ${c.title}`).join(' · ')}.\n`;
  }
  return { path: 'chapters/index.md', content: md };
}

function readReadme(slug: string): string | null {
  if (!chapterHasNotes(slug)) return null;
  return readFileSync(resolve(REPO_ROOT, chapterReadme(slug)), 'utf8');
}

/** Put `block` after the first `# ` heading (outside code fences); add a heading when there is none. */
export function insertAfterTitle(notes: string, block: string, fallbackTitle: string): string {
  const lines = notes.split('\n');
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    if (/^(```|~~~)/.test(lines[i])) inFence = !inFence;
    if (!inFence && /^#\s/.test(lines[i])) {
      return [...lines.slice(0, i + 1), '', block.trimEnd(), ...lines.slice(i + 1)].join('\n');
    }
  }
  return `# ${fallbackTitle}\n\n${block}${notes}`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Site link of an exercise's page (the learner's starting file, shown on the site). */
export function exercisePageLink(c: SiteChapter, exerciseId: string): string {
  return `/exercises/${c.slug}/${exerciseId}`;
}

/**
 * One page per exercise showing the learner's starting file (exercises/<slug>/<file>) as it is in
 * the repository, so the notes can link to it without leaving the site.
 */
export function exercisePages(chapters: readonly SiteChapter[], readFile = readRepoFile): Page[] {
  const pages: Page[] = [];
  for (const c of chapters) {
    for (const e of c.exercises) {
      const path = `exercises/${c.slug}/${e.file}`;
      const text = readFile(path);
      if (text === null) throw new Error(`site: ${path} (exercise ${e.id} in chapters/manifest.ts) does not exist`);
      let fence = '```';
      while (text.includes(fence)) fence += '`';
      const lang = e.file.endsWith('.ts') ? 'ts' : 'text';
      pages.push({
        path: `exercises/${c.slug}/${e.id}.md`,
        content:
          `---\ntitle: ${y(`Exercise ${e.id}`)}\ndescription: ${y(e.title)}\nsource: ${y(path)}\nprev: false\nnext: false\n---\n\n` +
          `# Exercise \`${e.id}\`: ${e.title}\n\n` +
          `Chapter [${chapterLabel(c)}](${chapterLink(c)}#exercise-${e.id}) · ${e.points} ${e.points === 1 ? 'point' : 'points'} · ` +
          `grade it with \`npx vmxlab grade ${c.slug}\`\n\n` +
          `This is the starting file, \`${path}\`, as the course ships it. Edit your copy in your checkout; ` +
          `\`npm start\` re-grades it on every save.\n\n` +
          `${fence}${lang}\n${text.trimEnd()}\n${fence}\n`,
      });
    }
  }
  return pages;
}

function readRepoFile(path: string): string | null {
  const abs = resolve(REPO_ROOT, path);
  return existsSync(abs) ? readFileSync(abs, 'utf8') : null;
}
