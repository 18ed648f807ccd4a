// The chapter manifest as the site sees it. chapters/manifest.ts (the lead's) is the single
// source of the chapter order, titles, objectives and exercises; this file only checks its
// shape at build time so a malformed entry is a build error instead of a broken page.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadModule, REPO_ROOT } from './load.ts';

import type { Chapter, Exercise } from '../../src/cli/chapter.ts';

export type SiteExercise = Exercise;
export type SiteChapter = Chapter;

export const MANIFEST_PATH = 'chapters/manifest.ts' as const;

/** Chapters in manifest order. */
export async function loadChapters(): Promise<SiteChapter[]> {
  const { CHAPTERS } = await loadModule(MANIFEST_PATH);
  return CHAPTERS.map((c: unknown, i: number) => checkChapter(c, i));
}

/** Path of a chapter's notes, relative to the repo root. */
export function chapterReadme(slug: string): string {
  return `chapters/${slug}/README.md`;
}

export function chapterHasNotes(slug: string): boolean {
  return existsSync(resolve(REPO_ROOT, chapterReadme(slug)));
}

function checkChapter(value: unknown, index: number): SiteChapter {
  const where = `${MANIFEST_PATH} CHAPTERS[${index}]`;
  if (typeof value !== 'object' || value === null) throw new Error(`site: ${where} is not an object`);
  const c = value as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof c[k] !== 'string') throw new Error(`site: ${where}.${k} must be a string`);
    return c[k] as string;
  };
  if (typeof c.number !== 'number') throw new Error(`site: ${where}.number must be a number`);
  const slug = str('slug');
  if (!/^\d\d-[a-z0-9-]+$/.test(slug)) throw new Error(`site: ${where}.slug "${slug}" is not NN-name`);
  str('title');
  str('summary');
  if (!Array.isArray(c.objectives)) throw new Error(`site: ${where}.objectives must be an array`);
  if (!Array.isArray(c.exercises)) throw new Error(`site: ${where}.exercises must be an array`);
  c.exercises.forEach((e: unknown, j: number) => checkExercise(e, `${where}.exercises[${j}]`));
  return value as SiteChapter;
}

function checkExercise(value: unknown, where: string): SiteExercise {
  if (typeof value !== 'object' || value === null) throw new Error(`site: ${where} is not an object`);
  const e = value as Record<string, unknown>;
  for (const k of ['id', 'title', 'file', 'test'] as const) {
    if (typeof e[k] !== 'string') throw new Error(`site: ${where}.${k} must be a string`);
  }
  if (typeof e.points !== 'number') throw new Error(`site: ${where}.points must be a number`);
  if (!Array.isArray(e.hints)) throw new Error(`site: ${where}.hints must be an array`);
  return value as SiteExercise;
}

/**
 * The chapters the course plan (DESIGN.md) has after those already written. The site marks them "coming";
 * a chapter that lands in the manifest drops off this list by itself.
 */
export const PLANNED_CHAPTERS: readonly { readonly number: number; readonly title: string }[] = [
  { number: 5, title: 'VM exits' },
  { number: 6, title: 'EPT' },
  { number: 7, title: 'MTRR and memory types' },
  { number: 8, title: 'SMP' },
  { number: 9, title: 'Events and MTF' },
];

/** What the landing page's course map shows: each written chapter with its exercises, then the coming ones. */
export interface CourseMap {
  readonly written: readonly { number: number; title: string; link: string; exercises: number; points: number }[];
  readonly coming: readonly { number: number; title: string }[];
}

export function courseMap(chapters: readonly SiteChapter[]): CourseMap {
  const numbers = new Set(chapters.map((c) => c.number));
  return {
    written: chapters.map((c) => ({
      number: c.number,
      title: c.title,
      link: `/chapters/${c.slug}`,
      exercises: c.exercises.length,
      points: c.exercises.reduce((sum, e) => sum + e.points, 0),
    })),
    coming: PLANNED_CHAPTERS.filter((p) => !numbers.has(p.number)),
  };
}
