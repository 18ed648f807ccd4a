// The generated pages: chapter pages follow the manifest, and each reference page lists exactly
// the entries of the project's table — checked on the rendered HTML, so a row broken by a stray
// `|` in a description would be caught too.
import MarkdownIt from 'markdown-it';
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { CONTROL_BITS } from '../../src/vmx/controls.ts';
import { capabilitiesOf, msrAdjustmentsOf, vmxMsrsOf } from '../../src/vmx/emulated-msrs.ts';
import { VMX_CAPABILITY_MSRS } from '../../src/vmx/msrs.ts';
import { hex } from '../../src/util/hex.ts';
import { ENTRY_CHECKS } from '../../src/vmx/entry/index.ts';
import { VM_ENTRY_FAILURE_QUALIFICATIONS, VM_INSTRUCTION_ERRORS } from '../../src/vmx/errors.ts';
import { EXIT_REASONS } from '../../src/vmx/exit-reasons.ts';
import { VMCS_FIELD_GROUPS, VMCS_FIELDS } from '../../src/vmx/fields.ts';
import { MODES_NOT_IMPLEMENTED, NOT_IMPLEMENTED, notImplementedReason } from '../../src/machine/not-implemented.ts';
import { bitsPlugin } from '../../site/.vitepress/markdown/bits.ts';
import { diagramPlugin } from '../../site/.vitepress/markdown/diagrams.ts';
import { sdmPlugin } from '../../site/.vitepress/markdown/sdm.ts';
import { chapterPage, exercisePages, insertAfterTitle } from './chapter-pages.ts';
import type { SiteChapter } from './course.ts';
import { loadSiteTables } from './generate.ts';
import { LAYOUTS } from './layouts.ts';
import {
  capabilityPage,
  controlSetting,
  describeCapabilities,
  entryChecksPage,
  errorsPage,
  exitReasonsPage,
  layoutsPage,
  notImplementedPage,
  qualificationLayout,
  sdmMarkup,
  vmcsFieldsPage,
  type EmulatedModel,
} from './reference-pages.ts';

const EMULATED: readonly EmulatedModel[] = CPU_MODELS.map((model) => ({
  model, msrs: vmxMsrsOf(model), caps: capabilitiesOf(model), adjustments: msrAdjustmentsOf(model),
}));
const MSR_NAMES = new Map(VMX_CAPABILITY_MSRS.map((m) => [m.index, m.name]));
const msrName = (msr: number): string | undefined => MSR_NAMES.get(msr);

function render(markdown: string): string {
  const md = new MarkdownIt({ html: true });
  sdmPlugin(md, {
    onInvalid(text) {
      throw new Error(`malformed citation ${text}`);
    },
  });
  bitsPlugin(md);
  diagramPlugin(md);
  // Front matter is vitepress's business; strip it for plain markdown-it.
  return md.render(markdown.replace(/^---\n[^]*?\n---\n/, ''));
}

function anchors(html: string, prefix: string): string[] {
  return [...html.matchAll(/<span class="vmx-anchor" id="([^"]+)"/g)].map((m) => m[1]).filter((id) => id.startsWith(prefix)).map((id) => id.slice(prefix.length));
}

function expectSameSet(onPage: string[], inTable: string[]): void {
  expect(onPage.length, 'no entry listed twice').toBe(new Set(onPage).size);
  expect([...onPage].sort()).toEqual([...inTable].sort());
}

