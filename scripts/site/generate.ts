// Generates the site's derived pages before vitepress reads site/: chapter pages from the
// manifest and chapters/*/README.md, reference pages from the project's tables. Called from
// site/.vitepress/config.mts, so `vitepress build site` alone is enough. Generated files are
// listed in site/.gitignore; edit their sources, never them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { kernelApiPage } from './api-page.ts';
import { chapterLabel, chapterLink, chapterPage, chaptersIndexPage, exercisePages, type Page } from './chapter-pages.ts';
import { courseMap, loadChapters, type CourseMap, type SiteChapter } from './course.ts';
import { loadModule, REPO_ROOT } from './load.ts';
import { citationsInMarkdown, sdmIndexPage, type Citation } from './sdm-index.ts';
import { DIAGRAMS } from '../../site/.vitepress/markdown/diagrams.ts';
import type { CpuModel } from '../../src/machine/cpu-model.ts';
import type { ControlBit } from '../../src/vmx/controls.ts';
import type { EntryCheck } from '../../src/vmx/entry/rule.ts';
import type { EntryFailureQualification, VmInstructionError } from '../../src/vmx/errors.ts';
import type { ExitReason } from '../../src/vmx/exit-reasons.ts';
import type { VmcsField, VmcsFieldGroup } from '../../src/vmx/fields.ts';
import type { ModeNotImplemented, NotImplementedRow } from '../../src/machine/not-implemented.ts';
import {
  capabilityPage,
  entryChecksPage,
  errorsPage,
  exitReasonsPage,
  layoutsPage,
  notImplementedPage,
  vmcsFieldsPage,
  vmxOperationPage,
  type EmulatedModel,
} from './reference-pages.ts';

/** Everything the generated pages are made from: the project's tables, with their own types. */
export interface SiteTables {
  chapters: SiteChapter[];
  fields: readonly VmcsField[];
  fieldGroups: readonly VmcsFieldGroup[];
  exitReasons: readonly ExitReason[];
  errors: readonly VmInstructionError[];
  entryFailures: readonly EntryFailureQualification[];
  entryChecks: readonly EntryCheck[];
  cpuModels: readonly CpuModel[];
  /** Each model as the emulated processor reports it (emulated capability MSRs, decoded, and the adjustments). */
  emulatedModels: readonly EmulatedModel[];
  controlBits: readonly ControlBit[];
  /** Linux names of MSRs, by index. */
  msrNames: ReadonlyMap<number, string>;
  /** What the machine does not implement: instruction groups and modes (src/machine/not-implemented.ts). */
  notImplemented: readonly NotImplementedRow[];
  modesNotImplemented: readonly ModeNotImplemented[];
}

export async function loadSiteTables(): Promise<SiteTables> {
  const { VMCS_FIELDS, VMCS_FIELD_GROUPS } = await loadModule('src/vmx/fields.ts');
  const { EXIT_REASONS } = await loadModule('src/vmx/exit-reasons.ts');
  const { VM_INSTRUCTION_ERRORS, VM_ENTRY_FAILURE_QUALIFICATIONS } = await loadModule('src/vmx/errors.ts');
  const { ENTRY_CHECKS } = await loadModule('src/vmx/entry/index.ts');
  const { CPU_MODELS } = await loadModule('src/machine/cpu-model.ts');
  const { capabilitiesOf, msrAdjustmentsOf, vmxMsrsOf } = await loadModule('src/vmx/emulated-msrs.ts');
  const { CONTROL_BITS } = await loadModule('src/vmx/controls.ts');
  const { NOT_IMPLEMENTED, MODES_NOT_IMPLEMENTED } = await loadModule('src/machine/not-implemented.ts');
  return {
    chapters: await loadChapters(),
    fields: VMCS_FIELDS,
    fieldGroups: VMCS_FIELD_GROUPS,
    exitReasons: EXIT_REASONS,
    errors: VM_INSTRUCTION_ERRORS,
    entryFailures: VM_ENTRY_FAILURE_QUALIFICATIONS,
    entryChecks: ENTRY_CHECKS,
    cpuModels: CPU_MODELS,
    emulatedModels: CPU_MODELS.map((model) => ({
      model, msrs: vmxMsrsOf(model), caps: capabilitiesOf(model), adjustments: msrAdjustmentsOf(model),
    })),
    controlBits: CONTROL_BITS,
    msrNames: await loadMsrNames(),
    notImplemented: NOT_IMPLEMENTED,
    modesNotImplemented: MODES_NOT_IMPLEMENTED,
  };
}

/** MSR names: the VMX capability MSRs' table, then the `MSR_*` constants of src/x86/msr.ts (Linux names). */
async function loadMsrNames(): Promise<Map<number, string>> {
  const { VMX_CAPABILITY_MSRS } = await loadModule('src/vmx/msrs.ts');
  const names = new Map<number, string>(VMX_CAPABILITY_MSRS.map((m) => [m.index, m.name]));
  for (const [k, v] of Object.entries(await loadModule('src/x86/msr.ts'))) {
    if (/^MSR_[A-Za-z0-9_]+$/.test(k) && typeof v === 'number' && !names.has(v)) names.set(v, k);
  }
  return names;
}

export function referencePages(t: SiteTables): Page[] {
  return [
    vmcsFieldsPage(t.fields, t.fieldGroups),
    exitReasonsPage(t.exitReasons),
    errorsPage(t.errors, t.entryFailures),
    entryChecksPage(t.entryChecks),
    capabilityPage(t.emulatedModels, (msr) => t.msrNames.get(msr), t.controlBits),
    kernelApiPage(),
    notImplementedPage(t.notImplemented, t.modesNotImplemented),
    layoutsPage(),
    vmxOperationPage(),
  ];
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
  { text: 'Not implemented', link: '/reference/not-implemented' },
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
