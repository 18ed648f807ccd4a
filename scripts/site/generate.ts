// Generates the site's derived pages before vitepress reads site/: chapter pages from the
// manifest and chapters/*/README.md, reference pages from the project's tables. Called from
// site/.vitepress/config.mts, so `vitepress build site` alone is enough. Generated files are
// listed in site/.gitignore; edit their sources, never them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { kernelApiPage } from './api-page.ts';
import { chapterLabel, chapterLink, chapterPage, chaptersIndexPage, exercisePages, type Page } from './chapter-pages.ts';
import { courseMap, loadChapters, type CourseMap, type SiteChapter } from './course.ts';
import { loadOptional, loadTable, REPO_ROOT } from './load.ts';
import { citationsInMarkdown, sdmIndexPage, type Citation } from './sdm-index.ts';
import { DIAGRAMS } from '../../site/.vitepress/markdown/diagrams.ts';
import {
  capabilityPage,
  entryChecksPage,
  errorsPage,
  exitReasonsPage,
  layoutsPage,
  pendingPage,
  vmcsFieldsPage,
  vmxOperationPage,
  type CpuModelRow,
  describeCapabilities,
  type CapabilitiesView,
  type ControlBitRow,
  type DecodedMsr,
  type EntryCheckRow,
  type EntryFailureRow,
  type ErrorRow,
  type ExitReasonRow,
  type FieldGroup,
  type FieldRow,
} from './reference-pages.ts';

/** A table the site reads. `landed`: it is committed, so its absence is a build error. */
export interface TableSource {
  file: string;
  exportName: string;
  landed: boolean;
}

export const TABLE_SOURCES = {
  fields: { file: 'src/vmx/fields.ts', exportName: 'VMCS_FIELDS', landed: true },
  exitReasons: { file: 'src/vmx/exit-reasons.ts', exportName: 'EXIT_REASONS', landed: true },
  errors: { file: 'src/vmx/errors.ts', exportName: 'VM_INSTRUCTION_ERRORS', landed: true },
  cpuModels: { file: 'src/machine/cpu-model.ts', exportName: 'CPU_MODELS', landed: true },
  /** The file is found by looking for `export const ENTRY_CHECKS` under src/vmx/entry/. */
  entryChecks: { file: 'src/vmx/entry', exportName: 'ENTRY_CHECKS', landed: true },
  manifest: { file: 'chapters/manifest.ts', exportName: 'CHAPTERS', landed: true },
} satisfies Record<string, TableSource>;

/** Everything the generated pages are made from; the tests compare the pages with these. */
export interface SiteTables {
  chapters: SiteChapter[];
  fields: readonly FieldRow[] | null;
  fieldGroups: readonly FieldGroup[] | null;
  exitReasons: readonly ExitReasonRow[] | null;
  errors: readonly ErrorRow[] | null;
  entryFailures: readonly EntryFailureRow[] | null;
  entryChecks: readonly EntryCheckRow[] | null;
  cpuModels: readonly CpuModelRow[] | null;
  msrNames: ReadonlyMap<number, string>;
  decodeCapabilities: ((model: CpuModelRow) => DecodedMsr[]) | null;
}

async function required<T>(src: TableSource, file = src.file): Promise<readonly T[] | null> {
  const rows = await loadTable<T>(file, src.exportName);
  if (rows === null && src.landed) {
    throw new Error(`site: ${file} (${src.exportName}) has landed but is missing now — the reference pages need it`);
  }
  return rows;
}

/** The file under src/vmx/entry/ that exports ENTRY_CHECKS, if any. */
export function findEntryChecksFile(): string | null {
  const dir = resolve(REPO_ROOT, TABLE_SOURCES.entryChecks.file);
  if (!existsSync(dir)) return null;
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.ts') || name.endsWith('.test.ts')) continue;
    const text = readFileSync(join(dir, name), 'utf8');
    if (/export\s+const\s+ENTRY_CHECKS\b/.test(text)) return `${TABLE_SOURCES.entryChecks.file}/${name}`;
  }
  return null;
}

