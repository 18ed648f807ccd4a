// Bit-layout figures from a small table, as a fenced block:
//
//   ```bits 64 IA32_VMX_BASIC (MSR 480H)
//   30:0  | revision id | VMCS revision identifier
//   31    | 0           | Always 0
//   44:32 | size        | Bytes to allocate for the VMXON region and each VMCS
//   ```
//
// The info line gives the register width (8, 16, 32 or 64) and a caption. Each row is
// `hi[:lo] | short label | description`. Bits no row names are drawn as reserved. The figure
// is HTML (a CSS grid per 32-bit row, most significant bit on the left, as the SDM draws it)
// followed by a legend table, so it reads without scripts or images.
import type { MarkdownIt } from 'markdown-it';
import { escapeHtml } from './container.ts';

export interface BitField {
  hi: number;
  lo: number;
  label: string;
  description: string;
}

export interface BitLayout {
  width: number;
  caption: string;
  fields: BitField[];
}

const ROW_BITS = 32;

/** Parse a `bits` fence. Throws with a precise message on overlapping or out-of-range fields. */
export function parseBitLayout(info: string, body: string): BitLayout {
  const m = /^bits\s+(\d+)\s*(.*)$/.exec(info.trim());
  if (m === null) throw new Error(`bits: info line must be "bits <width> <caption>", got "${info}"`);
  const width = Number(m[1]);
  if (![8, 16, 32, 64].includes(width)) throw new Error(`bits: width must be 8, 16, 32 or 64, got ${width}`);
  const fields: BitField[] = [];
  const owner = new Array<string | undefined>(width);
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const parts = line.split('|').map((p) => p.trim());
    const range = /^(\d+)(?::(\d+))?$/.exec(parts[0]);
    if (range === null || parts.length < 2 || parts[1].length === 0) {
      throw new Error(`bits: row "${line}" must be "hi[:lo] | label | description"`);
    }
    const hi = Number(range[1]);
    const lo = range[2] === undefined ? hi : Number(range[2]);
    if (lo > hi) throw new Error(`bits: row "${line}": low bit ${lo} is above high bit ${hi}`);
    if (hi >= width) throw new Error(`bits: row "${line}": bit ${hi} is outside a ${width}-bit register`);
    for (let b = lo; b <= hi; b++) {
      if (owner[b] !== undefined) throw new Error(`bits: bit ${b} is in both "${owner[b]}" and "${parts[1]}"`);
      owner[b] = parts[1];
    }
    fields.push({ hi, lo, label: parts[1], description: parts.slice(2).join(' | ') });
  }
  fields.sort((a, b) => b.hi - a.hi);
  return { width, caption: m[2].trim(), fields };
}

interface Cell {
  hi: number;
  lo: number;
  field?: BitField;
}

/** Cells of one 32-bit (or narrower) row, most significant first; reserved runs fill the gaps. */
export function rowCells(layout: BitLayout, rowHi: number, rowLo: number): Cell[] {
  const cells: Cell[] = [];
  let bit = rowHi;
  while (bit >= rowLo) {
    const field = layout.fields.find((f) => f.lo <= bit && bit <= f.hi);
    if (field !== undefined) {
      const lo = Math.max(field.lo, rowLo);
      cells.push({ hi: bit, lo, field });
      bit = lo - 1;
    } else {
      let lo = bit;
      while (lo - 1 >= rowLo && !layout.fields.some((f) => f.lo <= lo - 1 && lo - 1 <= f.hi)) lo--;
      cells.push({ hi: bit, lo });
      bit = lo - 1;
    }
  }
  return cells;
}

function rangeText(hi: number, lo: number): string {
  return hi === lo ? `${hi}` : `${hi}:${lo}`;
}

export function renderBitLayout(layout: BitLayout, renderInline: (s: string) => string = escapeHtml): string {
  const rowBits = Math.min(ROW_BITS, layout.width);
  let html = `<figure class="vmx-bits" data-width="${layout.width}">\n`;
  for (let rowHi = layout.width - 1; rowHi >= 0; rowHi -= rowBits) {
    const rowLo = rowHi - rowBits + 1;
    html += `<div class="vmx-bits-row" style="grid-template-columns: repeat(${rowBits}, minmax(0, 1fr))">`;
    for (const cell of rowCells(layout, rowHi, rowLo)) {
      const span = cell.hi - cell.lo + 1;
      const label = cell.field === undefined ? 'reserved' : cell.field.label;
      // A label much longer than its cell is wide is set vertically, as datasheets do.
      const narrow = label.length > span * 3 ? ' narrow' : '';
      const cls = (cell.field === undefined ? 'vmx-bits-cell reserved' : 'vmx-bits-cell') + narrow;
      const title = `${rangeText(cell.hi, cell.lo)}: ${cell.field === undefined ? 'reserved' : cell.field.label}`;
      html +=
        `<div class="${cls}" style="grid-column: span ${span}" title="${escapeHtml(title)}">` +
        `<span class="vmx-bits-hi">${cell.hi}</span>` +
        (span > 1 ? `<span class="vmx-bits-lo">${cell.lo}</span>` : '') +
        `<span class="vmx-bits-label">${escapeHtml(label)}</span></div>`;
    }
    html += `</div>\n`;
  }
  if (layout.caption.length > 0) html += `<figcaption>${renderInline(layout.caption)}</figcaption>\n`;
  html += `</figure>\n`;
  html += `<table class="vmx-bits-legend"><thead><tr><th>Bits</th><th>Field</th><th>Meaning</th></tr></thead><tbody>\n`;
  for (const f of layout.fields) {
    html +=
      `<tr><td><code>${rangeText(f.hi, f.lo)}</code></td><td>${escapeHtml(f.label)}</td>` +
      `<td>${renderInline(f.description)}</td></tr>\n`;
  }
  html += `</tbody></table>\n`;
  return html;
}

/** Register the `bits` fence, leaving every other fence to the previous renderer (shiki). */
export function bitsPlugin(md: MarkdownIt): void {
  const previous = md.renderer.rules.fence;
  md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    const info = token.info.trim();
    if (info === 'bits' || info.startsWith('bits ')) {
      return renderBitLayout(parseBitLayout(info, token.content), (s) => md.renderInline(s, env));
    }
    if (previous === undefined) return self.renderToken(tokens, idx, options);
    return previous(tokens, idx, options, env, self);
  };
}
