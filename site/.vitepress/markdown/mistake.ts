// `::: mistake [title]` … `:::` — a "common mistake" callout: a real error from public
// tutorials (see ERRATA.md) and the SDM-correct behaviour. The body is ordinary markdown.
import type { MarkdownIt } from 'markdown-it';
import { containerPlugin } from './container.ts';

export function mistakePlugin(md: MarkdownIt): void {
  containerPlugin(md, 'mistake', {
    open(args) {
      const title = args.length > 0 ? `: ${md.renderInline(args)}` : '';
      return (
        `<div class="vmx-mistake custom-block danger">\n` +
        `<p class="custom-block-title"><span class="vmx-mistake-label">Common mistake</span>${title}</p>\n`
      );
    },
    close() {
      return '</div>\n';
    },
  });
}
