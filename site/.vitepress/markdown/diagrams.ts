// Diagrams drawn from code as inline SVG, so they render with no scripts, no fonts from the
// network and no image files, and a test can check what they say. Each diagram is data:
// boxes at fixed positions and arrows between them; `svg()` turns it into markup that the
// theme styles (and recolours for dark mode) through the `vmx-diagram` CSS classes.
//
// In markdown:  ```diagram vmcs-states```  (the fence body is ignored).
import type { MarkdownIt } from 'markdown-it';
import { escapeHtml } from './container.ts';

export interface DiagramNode {
  id: string;
  /** Centre of the box. */
  x: number;
  y: number;
  w: number;
  h: number;
  lines: string[];
  kind?: 'state' | 'start' | 'fail' | 'ok' | 'step';
}

export interface DiagramEdge {
  from: string;
  to: string;
  label?: string;
  /** Intermediate points of an orthogonal route. */
  via?: [number, number][];
  /** Shift a straight arrow sideways (for a pair of arrows in opposite directions). */
  offset?: number;
  dashed?: boolean;
  /** Where along the route the label sits, 0..1 of its segment (default 0.5). */
  labelAt?: number;
  /** Which segment of the route carries the label (default: the middle one). */
  labelSegment?: number;
  /** Label offset from the line, in pixels (default: above a horizontal line, right of a vertical one). */
  labelDx?: number;
  labelDy?: number;
}

export interface Diagram {
  id: string;
  title: string;
  width: number;
  height: number;
  nodes: DiagramNode[];
  edges: DiagramEdge[];
  /** Caption under the figure; may contain `[[SDM …]]` citations. */
  caption: string;
}

// ---------------------------------------------------------------------------------------
// The diagrams.

/** VMX operation: outside, root, non-root, and the instructions/events that move between them. */
const VMX_OPERATION: Diagram = {
  id: 'vmx-operation',
  title: 'VMX operation and VMX transitions',
  width: 800,
  height: 180,
  nodes: [
    { id: 'outside', x: 90, y: 60, w: 150, h: 60, lines: ['Outside', 'VMX operation'], kind: 'start' },
    { id: 'root', x: 370, y: 60, w: 170, h: 60, lines: ['VMX root operation', '(the hypervisor)'], kind: 'state' },
    { id: 'nonroot', x: 700, y: 60, w: 170, h: 60, lines: ['VMX non-root', 'operation (the guest)'], kind: 'state' },
  ],
  edges: [
    { from: 'outside', to: 'root', label: 'VMXON', offset: -14 },
    { from: 'root', to: 'outside', label: 'VMXOFF', offset: -14, labelDy: 18 },
    { from: 'root', to: 'nonroot', label: 'VMLAUNCH / VMRESUME', offset: -14 },
    { from: 'nonroot', to: 'root', label: 'VM exit', offset: -14, labelDy: 18 },
    {
      from: 'root',
      to: 'root',
      label: 'VMfailInvalid / VMfailValid(n): the instruction fails, still in root operation',
      via: [
        [330, 130],
        [410, 130],
      ],
      labelDy: 22,
    },
  ],
  caption:
    'VMXON enters VMX root operation; VM entries and VM exits move between root and non-root operation; ' +
    'VMXOFF leaves VMX operation. See [[SDM 3C: VMX Operation Overview]] and [[SDM 3C: Introduction to VMX Operation]].',
};

