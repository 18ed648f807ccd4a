// Unit tests of the site's markdown-it plugins: SDM citations, exercise and mistake callouts,
// bit-layout figures, diagrams, repo links.
import fc from 'fast-check';
import MarkdownIt from 'markdown-it';
import { describe, expect, it } from 'vitest';
import { bitsPlugin, parseBitLayout, renderBitLayout, rowCells } from '../../site/.vitepress/markdown/bits.ts';
import { DIAGRAMS, diagramPlugin, edgeRoute, findDiagram, renderDiagramSvg } from '../../site/.vitepress/markdown/diagrams.ts';
import { exercisePlugin, findExercise } from '../../site/.vitepress/markdown/exercise.ts';
import { mistakePlugin } from '../../site/.vitepress/markdown/mistake.ts';
import { repoLinksPlugin, rewriteRepoLink } from '../../site/.vitepress/markdown/repo-links.ts';
import { formatSdmRef, parseSdmRef, renderSdmRef, sdmPlugin } from '../../site/.vitepress/markdown/sdm.ts';
import type { SiteChapter } from './course.ts';

const CHAPTERS: SiteChapter[] = [
  {
    number: 0,
    slug: '00-machine',
    title: 'Machine',
    summary: 's',
    objectives: [],
    exercises: [{ id: 'selector', title: 'Segment selectors', file: 'selector.ts', test: 'selector.test.ts', points: 10, hints: ['Use `& ~7`.', 'second'] }],
  },
  {
    number: 1,
    slug: '01-vmxon',
    title: 'VMXON',
    summary: 's',
    objectives: [],
    exercises: [{ id: 'revision', title: 'Revision id', file: 'vmxon/revision.ts', test: 'revision.test.ts', points: 5, hints: [] }],
  },
];

const fileUrl = (p: string): string => `https://forge.example/repo/blob/main/${p}`;

function md(): InstanceType<typeof MarkdownIt> {
  const m = new MarkdownIt({ html: true });
  sdmPlugin(m, {
    onInvalid(text) {
      throw new Error(`invalid ${text}`);
    },
  });
  exercisePlugin(m, { chapters: CHAPTERS, fileUrl: (c, e) => `/exercises/${c.slug}/${e.id}` });
  mistakePlugin(m);
  bitsPlugin(m);
  diagramPlugin(m);
  repoLinksPlugin(m, { repoFileUrl: fileUrl });
  return m;
}

describe('SDM citations', () => {
  it('parses every form the tables and notes use to the same reference', () => {
    const forms = [
      '3C: Checks on Guest Segment Registers',
      'SDM 3C: Checks on Guest Segment Registers',
      'Vol. 3C, Checks on Guest Segment Registers',
      'SDM Vol. 3C, "Checks on Guest Segment Registers"',
      'SDM Vol. 3c, “Checks on Guest Segment Registers”',
    ];
    for (const f of forms) expect(parseSdmRef(f), f).toEqual({ volume: '3C', title: 'Checks on Guest Segment Registers' });
  });

  it('renders volume and title the same way everywhere', () => {
    const html = md().renderInline('See [[SDM 3C: Checks on Guest Segment Registers]] and [[SDM Vol. 3C, "Checks on Guest Segment Registers"]].');
    const cites = html.match(/<cite[^]*?<\/cite>/g) ?? [];
    expect(cites).toHaveLength(2);
    expect(cites[0]).toBe(cites[1]);
    expect(cites[0]).toContain('SDM Vol. 3C, <q>Checks on Guest Segment Registers</q>');
    expect(formatSdmRef({ volume: '3C', title: 'VMX Basic Exit Reasons' })).toBe('SDM Vol. 3C, “VMX Basic Exit Reasons”');
  });

  it('renders prose citations (SDM Vol. 3A, *Title*) the same way, even across a line break', () => {
    const html = md().render('See SDM Vol. 3C, *Checks on Host Segment and\nDescriptor-Table Registers*, and [[SDM 3C: Checks on Host Segment and Descriptor-Table Registers]].');
    const cites = html.match(/<cite[^]*?<\/cite>/g) ?? [];
    expect(cites).toHaveLength(2);
    expect(cites[0]).toBe(cites[1]);
    expect(html).toContain('<p>See <cite');
    // Other emphasis is left alone.
    expect(md().render('SDM Vol. 3A, *x* **y**')).toContain('<cite');
    expect(md().render('The *Segment Selectors* section')).not.toContain('<cite');
    expect(md().render('Vol. 3A, *Segment Selectors*')).not.toContain('<cite');
  });

  it('rejects section numbers, unknown volumes and empty titles', () => {
    expect(parseSdmRef('3C: 26.3.1.2')).toBeNull();
    expect(parseSdmRef('5A: Something')).toBeNull();
    expect(parseSdmRef('3C:   ')).toBeNull();
    expect(() => md().renderInline('[[SDM 3C: 24.4]]')).toThrow(/invalid/);
  });

  it('escapes HTML in titles (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }).filter((s) => /[A-Za-z]/.test(s) && !/[\]\n]/.test(s)), (title) => {
        const ref = parseSdmRef(`3A: ${title}`);
        if (ref === null) return;
        const html = renderSdmRef(ref);
        expect(html).not.toMatch(/<(?!\/?(cite|q)\b)/);
      }),
    );
  });
});