export async function loadSiteTables(): Promise<SiteTables> {
  const chapters = (await loadChapters()) ?? [];
  if (chapters.length === 0 && TABLE_SOURCES.manifest.landed) throw new Error('site: chapters/manifest.ts lists no chapters');

  const fields = await required<FieldRow>(TABLE_SOURCES.fields);
  const fieldsMod = fields === null ? null : await loadOptional(TABLE_SOURCES.fields.file);
  const fieldGroups = Array.isArray(fieldsMod?.VMCS_FIELD_GROUPS) ? (fieldsMod.VMCS_FIELD_GROUPS as FieldGroup[]) : null;

  const errors = await required<ErrorRow>(TABLE_SOURCES.errors);
  const errorsMod = errors === null ? null : await loadOptional(TABLE_SOURCES.errors.file);
  const entryFailures = Array.isArray(errorsMod?.VM_ENTRY_FAILURE_QUALIFICATIONS)
    ? (errorsMod.VM_ENTRY_FAILURE_QUALIFICATIONS as EntryFailureRow[])
    : null;

  const checksFile = findEntryChecksFile();
  if (checksFile === null && TABLE_SOURCES.entryChecks.landed) {
    throw new Error('site: no file under src/vmx/entry/ exports ENTRY_CHECKS any more');
  }
  const entryChecks = checksFile === null ? null : await required<EntryCheckRow>(TABLE_SOURCES.entryChecks, checksFile);

  const cpuModels = await required<CpuModelRow>(TABLE_SOURCES.cpuModels);
  return {
    chapters,
    fields,
    fieldGroups,
    exitReasons: await required<ExitReasonRow>(TABLE_SOURCES.exitReasons),
    errors,
    entryFailures,
    entryChecks,
    cpuModels,
    msrNames: await loadMsrNames(),
    decodeCapabilities: await loadCapabilityDecoder(),
  };
}

/** MSR names from the `MSR_*` constants of src/x86/msr.ts (Linux names). */
async function loadMsrNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  for (const file of ['src/x86/msr.ts', 'src/vmx/capabilities.ts']) {
    const mod = await loadOptional(file);
    if (mod === null) continue;
    for (const [k, v] of Object.entries(mod)) {
      if (/^MSR_[A-Z0-9_]+$/.test(k) && typeof v === 'number' && !names.has(v)) names.set(v, k);
    }
  }
  return names;
}

/** The capability decoder from src/vmx/capabilities.ts, shown as rows of text (null until it exists). */
async function loadCapabilityDecoder(): Promise<((model: CpuModelRow) => DecodedMsr[]) | null> {
  const caps = await loadOptional('src/vmx/capabilities.ts');
  const controls = await loadOptional('src/vmx/controls.ts');
  // Both have landed (decodeCapabilities, CONTROL_BITS): their absence is now a build error.
  if (caps === null || controls === null) throw new Error('site: src/vmx/capabilities.ts or src/vmx/controls.ts is missing');
  const decode = caps.decodeCapabilities;
  if (typeof decode !== 'function') throw new Error('site: src/vmx/capabilities.ts does not export decodeCapabilities');
  if (!Array.isArray(controls.CONTROL_BITS)) throw new Error('site: src/vmx/controls.ts does not export CONTROL_BITS');
  const bits = controls.CONTROL_BITS as ControlBitRow[];
  return (model) => describeCapabilities(decode(model.msrs) as CapabilitiesView, bits);
}

export function referencePages(t: SiteTables): Page[] {
  const pages: Page[] = [];
  pages.push(
    t.fields === null
      ? pendingPage('reference/vmcs-fields.md', 'VMCS fields', TABLE_SOURCES.fields.file, 'VMCS_FIELDS')
      : vmcsFieldsPage(t.fields, t.fieldGroups),
  );
  pages.push(
    t.exitReasons === null
      ? pendingPage('reference/exit-reasons.md', 'Exit reasons', TABLE_SOURCES.exitReasons.file, 'EXIT_REASONS')
      : exitReasonsPage(t.exitReasons),
  );
  pages.push(
    t.errors === null
      ? pendingPage('reference/vm-instruction-errors.md', 'VM-instruction errors', TABLE_SOURCES.errors.file, 'VM_INSTRUCTION_ERRORS')
      : errorsPage(t.errors, t.entryFailures),
  );
  pages.push(
    t.entryChecks === null
      ? pendingPage('reference/entry-checks.md', 'VM-entry checks', 'src/vmx/entry/', 'ENTRY_CHECKS')
      : entryChecksPage(t.entryChecks, t.fields === null ? null : new Set(t.fields.map((f) => f.name))),
  );
  pages.push(
    t.cpuModels === null
      ? pendingPage('reference/capability-msrs.md', 'Capability MSRs by CPU model', TABLE_SOURCES.cpuModels.file, 'CPU_MODELS')
      : capabilityPage(t.cpuModels, (msr) => t.msrNames.get(msr), t.decodeCapabilities),
  );
  pages.push(kernelApiPage(), layoutsPage(), vmxOperationPage());
  return pages;
}

