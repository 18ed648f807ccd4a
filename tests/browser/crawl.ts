// Visits every built page once and records what the page tests check: console errors, requests
// that tried to leave the machine, and every link on the page. Shared by several tests.
import { readFileSync } from 'node:fs';
import type { TestContext } from './harness.ts';
import { resolveSitePath } from './server.ts';

export interface PageVisit {
  path: string;
  title: string;
  h1: string;
  errors: string[];
  offMachine: string[];
  /** href → where on the page it was found (sidebar, nav, content…). */
  links: { href: string; where: string }[];
  /** Element ids on the rendered page (for same-page anchors). */
  ids: Set<string>;
}

let visits: Promise<PageVisit[]> | null = null;

const PAGE_INFO = `(() => {
  const where = (a) =>
    a.closest('.VPSidebar') ? 'sidebar' : a.closest('.VPNav') ? 'nav' : a.closest('.VPDocFooter') ? 'footer'
      : a.closest('.VPDocAside') ? 'outline' : 'content';
  return {
    title: document.title,
    h1: (document.querySelector('h1')?.textContent ?? '').trim(),
    links: [...document.querySelectorAll('a[href]')].map((a) => ({ href: a.href, where: where(a) })),
    ids: [...document.querySelectorAll('[id]')].map((e) => e.id),
  };
})()`;

export function crawl(t: TestContext): Promise<PageVisit[]> {
  visits ??= doCrawl(t);
  return visits;
}

/** Browser tabs take pages from one queue (VMXLAB_CRAWL_TABS, default 2); results come back in page order. */
async function doCrawl(t: TestContext): Promise<PageVisit[]> {
  const tabs = Math.max(1, Number(process.env.VMXLAB_CRAWL_TABS ?? 2));
  const queue = [...t.site.pages];
  const results = await Promise.all(Array.from({ length: Math.min(tabs, queue.length) }, () => crawlPages(t, queue)));
  return results.flat().sort((a, b) => t.site.pages.indexOf(a.path) - t.site.pages.indexOf(b.path));
}

/** Visit pages taken from `queue` (shared with the other tabs) until it is empty. */
async function crawlPages(t: TestContext, queue: string[]): Promise<PageVisit[]> {
  const out: PageVisit[] = [];
  const w = await t.newPage();
  try {
    for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
      w.errors.length = 0;
      w.offMachine.length = 0;
      await w.page.goto(path, { waitUntil: 'load', timeout: 30_000 });
      await w.page.waitForSelector('#app > *', { timeout: 10_000 });
      // A string, not a function: tsx would wrap named functions in a helper the page does not have.
      const info = (await w.page.evaluate(PAGE_INFO)) as { title: string; h1: string; links: { href: string; where: string }[]; ids: string[] };
      out.push({ path, title: info.title, h1: info.h1, errors: [...w.errors], offMachine: [...w.offMachine], links: info.links, ids: new Set(info.ids) });
    }
  } finally {
    await w.close();
  }
  return out;
}

const idCache = new Map<string, Set<string>>();

/** Ids of the row anchors the reference generators emit (`<span class="vmx-anchor" id="…">`). */
export function anchorIdsInFile(file: string): string[] {
  const html = readFileSync(file, 'utf8');
  return [...html.matchAll(/<span class="vmx-anchor" id="([^"]+)"/g)].map((m) => decodeHtml(m[1]));
}

/** Element ids in a built HTML file (server-rendered, so anchors exist without scripts). */
export function idsInFile(file: string): Set<string> {
  let ids = idCache.get(file);
  if (ids === undefined) {
    const html = readFileSync(file, 'utf8');
    ids = new Set([...html.matchAll(/\sid="([^"]+)"/g)].map((m) => decodeHtml(m[1])));
    idCache.set(file, ids);
  }
  return ids;
}

function decodeHtml(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Why an internal link does not resolve, or null when it does. */
export function brokenLink(distDir: string, origin: string, href: string, fromPath: string, fromIds: Set<string>): string | null {
  const url = new URL(href);
  if (url.origin !== origin) return null; // external links are not followed (no request leaves the machine)
  const file = resolveSitePath(distDir, url.pathname);
  if (file === null) return `no page for ${url.pathname}`;
  if (url.hash.length > 1) {
    const id = decodeURIComponent(url.hash.slice(1));
    const samePage = new URL(fromPath, origin).pathname === url.pathname;
    const ids = samePage ? new Set([...fromIds, ...idsInFile(file)]) : idsInFile(file);
    if (!ids.has(id)) return `no element #${id} on ${url.pathname}`;
  }
  return null;
}
