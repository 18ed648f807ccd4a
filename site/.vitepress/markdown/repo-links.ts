// Links in chapter notes are written relative to chapters/<slug>/README.md, so they work when
// the notes are read on a forge or in an editor. On the site the page lives elsewhere, so each
// relative link is resolved against the page's `source` (front matter) and rewritten:
//   another chapter's README.md  → that chapter's page (/chapters/<slug>)
//   any other file in the repo   → the file on the forge (repoFileUrl)
import type { MarkdownIt } from 'markdown-it';
import type { Token } from 'markdown-it';
import { posix } from 'node:path';

export interface RepoLinkOptions {
  repoFileUrl: (repoPath: string) => string;
}

/** Rewrite one href found in the file `source` (a repo-relative path). Returns null to leave it alone. */
export function rewriteRepoLink(href: string, source: string, options: RepoLinkOptions): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('#') || href.startsWith('/')) return null;
  const [pathPart, hash = ''] = href.split('#', 2);
  if (pathPart.length === 0) return null;
  const target = posix.normalize(posix.join(posix.dirname(source), pathPart));
  if (target.startsWith('..')) return null;
  const chapter = /^chapters\/(\d\d-[a-z0-9-]+)(?:\/README\.md|\/)?$/.exec(target);
  if (chapter !== null) return `/chapters/${chapter[1]}${hash.length > 0 ? `#${hash}` : ''}`;
  return options.repoFileUrl(target) + (hash.length > 0 ? `#${hash}` : '');
}

export function repoLinksPlugin(md: MarkdownIt, options: RepoLinkOptions): void {
  md.core.ruler.push('vmx_repo_links', (state) => {
    const env = state.env as { frontmatter?: { source?: unknown } };
    const source = env.frontmatter?.source;
    if (typeof source !== 'string') return;
    const visit = (tokens: Token[]): void => {
      for (const t of tokens) {
        if (t.type === 'link_open') {
          const href = t.attrGet('href');
          if (typeof href !== 'string') continue;
          const rewritten = rewriteRepoLink(href, source, options);
          if (rewritten !== null) t.attrSet('href', rewritten);
        }
        if (t.children !== null) visit(t.children);
      }
    };
    visit(state.tokens);
  });
}
