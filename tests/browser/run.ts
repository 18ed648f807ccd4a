// Browser tests for the course site: builds it (when the build is older than its sources),
// serves site/.vitepress/dist on 127.0.0.1, drives Debian's Chromium with playwright-core and
// runs every tests/browser/*.test.ts. Prints `N passed, N failed`; exits non-zero on failure.
// Tests run side by side in one browser (each in its own context; VMXLAB_BROWSER_JOBS at a time,
// default 3); their results are printed in registration order. `npm test` passes --no-build: it
// has just built the site.
//
//   npx tsx tests/browser/run.ts            build if stale, then test
//   npx tsx tests/browser/run.ts --build    always rebuild first
//   npx tsx tests/browser/run.ts --no-build test the existing build
//   npx tsx tests/browser/run.ts --only playground   only the test files whose name contains "playground"
//   CHROMIUM=/path/to/chromium              use another browser binary
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Request } from 'playwright-core';
import { PREPARE, TESTS, type SiteInfo, type TestContext, type WatchedPage } from './harness.ts';
import { serveDist } from './server.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DIST = join(ROOT, 'site', '.vitepress', 'dist');
const SCREENSHOTS = join(ROOT, 'test-results', 'browser');

function newestMtime(dir: string, skip: (p: string) => boolean): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (skip(p)) continue;
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p, skip));
    else newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The build is stale when any source of the site is newer than dist/index.html. */
function buildIsStale(): boolean {
  const index = join(DIST, 'index.html');
  if (!existsSync(index)) return true;
  const built = statSync(index).mtimeMs;
  const skip = (p: string): boolean =>
    p.includes(`${join('site', '.vitepress', 'dist')}`) ||
    p.includes(`${join('site', '.vitepress', 'cache')}`) ||
    p.includes(`${join('site', '.vitepress', '.temp')}`) ||
    p.endsWith('.test.ts');
  // Generated pages under site/chapters and site/reference are rewritten by the build itself.
  const sources = ['site', 'chapters', 'src', 'scripts/site', 'package.json'].map((d) => join(ROOT, d));
  return sources.some((s) => (statSync(s, { throwIfNoEntry: false })?.isDirectory() ? newestMtime(s, skip) : (statSync(s, { throwIfNoEntry: false })?.mtimeMs ?? 0)) > built);
}

function sitePages(dist: string): string[] {
  const pages: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'assets') walk(p);
      } else if (entry.name.endsWith('.html') && entry.name !== '404.html') {
        const rel = '/' + relative(dist, p).split('\\').join('/');
        pages.push(rel.endsWith('/index.html') ? rel.slice(0, -'index.html'.length) : rel.slice(0, -'.html'.length));
      }
    }
  };
  walk(dist);
  return pages.sort();
}

function findChromium(): string {
  const candidates = [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium'].filter((p): p is string => p !== undefined && p !== '');
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`Chromium not found (tried ${candidates.join(', ')}); apt-get install chromium`);
  return found;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const build = args.includes('--build') || (!args.includes('--no-build') && buildIsStale());
  if (build) {
    process.stdout.write('browser tests: building the site (npx vitepress build site)\n');
    const r = spawnSync('npx', ['vitepress', 'build', 'site'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) {
      process.stdout.write('site build failed\n0 passed, 1 failed\n');
      return 1;
    }
  }
  if (!existsSync(join(DIST, 'index.html'))) throw new Error(`no site build in ${DIST}`);

  for (const name of readdirSync(fileURLToPath(new URL('.', import.meta.url))).sort()) {
    const only = args.indexOf('--only');
    if (only >= 0 && !name.includes(args[only + 1] ?? '')) continue;
    if (name.endsWith('.test.ts')) await import(pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), name)).href);
  }

  rmSync(SCREENSHOTS, { recursive: true, force: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
  const { server, baseUrl } = await serveDist(DIST);
  const browser = await chromium.launch({
    executablePath: findChromium(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
    // playwright gives every launch a fresh temporary profile (user-data-dir) and removes it on close.
  });
  const site: SiteInfo = { baseUrl, distDir: DIST, pages: sitePages(DIST), screenshotDir: SCREENSHOTS };
  const origin = new URL(baseUrl).origin;

  const ctx: TestContext = {
    site,
    browser,
    async newPage(): Promise<WatchedPage> {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: baseUrl });
      const errors: string[] = [];
      const offMachine: string[] = [];
      // No request may leave the machine: abort and record anything not addressed to the test server.
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
        offMachine.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`console error on ${page.url()}: ${msg.text()}`);
      });
      page.on('pageerror', (err) => errors.push(`uncaught ${err.name} on ${page.url()}: ${err.message}`));
      page.on('requestfailed', (req: Request) => {
        // ERR_ABORTED is a prefetch cut short by the next navigation, not a broken resource.
        const why = req.failure()?.errorText ?? '?';
        if (req.url().startsWith(origin) && why !== 'net::ERR_ABORTED') errors.push(`request failed: ${req.url()} (${why})`);
      });
      page.on('response', (res) => {
        if (res.url().startsWith(origin) && res.status() >= 400) errors.push(`HTTP ${res.status()} for ${res.url()}`);
      });
      return { page, context, errors, offMachine, close: () => context.close() };
    },
  };

  let passed = 0;
  let failed = 0;
  const jobs = Math.max(1, Number(process.env.VMXLAB_BROWSER_JOBS ?? 3));
  try {
    // Up to `jobs` tests at once; each line is printed as soon as every earlier test has printed its own.
    const lines: (string | undefined)[] = TESTS.map(() => undefined);
    let printed = 0;
    const flush = (): void => {
      while (printed < lines.length && lines[printed] !== undefined) process.stdout.write(lines[printed++]!);
    };
    for (const p of PREPARE) p(ctx);
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < TESTS.length; i = next++) {
        const t = TESTS[i]!;
        const started = performance.now();
        // Durations are reported for information only; no test passes or fails on time.
        const took = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
        try {
          await t.fn(ctx);
          passed++;
          lines[i] = `  ✓ ${t.name} (${took()})\n`;
        } catch (e) {
          failed++;
          lines[i] = `  ✗ ${t.name} (${took()})\n    ${(e instanceof Error ? e.message : String(e)).split('\n').join('\n    ')}\n`;
        }
        flush();
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, TESTS.length) }, lane));
  } finally {
    await browser.close();
    server.close();
  }
  process.stdout.write(`screenshots: ${relative(ROOT, SCREENSHOTS)}/\n`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stdout.write(`browser tests could not run: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n0 passed, 1 failed\n`);
    process.exitCode = 1;
  },
);