/** Figure "States of VMCS X": X is the VMCS in question, Y any other VMCS. */
const VMCS_STATES: Diagram = {
  id: 'vmcs-states',
  title: 'States of VMCS X',
  width: 760,
  height: 430,
  nodes: [
    { id: 'inactive', x: 110, y: 220, w: 180, h: 64, lines: ['Inactive', 'Not current', 'Clear'], kind: 'start' },
    { id: 'anc-clear', x: 380, y: 80, w: 170, h: 64, lines: ['Active', 'Not current', 'Clear'], kind: 'state' },
    { id: 'ac-clear', x: 640, y: 80, w: 170, h: 64, lines: ['Active', 'Current', 'Clear'], kind: 'state' },
    { id: 'anc-launched', x: 380, y: 370, w: 170, h: 64, lines: ['Active', 'Not current', 'Launched'], kind: 'state' },
    { id: 'ac-launched', x: 640, y: 370, w: 170, h: 64, lines: ['Active', 'Current', 'Launched'], kind: 'ok' },
  ],
  edges: [
    { from: 'inactive', to: 'ac-clear', label: 'VMPTRLD X', via: [[60, 22], [640, 22]], labelDy: -5, labelAt: 0.55 },
    { from: 'anc-clear', to: 'ac-clear', label: 'VMPTRLD X', offset: -12 },
    { from: 'ac-clear', to: 'anc-clear', label: 'VMPTRLD Y', offset: -12, labelDy: 18 },
    { from: 'ac-clear', to: 'ac-launched', label: 'VMLAUNCH', labelDx: 8, labelAt: 0.3 },
    { from: 'ac-launched', to: 'anc-launched', label: 'VMPTRLD Y', offset: -12, labelDy: 18 },
    { from: 'anc-launched', to: 'ac-launched', label: 'VMPTRLD X', offset: -12 },
    { from: 'anc-clear', to: 'inactive', label: 'VMCLEAR X', dashed: true, via: [[160, 80]], labelSegment: 0, labelDy: -6 },
    { from: 'anc-launched', to: 'inactive', label: 'VMCLEAR X', dashed: true, via: [[160, 370]], labelSegment: 0, labelDy: 18 },
    { from: 'ac-clear', to: 'inactive', label: 'VMCLEAR X', dashed: true, via: [[745, 80], [745, 220]], labelSegment: 2, labelAt: 0.8, labelDy: -6 },
    { from: 'ac-launched', to: 'inactive', dashed: true, via: [[745, 370], [745, 220]] },
  ],
  caption:
    'VMPTRLD X makes X active and current; VMPTRLD Y makes X not current; VMLAUNCH changes a current, clear X to launched; ' +
    'VMCLEAR X always makes X inactive, not current and clear. VMLAUNCH needs a clear VMCS (else VM-instruction error 4), ' +
    'VMRESUME a launched one (else error 5). See [[SDM 3C: Overview]] (figure “States of VMCS X”) in the chapter ' +
    '“Virtual Machine Control Structures”.',
};

/** The order in which VMLAUNCH/VMRESUME check and load state, and how each stage fails. */
const ENTRY_SEQUENCE: Diagram = {
  id: 'entry-sequence',
  title: 'VM-entry check sequence',
  width: 780,
  height: 560,
  nodes: [
    { id: 'insn', x: 200, y: 40, w: 300, h: 44, lines: ['VMLAUNCH / VMRESUME'], kind: 'start' },
    { id: 'basic', x: 200, y: 130, w: 300, h: 56, lines: ['Basic VM-entry checks', 'CPL, mode, current VMCS, launch state'], kind: 'step' },
    { id: 'ctl', x: 200, y: 230, w: 300, h: 56, lines: ['Checks on VMX controls', 'and the host-state area'], kind: 'step' },
    { id: 'guest', x: 200, y: 330, w: 300, h: 56, lines: ['Check and load guest state', '(and PDPTEs)'], kind: 'step' },
    { id: 'msr', x: 200, y: 430, w: 300, h: 56, lines: ['Load MSRs from the', 'VM-entry MSR-load area'], kind: 'step' },
    { id: 'run', x: 200, y: 520, w: 300, h: 44, lines: ['Guest runs (event injection, non-root)'], kind: 'ok' },
    { id: 'f-basic', x: 610, y: 130, w: 300, h: 56, lines: ['#UD / #GP, or VMfailInvalid,', 'or VMfailValid(4, 5, 26)'], kind: 'fail' },
    { id: 'f-ctl', x: 610, y: 230, w: 300, h: 56, lines: ['VMfailValid(7) controls', 'VMfailValid(8) host state'], kind: 'fail' },
    { id: 'f-guest', x: 610, y: 330, w: 300, h: 56, lines: ['VM exit, reason 33 | bit 31', '“invalid guest state”'], kind: 'fail' },
    { id: 'f-msr', x: 610, y: 430, w: 300, h: 56, lines: ['VM exit, reason 34 | bit 31', 'qualification = entry index'], kind: 'fail' },
  ],
  edges: [
    { from: 'insn', to: 'basic' },
    { from: 'basic', to: 'ctl', label: 'pass', labelDx: 8 },
    { from: 'ctl', to: 'guest', label: 'pass', labelDx: 8 },
    { from: 'guest', to: 'msr', label: 'pass', labelDx: 8 },
    { from: 'msr', to: 'run', label: 'pass', labelDx: 8 },
    { from: 'basic', to: 'f-basic', label: 'fail', dashed: true },
    { from: 'ctl', to: 'f-ctl', label: 'fail', dashed: true },
    { from: 'guest', to: 'f-guest', label: 'fail', dashed: true },
    { from: 'msr', to: 'f-msr', label: 'fail', dashed: true },
  ],
  caption:
    'A VMfail leaves the processor in root operation at the next instruction, with no guest state loaded. A failure ' +
    'while checking or loading guest state or MSRs is a VM exit with bit 31 of the exit reason set, after host state is ' +
    'loaded. See [[SDM 3C: Basic VM-Entry Checks]], [[SDM 3C: Checks on VMX Controls and Host-State Area]], ' +
    '[[SDM 3C: Checking and Loading Guest State]], [[SDM 3C: Loading MSRs]] and ' +
    '[[SDM 3C: VM-Entry Failures During or After Loading Guest State]].',
};

