// The SDM index page: every SDM section the course cites — in the notes and in the tables the
// CPU uses — with the pages that cite it. Built from the same sources as the other pages.
import { parseSdmRef, sdmSlug, type SdmRef } from '../../site/.vitepress/markdown/sdm.ts';
import type { Page } from './chapter-pages.ts';

export interface Citation {
  ref: SdmRef;
  /** Where it is cited: page link and label. */
  from: { link: string; text: string };
}

/** Citations in markdown text: `[[SDM …]]` and prose `SDM Vol. 3C, *Title*`. */
export function citationsInMarkdown(text: string): SdmRef[] {
  const out: SdmRef[] = [];
  for (const m of text.matchAll(/\[\[(SDM [^\]]+)\]\]/g)) {
    const ref = parseSdmRef(m[1].replace(/\s+/g, ' '));
    if (ref !== null) out.push(ref);
  }
  for (const m of text.matchAll(/SDM Vol\. ([0-9][A-D]?), \*([^*]+)\*/g)) {
    const ref = parseSdmRef(`${m[1]}: ${m[2].replace(/\s+/g, ' ')}`);
    if (ref !== null) out.push(ref);
  }
  return out;
}

const VOLUME_ORDER = ['1', '2A', '2B', '2C', '2D', '3A', '3B', '3C', '3D', '4'];

export function sdmIndexPage(citations: readonly Citation[]): Page {
  const bySlug = new Map<string, { ref: SdmRef; from: Map<string, string> }>();
  for (const c of citations) {
    const slug = sdmSlug(c.ref);
    const entry = bySlug.get(slug) ?? { ref: c.ref, from: new Map<string, string>() };
    entry.from.set(c.from.link, c.from.text);
    bySlug.set(slug, entry);
  }
  const entries = [...bySlug.entries()].sort(([, a], [, b]) => {
    const va = VOLUME_ORDER.indexOf(a.ref.volume ?? '');
    const vb = VOLUME_ORDER.indexOf(b.ref.volume ?? '');
    return va !== vb ? va - vb : a.ref.title.localeCompare(b.ref.title);
  });
  let md =
    `---\ntitle: SDM sections cited\ndescription: Every SDM section the course and its tables cite, with the pages that cite it.\n---\n\n` +
    `# SDM sections cited\n\nEvery section of the Intel SDM that the notes, the reference tables and the diagrams cite — ` +
    `${entries.length} sections — with the pages that cite them. Sections are named by title, which survives ` +
    `renumbering between SDM editions.\n\n`;
  let volume: string | undefined = '#';
  for (const [slug, e] of entries) {
    if (e.ref.volume !== volume) {
      volume = e.ref.volume;
      md += `\n## ${volume === undefined ? 'Volume not given' : `Volume ${volume}`}\n\n| Section | Cited on |\n|---|---|\n`;
    }
    const pages = [...e.from.entries()].map(([link, text]) => `[${text}](${link})`).join(', ');
    md += `| <span class="vmx-anchor" id="${slug}"></span>${e.ref.title.replace(/\|/g, '\\|')} | ${pages} |\n`;
  }
  return { path: 'reference/sdm.md', content: md };
}