describe('::: exercise', () => {
  it('shows id, title, points, the learner file, hints and the grade command from the manifest', () => {
    const html = md().render('::: exercise selector\nImplement `makeSelector`.\n:::\n', { relativePath: 'chapters/00-machine.md' });
    expect(html).toContain('id="exercise-selector"');
    expect(html).toContain('Segment selectors');
    expect(html).toContain('10 points');
    expect(html).toContain('<a href="/exercises/00-machine/selector"><code>exercises/00-machine/selector.ts</code></a>');
    expect(html).toContain('<code>npx vmxlab grade 00-machine</code>');
    expect(html).toContain('Hints (2)');
    expect(html).toContain('<code>&amp; ~7</code>');
    expect(html).toContain('<p>Implement <code>makeSelector</code>.</p>');
  });

  it('finds an exercise in another chapter, and uses its chapter for file and grading', () => {
    const html = md().render('::: exercise revision\n:::\n', { relativePath: 'chapters/00-machine.md' });
    expect(html).toContain('exercises/01-vmxon/vmxon/revision.ts');
    expect(html).toContain('npx vmxlab grade 01-vmxon');
    expect(html).toContain('5 points');
    expect(findExercise(CHAPTERS, 'nope')).toBeNull();
  });

  it('is a build error for an id the manifest does not know', () => {
    expect(() => md().render('::: exercise no-such-exercise\n:::\n', { relativePath: 'chapters/00-machine.md' })).toThrow(/no-such-exercise/);
  });
});

describe('::: mistake', () => {
  it('renders a titled callout whose body is markdown, and nests other containers', () => {
    const html = md().render('::: mistake Masking with `0xF8`\nIt clears **index** bits.\n\n::: exercise selector\n:::\n:::\n\nAfter.\n');
    expect(html).toMatch(/<div class="vmx-mistake custom-block danger">\s*<p class="custom-block-title"><span class="vmx-mistake-label">Common mistake<\/span>: Masking with <code>0xF8<\/code><\/p>/);
    expect(html).toContain('<strong>index</strong>');
    // The nested exercise closes before the mistake does; the paragraph after is outside both.
    const mistakeEnd = html.lastIndexOf('</div>');
    expect(html.indexOf('<p>After.</p>')).toBeGreaterThan(mistakeEnd);
    expect(html.indexOf('id="exercise-selector"')).toBeGreaterThan(html.indexOf('vmx-mistake'));
  });

  it('leaves ::: tip and other containers alone', () => {
    const html = md().render('::: tip\nhello\n:::\n');
    expect(html).not.toContain('vmx-');
  });
});

