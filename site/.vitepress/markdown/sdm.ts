// SDM citations. Notes write `[[SDM 3C: Checks on Guest Segment Registers]]`; every page
// renders it the same way: "SDM Vol. 3C, “Checks on Guest Segment Registers”". The project
// cites the SDM by section *title*, never by chapter number (numbers move between editions).
import type { MarkdownIt } from 'markdown-it';
import type { StateInline, Token } from 'markdown-it';
import { escapeHtml } from './container.ts';

export interface SdmRef {
  /** "1", "2A" … "2D", "3A" … "3D", "4"; absent when the citation names only a title. */
  volume?: string;
  title: string;
}

const VOLUME = /^(?:[1-4]|[23][A-D])$/;

/**
 * Parse the forms the project's tables and notes use:
 *   "3C: Title"   "SDM 3C: Title"   "Vol. 3C, Title"   "SDM Vol. 3C, “Title”"   "Title"
 * Returns null for an empty or malformed reference (e.g. an unknown volume or no title).
 */
export function parseSdmRef(text: string): SdmRef | null {
  let rest = text.trim().replace(/^SDM\b\s*/i, '');
  let volume: string | undefined;
  const m = /^(?:Vol(?:ume)?\.?\s*)?([0-9][A-Da-d]?)\s*[:,]\s*(.*)$/s.exec(rest);
  if (m !== null) {
    volume = m[1].toUpperCase();
    if (!VOLUME.test(volume)) return null;
    rest = m[2];
  }
  const title = rest.trim().replace(/^[“"'‘]+|[”"'’.]+$/g, '').trim();
  // A bare section number ("24.4.1") is not a citation: numbers move between editions.
  if (title.length === 0 || /^[\d.]+$/.test(title)) return null;
  return volume === undefined ? { title } : { volume, title };
}

/** Plain-text form: `SDM Vol. 3C, “Title”`. */
export function formatSdmRef(ref: SdmRef): string {
  return ref.volume === undefined ? `SDM, “${ref.title}”` : `SDM Vol. ${ref.volume}, “${ref.title}”`;
}

/** Stable slug for a section title; the SDM index page uses it as the anchor. */
export function sdmSlug(ref: SdmRef): string {
  const v = ref.volume === undefined ? 'sdm' : `vol-${ref.volume.toLowerCase()}`;
  return `${v}-${ref.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
}

/** HTML for one citation, as every page shows it. */
export function renderSdmRef(ref: SdmRef): string {
  const vol = ref.volume === undefined ? 'SDM' : `SDM Vol. ${escapeHtml(ref.volume)}`;
  return `<cite class="sdm" data-sdm="${escapeHtml(sdmSlug(ref))}">${vol}, <q>${escapeHtml(ref.title)}</q></cite>`;
}

/** Inline rule for `[[SDM …]]`. A malformed reference stays as written text, and is reported by `onInvalid`. */
export function sdmPlugin(md: MarkdownIt, options: { onInvalid?: (text: string) => void } = {}): void {
  md.inline.ruler.before('link', 'vmx_sdm', (state: StateInline, silent: boolean): boolean => {
    const start = state.pos;
    if (!state.src.startsWith('[[SDM', start)) return false;
    const end = state.src.indexOf(']]', start + 5);
    if (end < 0) return false;
    const inner = state.src.slice(start + 2, end);
    if (inner.includes('\n') && inner.split('\n').length > 3) return false;
    const ref = parseSdmRef(inner.replace(/\s+/g, ' '));
    if (ref === null) {
      options.onInvalid?.(inner);
      return false;
    }
    if (!silent) {
      const token = state.push('vmx_sdm', 'cite', 0);
      token.meta = { ref };
    }
    state.pos = end + 2;
    return true;
  });
  md.renderer.rules.vmx_sdm = (tokens, idx) => renderSdmRef((tokens[idx].meta as { ref: SdmRef }).ref);
  md.core.ruler.push('vmx_sdm_prose', (state) => {
    for (const block of state.tokens) {
      if (block.type === 'inline' && block.children !== null) block.children = citeProse(block.children, state.Token);
    }
  });
}

/**
 * Prose citations — `SDM Vol. 3C, *Checks on Guest Segment Registers*` — render like `[[SDM …]]`
 * ones, so notes written either way look the same. Only the exact shape "SDM Vol. <vol>, " followed
 * by an emphasised title is recognised; anything else stays as written.
 */
function citeProse(children: Token[], TokenCtor: new (type: string, tag: string, nesting: 0 | 1 | -1) => Token): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < children.length; i++) {
    const t = children[i];
    const m = t.type === 'text' ? /SDM Vol\. ([0-9][A-D]?), $/.exec(t.content) : null;
    if (m !== null && children[i + 1]?.type === 'em_open') {
      let j = i + 2;
      let title = '';
      while (j < children.length && (children[j].type === 'text' || children[j].type === 'softbreak')) {
        title += children[j].type === 'softbreak' ? ' ' : children[j].content;
        j++;
      }
      const ref = children[j]?.type === 'em_close' ? parseSdmRef(`${m[1]}: ${title}`) : null;
      if (ref !== null) {
        const before = t.content.slice(0, m.index);
        if (before.length > 0) {
          const text = new TokenCtor('text', '', 0);
          text.content = before;
          out.push(text);
        }
        const cite = new TokenCtor('vmx_sdm', 'cite', 0);
        cite.meta = { ref };
        out.push(cite);
        i = j;
        continue;
      }
    }
    out.push(t);
  }
  return out;
}