/**
 * Every citation on the generated pages and in the diagrams, with its page. The generated pages hold
 * the chapter notes verbatim and the tables' citations as [[SDM …]] markup, so reading them is enough.
 */
export function collectCitations(pages: readonly Page[]): Citation[] {
  const out: Citation[] = [];
  const titleOf = (p: Page): string => /^title: (".*")$/m.exec(p.content)?.[1] ?? JSON.stringify(p.path);
  for (const p of pages) {
    const link = '/' + p.path.replace(/\.md$/, '').replace(/(^|\/)index$/, '$1');
    const text = JSON.parse(titleOf(p)) as string;
    for (const ref of citationsInMarkdown(p.content)) out.push({ ref, from: { link, text } });
  }
  for (const d of DIAGRAMS) {
    for (const ref of citationsInMarkdown(d.caption)) out.push({ ref, from: { link: '/reference/vmx-operation', text: d.title } });
  }
  return out;
}

export const REFERENCE_NAV: readonly { text: string; link: string }[] = [
  { text: 'VMCS fields', link: '/reference/vmcs-fields' },
  { text: 'Exit reasons', link: '/reference/exit-reasons' },
  { text: 'VM-instruction errors', link: '/reference/vm-instruction-errors' },
  { text: 'VM-entry checks', link: '/reference/entry-checks' },
  { text: 'Capability MSRs by CPU model', link: '/reference/capability-msrs' },
  { text: 'Kernel and CPU API', link: '/reference/kernel-api' },
  { text: 'Bit layouts', link: '/reference/layouts' },
  { text: 'Diagrams', link: '/reference/vmx-operation' },
  { text: 'SDM sections cited', link: '/reference/sdm' },
];

function referenceIndexPage(): Page {
  let md = `---\ntitle: Reference\n---\n\n# Reference\n\nGenerated at build time from the tables the emulated CPU itself uses, so they cannot drift from it.\n\n`;
  for (const r of REFERENCE_NAV) md += `- [${r.text}](${r.link})\n`;
  return { path: 'reference/index.md', content: md };
}

export interface GeneratedSite {
  tables: SiteTables;
  pages: Page[];
  /** The landing page's course map (theme: CourseMap.vue, through themeConfig.course). */
  course: CourseMap;
  sidebar: { text: string; items: { text: string; link: string }[]; collapsed?: boolean }[];
}

/** Directories under site/ that belong to the generator (wiped of stale pages on each run). */
export const GENERATED_DIRS = ['chapters', 'reference', 'exercises'] as const;

export async function generateSite(siteDir = resolve(REPO_ROOT, 'site')): Promise<GeneratedSite> {
  const tables = await loadSiteTables();
  const course = courseMap(tables.chapters);
  const pages: Page[] = [chaptersIndexPage(tables.chapters, course.coming)];
  tables.chapters.forEach((_, i) => pages.push(chapterPage(tables.chapters, i)));
  pages.push(...exercisePages(tables.chapters));
  pages.push(referenceIndexPage(), ...referencePages(tables));
  pages.push(sdmIndexPage(collectCitations(pages)));
  writePages(siteDir, pages);
  return {
    tables,
    pages,
    course,
    sidebar: [
      {
        text: 'Course',
        items: [{ text: 'Chapters', link: '/chapters/' }, ...tables.chapters.map((c) => ({ text: chapterLabel(c), link: chapterLink(c) }))],
      },
      { text: 'Reference', items: [...REFERENCE_NAV] },
      { text: 'Try it', items: [{ text: 'Playground', link: '/playground' }] },
    ],
  };
}

/** Write pages, touching only files whose content changed (the dev server reloads on writes), and drop stale ones. */
export function writePages(siteDir: string, pages: readonly Page[]): void {
  const wanted = new Set(pages.map((p) => resolve(siteDir, p.path)));
  const dropStale = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = join(dir, entry.name);
      if (entry.isDirectory()) dropStale(file);
      else if (entry.name.endsWith('.md') && !wanted.has(file)) rmSync(file);
    }
  };
  for (const dir of GENERATED_DIRS) {
    const abs = resolve(siteDir, dir);
    if (existsSync(abs)) dropStale(abs);
  }
  for (const p of pages) {
    const file = resolve(siteDir, p.path);
    mkdirSync(dirname(file), { recursive: true });
    if (existsSync(file) && readFileSync(file, 'utf8') === p.content) continue;
    writeFileSync(file, p.content);
  }
}