describe('bit layouts', () => {
  const basic = parseBitLayout('bits 64 IA32_VMX_BASIC', '30:0 | revision | VMCS revision identifier\n31 | 0 | Always 0\n44:32 | size | Region size\n55 | TRUE | TRUE controls');

  it('parses rows, sorted from the most significant field', () => {
    expect(basic.width).toBe(64);
    expect(basic.caption).toBe('IA32_VMX_BASIC');
    expect(basic.fields.map((f) => [f.hi, f.lo, f.label])).toEqual([
      [55, 55, 'TRUE'],
      [44, 32, 'size'],
      [31, 31, '0'],
      [30, 0, 'revision'],
    ]);
  });

  it('rejects overlaps, bits outside the register and malformed rows', () => {
    expect(() => parseBitLayout('bits 32 x', '7:0 | a | \n4 | b |')).toThrow(/bit 4 is in both "a" and "b"/);
    expect(() => parseBitLayout('bits 32 x', '32 | a | too high')).toThrow(/outside a 32-bit register/);
    expect(() => parseBitLayout('bits 32 x', '3:7 | a |')).toThrow(/low bit 7 is above high bit 3/);
    expect(() => parseBitLayout('bits 12 x', '1 | a |')).toThrow(/width/);
    expect(() => parseBitLayout('bits 32 x', 'x | a |')).toThrow(/must be/);
  });

  it('fills every row exactly: cells cover each bit once, reserved where no field is (property)', () => {
    const layouts = fc
      .uniqueArray(fc.integer({ min: 0, max: 63 }), { minLength: 1, maxLength: 20 })
      .map((cuts) => {
        // Cut [0, 63] at random points into ranges; keep every other range as a field.
        const sorted = [...cuts].sort((a, b) => a - b);
        const rows: string[] = [];
        let lo = 0;
        sorted.forEach((c, i) => {
          if (c >= lo && i % 2 === 0) rows.push(`${c}:${lo} | f${i} | field ${i}`);
          lo = c + 1;
        });
        return rows.join('\n');
      });
    fc.assert(
      fc.property(layouts, (rows) => {
        const layout = parseBitLayout('bits 64 t', rows);
        for (const [hi, lo] of [
          [63, 32],
          [31, 0],
        ]) {
          const cells = rowCells(layout, hi, lo);
          let expect_ = hi;
          for (const c of cells) {
            expect(c.hi).toBe(expect_);
            expect(c.lo).toBeLessThanOrEqual(c.hi);
            for (let b = c.lo; b <= c.hi; b++) {
              const owner = layout.fields.find((f) => f.lo <= b && b <= f.hi);
              expect(owner).toBe(c.field);
            }
            expect_ = c.lo - 1;
          }
          expect(expect_).toBe(lo - 1);
        }
        const html = renderBitLayout(layout);
        const spans = [...html.matchAll(/grid-column: span (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
        expect(spans).toBe(64);
        expect((html.match(/<tr><td>/g) ?? []).length).toBe(layout.fields.length);
      }),
    );
  });

  it('renders the ```bits fence and leaves other fences to the highlighter', () => {
    const html = md().render('```bits 32 Interruption information\n7:0 | vector | Vector\n31 | valid | Valid\n```\n\n```ts\nconst x = 1;\n```\n');
    expect(html).toContain('<figure class="vmx-bits" data-width="32">');
    expect(html).toContain('title="30:8: reserved"');
    expect(html).toContain('<figcaption>Interruption information</figcaption>');
    expect(html).toContain('<code class="language-ts">const x = 1;');
  });
});

describe('diagrams', () => {
  it('every edge joins two existing nodes and every route starts and ends on a box border', () => {
    for (const d of DIAGRAMS) {
      for (const e of d.edges) {
        const route = edgeRoute(d, e);
        const from = d.nodes.find((n) => n.id === e.from)!;
        const to = d.nodes.find((n) => n.id === e.to)!;
        const onBorder = (p: [number, number], n: typeof from): boolean =>
          (Math.abs(Math.abs(p[0] - n.x) - n.w / 2) < 0.01 && Math.abs(p[1] - n.y) <= n.h / 2 + 0.01) ||
          (Math.abs(Math.abs(p[1] - n.y) - n.h / 2) < 0.01 && Math.abs(p[0] - n.x) <= n.w / 2 + 0.01);
        const first = route[0];
        const last = route[route.length - 1];
        expect(first !== undefined && onBorder(first, from), `${d.id}: ${e.from}→${e.to} start`).toBe(true);
        expect(last !== undefined && onBorder(last, to), `${d.id}: ${e.from}→${e.to} end`).toBe(true);
      }
    }
  });

  it('draws the SDM VMCS state machine: VMCLEAR X from every active state to inactive, VMLAUNCH only from current+clear', () => {
    const d = findDiagram('vmcs-states')!;
    const label = (id: string): string => d.nodes.find((n) => n.id === id)!.lines.join(' ');
    const vmclear = d.edges.filter((e) => e.to === 'inactive').map((e) => label(e.from));
    expect(vmclear.sort()).toEqual(['Active Current Clear', 'Active Current Launched', 'Active Not current Clear', 'Active Not current Launched']);
    const launches = d.edges.filter((e) => e.label === 'VMLAUNCH');
    expect(launches.map((e) => [label(e.from), label(e.to)])).toEqual([['Active Current Clear', 'Active Current Launched']]);
    // VMPTRLD X always ends in a current state; VMPTRLD Y always in a not-current one.
    for (const e of d.edges.filter((x) => x.label === 'VMPTRLD X')) expect(label(e.to)).toMatch(/^Active Current/);
    for (const e of d.edges.filter((x) => x.label === 'VMPTRLD Y')) expect(label(e.to)).toMatch(/^Active Not current/);
  });

  it('draws the SDM MTRR precedence: disabled → UC, fixed ranges first, then variable ranges, else the default', () => {
    const d = findDiagram('mtrr-precedence')!;
    const to = (from: string, label: string): string | undefined => d.edges.find((e) => e.from === from && e.label === label)?.to;
    expect(to('enabled', 'no')).toBe('uc');
    expect(to('enabled', 'yes')).toBe('fixed');
    expect(to('fixed', 'yes')).toBe('fixed-type');
    expect(to('fixed', 'no')).toBe('variable');
    expect(to('variable', 'none')).toBe('default');
    expect(to('variable', 'one')).toBe('one');
    expect(d.nodes.find((n) => n.id === 'resolve')!.lines).toEqual(['any UC → UC', 'only WT and WB → WT', 'otherwise undefined']);
  });

  it('renders SVG with every node label, and the fence with its caption citations', () => {
    for (const d of DIAGRAMS) {
      const svg = renderDiagramSvg(d);
      for (const n of d.nodes) for (const l of n.lines) expect(svg).toContain(l.replace(/&/g, '&amp;'));
    }
    const html = md().render('```diagram entry-sequence\n```\n');
    expect(html).toContain('<svg class="vmx-diagram" data-diagram="entry-sequence"');
    expect(html).toContain('<cite class="sdm"');
    expect(() => md().render('```diagram nope\n```\n')).toThrow(/unknown diagram "nope"/);
  });
});

describe('repo links', () => {
  const o = { repoFileUrl: fileUrl };
  it('maps chapter READMEs to chapter pages and other files to the forge', () => {
    expect(rewriteRepoLink('../01-vmxon/README.md', 'chapters/00-machine/README.md', o)).toBe('/chapters/01-vmxon');
    expect(rewriteRepoLink('../01-vmxon/README.md#vmxon', 'chapters/00-machine/README.md', o)).toBe('/chapters/01-vmxon#vmxon');
    expect(rewriteRepoLink('../../exercises/00-machine/selector.ts', 'chapters/00-machine/README.md', o)).toBe(fileUrl('exercises/00-machine/selector.ts'));
    expect(rewriteRepoLink('https://example.org/x', 'chapters/00-machine/README.md', o)).toBeNull();
    expect(rewriteRepoLink('#local', 'chapters/00-machine/README.md', o)).toBeNull();
    expect(rewriteRepoLink('/reference/exit-reasons', 'chapters/00-machine/README.md', o)).toBeNull();
  });

  it('rewrites links only on pages that name their source', () => {
    const withSource = md().render('[next](../01-vmxon/README.md)', { frontmatter: { source: 'chapters/00-machine/README.md' } });
    expect(withSource).toContain('href="/chapters/01-vmxon"');
    const without = md().render('[next](../01-vmxon/README.md)', {});
    expect(without).toContain('href="../01-vmxon/README.md"');
  });
});