/** How the MTRRs decide the memory type of a physical address. */
const MTRR_PRECEDENCE: Diagram = {
  id: 'mtrr-precedence',
  title: 'MTRR precedence',
  width: 780,
  height: 470,
  nodes: [
    { id: 'enabled', x: 240, y: 40, w: 320, h: 48, lines: ['MTRRs enabled?', 'IA32_MTRR_DEF_TYPE.E = 1'], kind: 'step' },
    { id: 'fixed', x: 240, y: 130, w: 320, h: 48, lines: ['Below 1 MByte and fixed ranges on?', 'IA32_MTRR_DEF_TYPE.FE = 1'], kind: 'step' },
    { id: 'variable', x: 240, y: 220, w: 320, h: 48, lines: ['How many variable ranges match?', '(PHYSBASE/PHYSMASK with V = 1)'], kind: 'step' },
    { id: 'many', x: 240, y: 330, w: 320, h: 48, lines: ['Two or more match:', 'any UC? only WT and WB?'], kind: 'step' },
    { id: 'uc', x: 645, y: 40, w: 260, h: 40, lines: ['UC'], kind: 'fail' },
    { id: 'fixed-type', x: 645, y: 130, w: 260, h: 40, lines: ['the fixed-range MTRR’s type'], kind: 'ok' },
    { id: 'one', x: 645, y: 220, w: 260, h: 40, lines: ['that range’s type'], kind: 'ok' },
    { id: 'default', x: 240, y: 430, w: 320, h: 40, lines: ['none: IA32_MTRR_DEF_TYPE.Type (default)'], kind: 'ok' },
    { id: 'resolve', x: 645, y: 330, w: 260, h: 64, lines: ['any UC → UC', 'only WT and WB → WT', 'otherwise undefined'], kind: 'fail' },
  ],
  edges: [
    { from: 'enabled', to: 'uc', label: 'no', dashed: true },
    { from: 'enabled', to: 'fixed', label: 'yes', labelDx: 8 },
    { from: 'fixed', to: 'fixed-type', label: 'yes' },
    { from: 'fixed', to: 'variable', label: 'no', labelDx: 8 },
    { from: 'variable', to: 'one', label: 'one' },
    { from: 'variable', to: 'many', label: 'two or more', labelDx: 8 },
    { from: 'many', to: 'resolve' },
    { from: 'variable', to: 'default', label: 'none', via: [[45, 220], [45, 430]], labelSegment: 1, labelDx: 8 },
  ],
  caption:
    'With the MTRRs disabled every access is UC. Otherwise fixed ranges decide the first MByte (when enabled), then ' +
    'variable ranges, then the default type. See [[SDM 3A: MTRR Precedences]]. With EPT, the result is then combined ' +
    'with the EPT memory type and PAT (chapter 7).',
};

export const DIAGRAMS: readonly Diagram[] = [VMX_OPERATION, VMCS_STATES, ENTRY_SEQUENCE, MTRR_PRECEDENCE];

export function findDiagram(id: string): Diagram | undefined {
  return DIAGRAMS.find((d) => d.id === id);
}

// ---------------------------------------------------------------------------------------
// Rendering.

type Point = [number, number];

/** Where the segment from the box centre towards `toward` leaves the box. */
function boxExit(n: DiagramNode, toward: Point, shift: Point = [0, 0]): Point {
  const cx = n.x + shift[0];
  const cy = n.y + shift[1];
  const dx = toward[0] - cx;
  const dy = toward[1] - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const sx = dx === 0 ? Infinity : n.w / 2 / Math.abs(dx);
  const sy = dy === 0 ? Infinity : n.h / 2 / Math.abs(dy);
  const s = Math.min(sx, sy);
  return [cx + dx * s, cy + dy * s];
}

function nodeById(d: Diagram, id: string): DiagramNode {
  const n = d.nodes.find((m) => m.id === id);
  if (n === undefined) throw new Error(`diagram ${d.id}: no node "${id}"`);
  return n;
}

