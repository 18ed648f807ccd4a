// The shape of a chapter in the course manifest (chapters/manifest.ts).
// One manifest drives the CLI, the site sidebar and the author checks.

export interface Exercise {
  /** Unique across the course, kebab-case, e.g. "gdt-descriptor". */
  readonly id: string;
  readonly title: string;
  /** The learner's file, relative to exercises/<slug>/ (the reference is the same path under solutions/). */
  readonly file: string;
  /** The graded test file, relative to chapters/<slug>/. */
  readonly test: string;
  readonly points: number;
  /** From gentle to explicit; `h` in watch mode reveals them one at a time. */
  readonly hints: readonly string[];
}

export interface Chapter {
  readonly number: number;
  /** Directory name under chapters/, exercises/ and solutions/, e.g. "00-machine". */
  readonly slug: string;
  readonly title: string;
  /** One sentence for lists and the site. */
  readonly summary: string;
  readonly objectives: readonly string[];
  readonly exercises: readonly Exercise[];
}
