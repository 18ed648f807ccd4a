// VMX Lab course site. Before vitepress reads the pages, scripts/site/generate.ts writes the
// chapter pages (from chapters/manifest.ts and chapters/*/README.md) and the reference pages
// (from the project's tables), so `vitepress build site` alone produces the whole site.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineConfigWithTheme, type DefaultTheme, type PageData } from 'vitepress';
import type { CourseMap } from '../../scripts/site/course.ts';
import { exercisePageLink } from '../../scripts/site/chapter-pages.ts';
import { generateSite } from '../../scripts/site/generate.ts';
import { REPO_ROOT } from '../../scripts/site/load.ts';
import { bitsPlugin } from './markdown/bits.ts';
import { diagramPlugin } from './markdown/diagrams.ts';
import { exercisePlugin } from './markdown/exercise.ts';
import { mistakePlugin } from './markdown/mistake.ts';
import { repoLinksPlugin } from './markdown/repo-links.ts';
import { sdmPlugin } from './markdown/sdm.ts';
import { icedBrowserPlugin, icedEsbuildPlugin } from './iced-browser.ts';
import { regeneratePlugin } from './regenerate.ts';

/**
 * Where files are opened and edited. With a repository URL (package.json "repository", or VMXLAB_REPO_URL for
 * forks) links go to the forge. Without one — a learner's own checkout — they open the file in the local editor
 * (vscode://file/…), since the site is built and served from that checkout.
 */
function repositoryUrl(): string | undefined {
  if (process.env.VMXLAB_REPO_URL !== undefined && process.env.VMXLAB_REPO_URL !== '') return process.env.VMXLAB_REPO_URL;
  const pkg = JSON.parse(readFileSync(resolve(REPO_ROOT, 'package.json'), 'utf8')) as { repository?: string | { url?: string } };
  const raw = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  return raw?.replace(/^git\+/, '').replace(/\.git$/, '');
}

const REPO = repositoryUrl();
const BRANCH = process.env.VMXLAB_REPO_BRANCH ?? 'main';
const localFile = (repoPath: string): string => `vscode://file${resolve(REPO_ROOT, repoPath)}`;
const fileUrl = (repoPath: string): string => (REPO === undefined ? localFile(repoPath) : `${REPO}/blob/${BRANCH}/${repoPath}`);
const editUrl = (repoPath: string): string => (REPO === undefined ? localFile(repoPath) : `${REPO}/edit/${BRANCH}/${repoPath}`);

const site = await generateSite();

export default defineConfigWithTheme<DefaultTheme.Config & { course: CourseMap }>({
  title: 'VMX Lab',
  description: 'Learn to write an Intel VT-x hypervisor by building one, against an emulated x86-64 CPU whose VMX follows the Intel SDM.',
  lang: 'en-US',
  cleanUrls: true,
  lastUpdated: false,
  // No request leaves the machine: vitepress's Inter font is self-hosted unless this is true.
  useWebFonts: false,
  head: [
    ['meta', { name: 'color-scheme', content: 'light dark' }],
    ['link', { rel: 'icon', type: 'image/svg+xml', href: '/favicon.svg' }],
  ],
  markdown: {
    languageAlias: { x86asm: 'asm', nasm: 'asm' },
    config(md) {
      sdmPlugin(md, {
        onInvalid(text) {
          throw new Error(`site: malformed SDM citation [[${text}]] (write [[SDM 3C: Section Title]])`);
        },
      });
      repoLinksPlugin(md, { repoFileUrl: fileUrl });
      exercisePlugin(md, { chapters: site.tables.chapters, fileUrl: (c, e) => exercisePageLink(c, e.id) });
      mistakePlugin(md);
      bitsPlugin(md);
      diagramPlugin(md);
    },
  },
  vite: {
    plugins: [regeneratePlugin(), icedBrowserPlugin()],
    worker: { format: 'es', plugins: () => [icedBrowserPlugin()] },
    // Pre-bundle iced-x86 at startup (with the browser rewrite), so the playground does not reload mid-run.
    optimizeDeps: { include: ['iced-x86'], esbuildOptions: { plugins: [icedEsbuildPlugin] } },
    server: { fs: { allow: [REPO_ROOT] } },
    // Which emulator parts the playground can use, decided when the site is built.
    define: {
      __VMXLAB_PLAYGROUND__: JSON.stringify({
        machine: existsSync(resolve(REPO_ROOT, 'src/machine/machine.ts')) && existsSync(resolve(REPO_ROOT, 'src/machine/testing/run-guest.ts')),
        assembler: existsSync(resolve(REPO_ROOT, 'src/guest/assembler.ts')),
      }),
    },
  },
  // Generated pages name their real source in front matter (`source`); hand-written pages live in site/.
  transformPageData(page) {
    const source = page.frontmatter.source;
    if (typeof source === 'string') page.frontmatter.editUrl = editUrl(source);
    else if (page.relativePath.startsWith('reference/')) page.frontmatter.editUrl = REPO === undefined ? localFile('scripts/site/generate.ts') : `${REPO}/tree/${BRANCH}/scripts/site`;
    else page.frontmatter.editUrl = editUrl(`site/${page.relativePath}`);
  },
  themeConfig: {
    // The landing page's course map (theme/CourseMap.vue): written chapters, and the ones still to come.
    course: site.course,
    nav: [
      { text: 'Chapters', link: '/chapters/', activeMatch: '^/chapters/' },
      { text: 'Reference', link: '/reference/', activeMatch: '^/reference/' },
      { text: 'Playground', link: '/playground' },
    ],
    sidebar: site.sidebar,
    search: { provider: 'local' },
    outline: { level: [2, 3] },
    editLink: {
      // Serialized into the client bundle, so it may only read the page (see transformPageData).
      pattern: (page: PageData) => String(page.frontmatter.editUrl),
      text: 'Edit this page',
    },
    footer: { message: 'VMX Lab — citations name SDM sections by title.' },
  },
});
