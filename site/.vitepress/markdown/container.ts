// A small `::: name args` … `:::` block container for markdown-it, shared by the
// `exercise` and `mistake` callouts. vitepress bundles its own container plugin without
// exporting it, so we keep a readable one here. Nested `:::` blocks (a `::: tip` inside a
// mistake, say) are balanced by counting openers and closers.
import type { MarkdownIt } from 'markdown-it';
import type { StateBlock } from 'markdown-it';
import type { Token } from 'markdown-it';

export interface ContainerRender {
  /** HTML emitted before the body; `args` is the rest of the opening line after the name. */
  open(args: string, env: Record<string, unknown>, tokens: Token[], idx: number): string;
  /** HTML emitted after the body. */
  close(args: string, env: Record<string, unknown>): string;
}

const MARKER = ':::';

export function containerPlugin(md: MarkdownIt, name: string, render: ContainerRender): void {
  const openType = `vmx_${name}_open`;
  const closeType = `vmx_${name}_close`;

  function rule(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean {
    const first = lineText(state, startLine);
    const m = /^:::\s*([\w-]+)(.*)$/.exec(first);
    if (m === null || m[1] !== name) return false;
    if (state.sCount[startLine] - state.blkIndent >= 4) return false; // indented code, not a container
    if (silent) return true;

    // Find the matching closing `:::`, skipping balanced nested containers.
    let depth = 1;
    let line = startLine + 1;
    for (; line < endLine; line++) {
      const text = lineText(state, line);
      if (state.sCount[line] < state.blkIndent && text.length > 0) break; // left the parent block
      if (/^:::\s*[\w-]+/.test(text)) depth++;
      else if (/^:::\s*$/.test(text)) {
        depth--;
        if (depth === 0) break;
      }
    }
    const closed = depth === 0;
    const args = m[2].trim();

    const oldParent = state.parentType;
    const oldLineMax = state.lineMax;
    state.parentType = 'container' as typeof state.parentType;
    state.lineMax = line;

    const open = state.push(openType, 'div', 1);
    open.block = true;
    open.info = args;
    open.markup = MARKER;
    open.map = [startLine, line];
    state.md.block.tokenize(state, startLine + 1, line);
    const close = state.push(closeType, 'div', -1);
    close.block = true;
    close.info = args;
    close.markup = MARKER;

    state.parentType = oldParent;
    state.lineMax = oldLineMax;
    state.line = closed ? line + 1 : line;
    return true;
  }

  md.block.ruler.before('fence', `vmx_${name}`, rule, { alt: ['paragraph', 'reference', 'blockquote', 'list'] });
  md.renderer.rules[openType] = (tokens, idx, _options, env: unknown) =>
    render.open(tokens[idx].info, asEnv(env), tokens, idx);
  md.renderer.rules[closeType] = (tokens, idx, _options, env: unknown) => render.close(tokens[idx].info, asEnv(env));
}

function asEnv(env: unknown): Record<string, unknown> {
  return typeof env === 'object' && env !== null ? (env as Record<string, unknown>) : {};
}

function lineText(state: StateBlock, line: number): string {
  return state.src.slice(state.bMarks[line] + state.tShift[line], state.eMarks[line]).trimEnd();
}

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