/** The polyline of an edge, from the border of `from` to the border of `to`. */
export function edgeRoute(d: Diagram, e: DiagramEdge): Point[] {
  const a = nodeById(d, e.from);
  const b = nodeById(d, e.to);
  const via = e.via ?? [];
  if (via.length === 0) {
    // Straight arrow, optionally shifted perpendicular to its direction.
    const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
    const off = e.offset ?? 0;
    const shift: Point = [(-(b.y - a.y) / len) * off, ((b.x - a.x) / len) * off];
    const start = boxExit(a, [b.x + shift[0], b.y + shift[1]], shift);
    const end = boxExit(b, [a.x + shift[0], a.y + shift[1]], shift);
    return [start, end];
  }
  return [orthogonalExit(a, via[0]), ...via, orthogonalExit(b, via[via.length - 1])];
}

/** Leave a box straight towards a waypoint that lies above/below or beside it, so routes stay orthogonal. */
function orthogonalExit(n: DiagramNode, p: Point): Point {
  if (Math.abs(p[0] - n.x) <= n.w / 2) return [p[0], p[1] < n.y ? n.y - n.h / 2 : n.y + n.h / 2];
  if (Math.abs(p[1] - n.y) <= n.h / 2) return [p[0] < n.x ? n.x - n.w / 2 : n.x + n.w / 2, p[1]];
  return boxExit(n, p);
}

const fmt = (n: number): string => String(Math.round(n * 10) / 10);

export function renderDiagramSvg(d: Diagram): string {
  let out =
    `<svg class="vmx-diagram" data-diagram="${escapeHtml(d.id)}" viewBox="0 0 ${d.width} ${d.height}" ` +
    `role="img" aria-label="${escapeHtml(d.title)}" xmlns="http://www.w3.org/2000/svg">` +
    `<title>${escapeHtml(d.title)}</title>` +
    `<defs><marker id="vmx-arrow-${d.id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">` +
    `<path d="M0,0 L10,5 L0,10 z" class="vmx-diagram-arrowhead"/></marker></defs>`;
  for (const e of d.edges) {
    const pts = edgeRoute(d, e);
    const path = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(p[0])},${fmt(p[1])}`).join(' ');
    out +=
      `<path d="${path}" class="vmx-diagram-edge${e.dashed === true ? ' dashed' : ''}" fill="none" ` +
      `marker-end="url(#vmx-arrow-${d.id})"/>`;
    if (e.label !== undefined) {
      const mid = Math.min(e.labelSegment ?? Math.floor((pts.length - 1) / 2), pts.length - 2);
      const t = e.labelAt ?? 0.5;
      const [p, q] = [pts[mid], pts[mid + 1]];
      const horizontal = Math.abs(q[0] - p[0]) >= Math.abs(q[1] - p[1]);
      const x = p[0] + (q[0] - p[0]) * t + (e.labelDx ?? 0);
      const y = p[1] + (q[1] - p[1]) * t + (e.labelDy ?? (horizontal ? -6 : 4));
      const anchor = horizontal || e.labelDx === undefined ? 'middle' : 'start';
      out += `<text x="${fmt(x)}" y="${fmt(y)}" text-anchor="${anchor}" class="vmx-diagram-label">${escapeHtml(e.label)}</text>`;
    }
  }
  for (const n of d.nodes) {
    out +=
      `<g class="vmx-diagram-node ${n.kind ?? 'state'}" data-node="${escapeHtml(n.id)}">` +
      `<rect x="${fmt(n.x - n.w / 2)}" y="${fmt(n.y - n.h / 2)}" width="${n.w}" height="${n.h}" rx="8"/>`;
    const lineHeight = 17;
    const top = n.y - ((n.lines.length - 1) * lineHeight) / 2 + 5;
    n.lines.forEach((line, i) => {
      out += `<text x="${fmt(n.x)}" y="${fmt(top + i * lineHeight)}" text-anchor="middle"${i === 0 ? ' class="head"' : ''}>${escapeHtml(line)}</text>`;
    });
    out += `</g>`;
  }
  return out + `</svg>`;
}

/** The `diagram` fence: ```diagram vmcs-states``` → figure with the SVG and its caption. */
export function diagramPlugin(md: MarkdownIt): void {
  const previous = md.renderer.rules.fence;
  md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const info = tokens[idx].info.trim();
    const m = /^diagram\s+([\w-]+)\s*$/.exec(info);
    if (m === null) {
      if (previous === undefined) return self.renderToken(tokens, idx, options);
      return previous(tokens, idx, options, env, self);
    }
    const d = findDiagram(m[1]);
    if (d === undefined) {
      throw new Error(`diagram: unknown diagram "${m[1]}" (known: ${DIAGRAMS.map((x) => x.id).join(', ')})`);
    }
    return (
      `<figure class="vmx-figure" id="diagram-${d.id}">${renderDiagramSvg(d)}` +
      `<figcaption>${md.renderInline(d.caption, env)}</figcaption></figure>\n`
    );
  };
}