describe('reference pages list exactly the table entries', () => {
  it('VMCS fields (including the _HIGH accesses), each with its encoding', () => {
    const html = render(vmcsFieldsPage(VMCS_FIELDS, VMCS_FIELD_GROUPS).content);
    expectSameSet(anchors(html, 'field-'), VMCS_FIELDS.map((f) => f.name));
    const rip = VMCS_FIELDS.find((f) => f.name === 'GUEST_RIP')!;
    expect(html).toMatch(new RegExp(`id="field-GUEST_RIP"></span><code>GUEST_RIP</code></td>\\s*<td><code>0x${rip.encoding.toString(16).toUpperCase()}</code>`));
  });

  it('exit reasons, linking the qualification formats that have a layout', () => {
    const html = render(exitReasonsPage(EXIT_REASONS).content);
    expectSameSet(anchors(html, 'exit-'), EXIT_REASONS.map((r) => String(r.number)));
    const cr = EXIT_REASONS.find((r) => r.name === 'EXIT_REASON_CR_ACCESS')!;
    expect(qualificationLayout(cr)?.id).toBe('qual-cr-access');
    expect(html).toContain('href="./layouts#qual-cr-access"');
    // Every layout that says it draws a qualification format is reached from some exit reason.
    for (const l of LAYOUTS.filter((x) => x.qualificationFor !== undefined)) {
      expect(EXIT_REASONS.some((r) => qualificationLayout(r) === l), l.id).toBe(true);
    }
  });

  it('not implemented: every instruction group and every mode, where the #UD explanation links', () => {
    const html = render(notImplementedPage(NOT_IMPLEMENTED, MODES_NOT_IMPLEMENTED).content);
    expectSameSet(anchors(html, 'ni-'), NOT_IMPLEMENTED.map((r) => r.id));
    expectSameSet(anchors(html, 'mode-'), MODES_NOT_IMPLEMENTED.map((m) => m.id));
    for (const r of NOT_IMPLEMENTED) expect(html).toContain(`<strong>${r.name}</strong>`);
    // The decoder's explanation points at the row's anchor on this page.
    const link = /see \/reference\/not-implemented#([\w-]+)\)/.exec(notImplementedReason({ key: 0x137, bits: 64 }, 'opcode 0F 37'))!;
    expect(anchors(html, '')).toContain(link[1]);
    expect(html).toContain('valid x86 but not implemented by VMX Lab');
  });

  it('VM-instruction errors and entry-failure qualifications', () => {
    const html = render(errorsPage(VM_INSTRUCTION_ERRORS, VM_ENTRY_FAILURE_QUALIFICATIONS).content);
    expectSameSet(anchors(html, 'error-'), VM_INSTRUCTION_ERRORS.map((e) => String(e.number)));
  });

  it('VM-entry checks, grouped by SDM section in CPU order', () => {
    const page = entryChecksPage(ENTRY_CHECKS);
    const html = render(page.content);
    expectSameSet(anchors(html, 'check-'), ENTRY_CHECKS.map((c) => c.id));
    // Sections appear in the order of their first check.
    const sections = [...new Set(ENTRY_CHECKS.map((c) => sdmMarkup(c.section.includes('"') ? c.section : `3C: ${c.section}`)))];
    expect(sections.length).toBeGreaterThan(3);
  });

  it('CPU models, with decoded capability MSRs', () => {
    const html = render(capabilityPage(EMULATED, msrName, CONTROL_BITS).content);
    expectSameSet(anchors(html, 'model-'), CPU_MODELS.map((m) => m.name));
    expect(describeCapabilities(capabilitiesOf(CPU_MODELS[0]!), CONTROL_BITS).length).toBeGreaterThan(5);
  });

  it('capability MSRs as the emulated CPU reports them, with each adjustment (measured, emulated, why)', () => {
    const page = capabilityPage(EMULATED, msrName, CONTROL_BITS).content;
    expect(EMULATED.some((m) => m.adjustments.length > 0), 'some model has adjustments').toBe(true);
    for (const m of EMULATED) {
      const section = page.slice(page.indexOf(`id="model-${m.model.name}"`)).split('\n## ')[0]!;
      // Every MSR shows the value RDMSR returns on the emulated processor.
      for (const [msr, value] of m.msrs) expect(section, `${m.model.name} ${hex(msr)}`).toContain(`| \`${hex(msr)}\` | ${msrName(msr) ?? ''} | \`${hex(value, 16)}\``);
      for (const a of m.adjustments) {
        expect(section, `${m.model.name}: ${a.why}`).toContain(a.why);
        expect(section).toContain(`\`${hex(a.emulated, 16)}\``);
        if (a.measured !== null) expect(section).toContain(`\`${hex(a.measured, 16)}\``);
      }
    }
  });

  it('loadSiteTables reads the same tables the CPU uses', async () => {
    const t = await loadSiteTables();
    expect(t.fields.map((f) => f.name)).toEqual(VMCS_FIELDS.map((f) => f.name));
    expect(t.exitReasons.map((r) => r.number)).toEqual(EXIT_REASONS.map((r) => r.number));
    expect(t.errors.map((e) => e.number)).toEqual(VM_INSTRUCTION_ERRORS.map((e) => e.number));
    expect(t.entryChecks.map((c) => c.id)).toEqual(ENTRY_CHECKS.map((c) => c.id));
    expect(t.emulatedModels.map((m) => [m.model.name, [...m.msrs]])).toEqual(EMULATED.map((m) => [m.model.name, [...m.msrs]]));
    expect(t.msrNames.get(0x48c)).toBe('MSR_IA32_VMX_EPT_VPID_CAP');
  }, 60_000);

  it('bit layouts all parse and render', () => {
    const page = layoutsPage().content;
    const html = render(page);
    expect((html.match(/<figure class="vmx-bits"/g) ?? []).length).toBe(LAYOUTS.length);
    // Heading anchors ({#id}) are vitepress syntax; the browser tests check they resolve.
    for (const id of ['ia32-vmx-basic', 'interruption-information', 'eptp', 'qual-cr-access']) expect(page).toContain(`{#${id}}`);
  });
});

describe('control settings from allowed-0/allowed-1', () => {
  it('default1 when allowed-0 is 1, unsupported when allowed-1 is 0, flexible otherwise', () => {
    // Skylake-U IA32_VMX_PINBASED_CTLS = 0x7F00000016: allowed-0 0x16, allowed-1 0x7F.
    const a = { allowed0: 0x16, allowed1: 0x7f };
    expect(controlSetting(a, 1)).toBe('must be 1');
    expect(controlSetting(a, 0)).toBe('flexible');
    expect(controlSetting(a, 7)).toBe('must be 0');
    expect(controlSetting({ allowed0: 0, allowed1: 0x80000000 }, 31)).toBe('flexible');
    expect(controlSetting({ allowed0: 0x80000000, allowed1: 0xffffffff }, 31)).toBe('must be 1');
  });
});

