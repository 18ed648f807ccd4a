// Every page loads cleanly, nothing is fetched from another machine, and every link resolves.
import { crawl, brokenLink } from './crawl.ts';
import { assert, assertNone, prepare, test } from './harness.ts';

// Three tests read the crawl: it starts with the first tests (a failure is reported by each test that awaits it).
prepare((t) => void crawl(t).catch(() => undefined));

test('every page loads without console errors', async (t) => {
  const visits = await crawl(t);
  assert(visits.length >= 10, `expected the whole site to be built, found only ${visits.length} pages`);
  assertNone(visits.flatMap((v) => v.errors), 'errors while loading pages');
  assertNone(
    visits.filter((v) => v.h1 === '' && v.path !== '/').map((v) => `${v.path} has no <h1>`),
    'pages without a heading',
  );
});

test('no request leaves the machine (fonts, scripts, images are self-hosted)', async (t) => {
  const visits = await crawl(t);
  assertNone(visits.flatMap((v) => v.offMachine.map((u) => `${v.path} requested ${u}`)), 'off-machine requests');
});

test('all sidebar, nav and in-page links resolve', async (t) => {
  const visits = await crawl(t);
  const origin = new URL(t.site.baseUrl).origin;
  const problems: string[] = [];
  let checked = 0;
  let sidebar = 0;
  for (const v of visits) {
    for (const l of v.links) {
      const why = brokenLink(t.site.distDir, origin, l.href, v.path, v.ids);
      if (new URL(l.href).origin === origin) checked++;
      if (l.where === 'sidebar') sidebar++;
      if (why !== null) problems.push(`${v.path} (${l.where}) → ${l.href}: ${why}`);
    }
  }
  assert(sidebar > 0, 'no sidebar links found at all');
  assert(checked > 100, `only ${checked} internal links found; the crawl looks broken`);
  assertNone(problems, 'broken links');
});

test('x86 assembly is highlighted (x86asm is an alias of asm)', async (t) => {
  const w = await t.newPage();
  try {
    await w.page.goto('/playground', { waitUntil: 'load' });
    const block = w.page.locator('div.language-x86asm');
    assert((await block.count()) > 0, 'no x86asm code block on the playground page');
    const colored = await block.first().locator('span[style*="--shiki-light"]').count();
    assert(colored > 5, `the x86asm block is not highlighted (${colored} coloured spans)`);
  } finally {
    await w.close();
  }
});