describe('chapter pages', () => {
  const ch = (n: number, ids: string[]): SiteChapter => ({
    number: n,
    slug: `0${n}-c${n}`,
    title: `Chapter ${n}`,
    summary: `Summary ${n}`,
    objectives: [`Objective ${n}`],
    exercises: ids.map((id) => ({ id, title: id, file: `${id}.ts`, test: `${id}.test.ts`, points: 1, hints: [] })),
  });
  const chapters = [ch(0, ['a']), ch(1, ['b', 'c']), ch(2, [])];

  it('takes prev/next from the manifest order', () => {
    const notes = (): string => '# T\n\nText.\n';
    expect(chapterPage(chapters, 0, notes).content).toMatch(/prev: false\nnext:\n {2}text: "1\. Chapter 1"\n {2}link: "\/chapters\/01-c1"/);
    expect(chapterPage(chapters, 1, notes).content).toMatch(/prev:\n {2}text: "0\. Chapter 0"\n {2}link: "\/chapters\/00-c0"\nnext:\n {2}text: "2\. Chapter 2"/);
    expect(chapterPage(chapters, 2, notes).content).toContain('next: false');
  });

  it('adds the exercise boxes the notes did not place, once each', () => {
    const page = chapterPage(chapters, 1, () => '# T\n\n::: exercise b\nDo b.\n:::\n').content;
    expect(page.match(/^::: exercise b$/gm)).toHaveLength(1);
    expect(page.match(/^::: exercise c$/gm)).toHaveLength(1);
    expect(page.indexOf('::: exercise c')).toBeGreaterThan(page.indexOf('::: exercise b'));
  });

  it('shows the manifest objectives unless the notes have their own, and a stub without notes', () => {
    expect(chapterPage(chapters, 0, () => '# T\n\nBody\n').content).toContain('- Objective 0');
    expect(chapterPage(chapters, 0, () => '# T\n\n## Objectives\n\n- mine\n').content).not.toContain('- Objective 0');
    const stub = chapterPage(chapters, 0, () => null).content;
    expect(stub).toContain('# Chapter 0');
    expect(stub).toContain('chapters/00-c0/README.md');
    expect(stub).toContain('::: exercise a');
    expect(chapterPage(chapters, 0, () => null).content).toContain('source: "chapters/00-c0/README.md"');
  });

  it('shows each exercise file on its own page, fenced safely, and fails loudly when a file is missing', () => {
    const files: Record<string, string> = { 'exercises/01-c1/b.ts': 'export const b = 1; // ```', 'exercises/01-c1/c.ts': '// TODO' };
    const pages = exercisePages([chapters[1]!], (p) => files[p] ?? null);
    expect(pages.map((p) => p.path)).toEqual(['exercises/01-c1/b.md', 'exercises/01-c1/c.md']);
    expect(pages[0]!.content).toContain('source: "exercises/01-c1/b.ts"');
    expect(pages[0]!.content).toContain('````ts\nexport const b = 1; // ```\n````');
    expect(() => exercisePages([chapters[0]!], () => null)).toThrow(/exercises\/00-c0\/a.ts/);
  });

  it('inserts after the first heading outside code fences', () => {
    expect(insertAfterTitle('```\n# not a title\n```\n# Title\nBody', 'X', 'F')).toBe('```\n# not a title\n```\n# Title\n\nX\nBody');
    expect(insertAfterTitle('No heading', 'X\n', 'F')).toBe('# F\n\nX\nNo heading');
  });
});

describe('SDM index', () => {
  it('lists each cited section once, with every page that cites it', async () => {
    const { citationsInMarkdown, sdmIndexPage } = await import('./sdm-index.ts');
    const refs = citationsInMarkdown('See [[SDM 3C: Guest Register State]] and SDM Vol. 3C, *Guest Register\nState*, and SDM Vol. 1, *EFLAGS Register*. Not: Vol. 3A, *x*.');
    expect(refs).toEqual([
      { volume: '3C', title: 'Guest Register State' },
      { volume: '3C', title: 'Guest Register State' },
      { volume: '1', title: 'EFLAGS Register' },
    ]);
    const page = sdmIndexPage([
      { ref: refs[0]!, from: { link: '/a', text: 'A' } },
      { ref: refs[1]!, from: { link: '/b', text: 'B' } },
      { ref: refs[2]!, from: { link: '/a', text: 'A' } },
    ]).content;
    expect(page.match(/id="vol-3c-guest-register-state"/g)).toHaveLength(1);
    expect(page).toContain('Guest Register State | [A](/a), [B](/b) |');
    // Volume 1 comes before volume 3C.
    expect(page.indexOf('## Volume 1')).toBeLessThan(page.indexOf('## Volume 3C'));
  });
});
