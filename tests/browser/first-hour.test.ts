// What a newcomer sees in the first hour (issue 16): a landing page that claims only what is written and has
// no empty half, code blocks that show they scroll, outline entries in full, and a playground editor with line
// numbers that errors point into.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import { CHAPTERS } from '../../chapters/manifest.ts';
import { courseMap } from '../../scripts/site/course.ts';
import { assert, assertEqual, assertNone, test, type WatchedPage } from './harness.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const HV_EXAMPLE = readFileSync(join(ROOT, 'site/.vitepress/theme/playground/examples/first-launch.txt'), 'utf8');

/** A test on a fresh page: afterwards a screenshot (`shot`.png) of where it left the page, and no errors logged. */
function pageTest(name: string, shot: string, fn: (w: WatchedPage) => Promise<void>): void {
  test(name, async (t) => {
    const w = await t.newPage();
    try {
      await fn(w);
      await w.page.screenshot({ path: join(t.site.screenshotDir, `${shot}.png`) });
      assertNone(w.errors, `errors on ${w.page.url()}`);
    } finally {
      await w.close();
    }
  });
}

pageTest('landing page: a course map fills the hero\'s right half; unwritten chapters are "coming"; no literal backticks', 'landing', async (w) => {
  await w.page.goto('/', { waitUntil: 'load' });
  const map = w.page.locator('.VPHero .vmx-course-map');
  await map.waitFor({ state: 'visible', timeout: 10_000 });
  const box = (await map.boundingBox())!;
  const width = w.page.viewportSize()!.width;
  assert(box.x >= width / 2 - 40 && box.height > 200, `the course map should fill the hero's right half: ${JSON.stringify(box)} in a ${width}px page`);
  const { written, coming } = courseMap(CHAPTERS);
  const links = await map.locator('li.written a').evaluateAll((as) => as.map((a) => [a.textContent?.trim(), new URL((a as HTMLAnchorElement).href).pathname]));
  assertEqual(JSON.stringify(links), JSON.stringify(written.map((c) => [c.title, c.link])), 'written chapters in the map, linked');
  const soon = await map.locator('li.coming').allTextContents();
  assertEqual(soon.length, coming.length, 'coming chapters in the map');
  assertNone(soon.filter((s) => !/coming/i.test(s)), 'coming chapters not marked "coming"');
  // Outside the map, the page does not name a chapter that is not written.
  const rest = await w.page.evaluate(() => {
    const clone = document.querySelector('.VPContent')!.cloneNode(true) as HTMLElement;
    clone.querySelector('.vmx-course-map')?.remove();
    return clone.innerText;
  });
  assertNone(coming.flatMap((c) => c.title.split(/ and /)).filter((word) => new RegExp(`\\b${word}\\b`).test(rest)), 'topics of unwritten chapters named on the landing page');
  const text = await w.page.locator('.VPContent').innerText();
  assert(!text.includes('`'), `literal backticks on the landing page: ${JSON.stringify(text.split('\n').filter((l) => l.includes('`')))}`);
});

/** Mean brightness (0–255) of a vertical strip of an element, from a real screenshot decoded in the page. */
async function stripBrightness(page: Page, element: Locator, side: 'left' | 'right', px = 10): Promise<number> {
  const box = (await element.boundingBox())!;
  const clip = { x: side === 'left' ? box.x + 1 : box.x + box.width - px - 1, y: box.y + 8, width: px, height: Math.min(box.height - 16, 200) };
  const png = (await page.screenshot({ clip })).toString('base64');
  return page.evaluate(async (b64) => {
    const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(bitmap, 0, 0);
    const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += (data[i]! + data[i + 1]! + data[i + 2]!) / 3;
    return sum / (data.length / 4);
  }, png);
}

pageTest('a code block wider than the page scrolls and shows it: a shadow on the side with more code', 'wide-code', async (w) => {
  await w.page.goto('/chapters/04-first-launch', { waitUntil: 'load' });
  const wide = await w.page.locator('.vp-doc div[class*="language-"] pre').evaluateAll((pres) =>
    pres.map((p, i) => ({ i, over: p.scrollWidth - p.clientWidth, overflow: getComputedStyle(p).overflowX, scrollbar: getComputedStyle(p).scrollbarWidth })),
  );
  const overflowing = wide.filter((b) => b.over > 20);
  assert(overflowing.length > 0, 'chapter 4 should have a code block wider than the page (the VM-entry sequence)');
  assertNone(overflowing.filter((b) => !['auto', 'scroll'].includes(b.overflow) || b.scrollbar === 'none').map((b) => JSON.stringify(b)), 'wide code blocks that cannot scroll or hide their scrollbar');
  // Look at the pixels: at the start the right edge is shaded and the left is not; scrolled to the end, the reverse.
  const pre = w.page.locator('.vp-doc div[class*="language-"] pre').nth(overflowing[0]!.i);
  await pre.scrollIntoViewIfNeeded();
  const [left0, right0] = [await stripBrightness(w.page, pre, 'left'), await stripBrightness(w.page, pre, 'right')];
  assert(right0 < left0 - 8, `no shadow at the right edge of a block that scrolls right (left ${left0.toFixed(1)}, right ${right0.toFixed(1)})`);
  await pre.evaluate((p) => p.scrollTo({ left: p.scrollWidth }));
  await w.page.waitForTimeout(100);
  const [left1, right1] = [await stripBrightness(w.page, pre, 'left'), await stripBrightness(w.page, pre, 'right')];
  assert(left1 < right1 - 8, `no shadow at the left edge once scrolled to the end (left ${left1.toFixed(1)}, right ${right1.toFixed(1)})`);
  await pre.evaluate((p) => p.scrollTo({ left: 0 }));
});

pageTest('outline ("On this page") entries are shown in full, not cut with an ellipsis', 'outline', async (w) => {
  const problems: string[] = [];
  for (const c of CHAPTERS) {
    await w.page.goto(`/chapters/${c.slug}`, { waitUntil: 'load' });
    await w.page.locator('.VPDocAsideOutline .outline-link').first().waitFor({ state: 'attached', timeout: 10_000 });
    const cut = await w.page.locator('.VPDocAsideOutline .outline-link').evaluateAll((as) =>
      as.filter((a) => a.scrollWidth > a.clientWidth + 1 || (getComputedStyle(a).textOverflow === 'ellipsis' && getComputedStyle(a).whiteSpace === 'nowrap')).map((a) => a.textContent),
    );
    problems.push(...cut.map((s) => `${c.slug}: "${s}"`));
  }
  assertNone(problems, 'outline entries cut off');
  await w.page.goto('/chapters/03-capabilities', { waitUntil: 'load' });
});

pageTest('the Kernel and CPU API page fits the page: every call and what it does is on screen', 'kernel-api', async (w) => {
  await w.page.goto('/reference/kernel-api', { waitUntil: 'load' });
  const tables = w.page.locator('.vp-doc table');
  assert((await tables.count()) >= 5, 'the API page should have a table per section');
  const content = (await w.page.locator('.vp-doc').boundingBox())!;
  const cut = await tables.evaluateAll((ts, right) => ts.filter((t) => t.scrollWidth > t.clientWidth + 1 || t.getBoundingClientRect().right > right + 1).map((t) => t.previousElementSibling?.textContent), content.x + content.width);
  assertNone(cut.map((h) => `the table under "${h}" is wider than the page`), 'API tables cut off');
  const rows = await w.page.locator('.vp-doc td:first-child code').allTextContents();
  assert(rows.some((r) => r.startsWith('k.kmalloc(')) && rows.some((r) => r.startsWith('cpu.vmxon(')), 'k.kmalloc and cpu.vmxon are listed');
  await w.page.locator('#memory').scrollIntoViewIfNeeded();
});

/** The playground in hypervisor mode, ready. */
async function hypervisorPlayground(page: Page): Promise<void> {
  await page.goto('/playground', { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('.vmx-playground')?.getAttribute('data-status') === 'ready', undefined, { timeout: 20_000 });
  await page.locator('.vmx-playground-mode-hypervisor').click();
}
async function runAndWait(page: Page): Promise<void> {
  await page.locator('.vmx-playground-run').click();
  await page.locator('.vmx-playground-run:not([disabled])').waitFor({ state: 'visible', timeout: 60_000 });
}

pageTest('playground editor: line numbers next to the lines, and the line an error cites is marked', 'playground-editor', async (w) => {
  await hypervisorPlayground(w.page);
  const gutter = w.page.locator('.vmx-playground-gutter span');
  assertEqual(await gutter.count(), HV_EXAMPLE.split('\n').length, 'one number per line of the example');
  // Number n sits level with line n: the gutter and the text have the same line height and top padding.
  const geometry = await w.page.evaluate(() => {
    const ta = document.querySelector<HTMLTextAreaElement>('#vmx-playground-source')!;
    const g = document.querySelector<HTMLElement>('.vmx-playground-gutter')!;
    const span = g.querySelector('span')!;
    return { line: getComputedStyle(ta).lineHeight, number: `${span.getBoundingClientRect().height}px`, top: [getComputedStyle(ta).paddingTop, getComputedStyle(g).paddingTop], wrap: ta.getAttribute('wrap') };
  });
  assertEqual(geometry.number, geometry.line, 'gutter row height = editor line height');
  assertEqual(geometry.top[0], geometry.top[1], 'gutter and editor top padding');
  assertEqual(geometry.wrap, 'off', 'editor lines do not wrap (so numbers stay with their lines)');
  // Scrolling the editor scrolls the numbers with it.
  const scrolled = await w.page.evaluate(async () => {
    const ta = document.querySelector<HTMLTextAreaElement>('#vmx-playground-source')!;
    ta.scrollTop = 200;
    ta.dispatchEvent(new Event('scroll'));
    await new Promise((r) => setTimeout(r, 50));
    return [ta.scrollTop, document.querySelector<HTMLElement>('.vmx-playground-gutter')!.scrollTop];
  });
  assertEqual(scrolled[1], scrolled[0], 'gutter scrollTop follows the editor');

  const editor = w.page.locator('#vmx-playground-source');
  // A syntax error on line 3: the message says line 3, and number 3 is marked.
  const lines = HV_EXAMPLE.split('\n');
  await editor.fill([...lines.slice(0, 2), 'const = ;', ...lines.slice(2)].join('\n'));
  await runAndWait(w.page);
  const error = (await w.page.locator('.vmx-playground-error').textContent()) ?? '';
  assert(/line 3\b/.test(error), `the syntax error should cite line 3: ${error}`);
  assertEqual(JSON.stringify(await w.page.locator('.vmx-playground-gutter .vmx-playground-error-line').allTextContents()), '["3"]', 'marked gutter lines');
  // An exception thrown by init: the oops in dmesg names the editor line, and it is marked.
  const init = lines.findIndex((l) => /^\s*init\(k/.test(l));
  assert(init >= 0, 'the example has an init(k…) method');
  await editor.fill([...lines.slice(0, init + 1), "    throw new Error('boom');", ...lines.slice(init + 1)].join('\n'));
  await runAndWait(w.page);
  const dmesg = (await w.page.locator('.vmx-hv-dmesg').textContent()) ?? '';
  assert(dmesg.includes(`boom (line ${init + 2} of your module)`), `the oops should name line ${init + 2}: ${dmesg}`);
  const marked = w.page.locator('.vmx-playground-gutter .vmx-playground-error-line');
  assertEqual(JSON.stringify(await marked.allTextContents()), JSON.stringify([String(init + 2)]), 'marked gutter lines after an oops');
  // The editor scrolled to it: the marked number is inside the visible part of the gutter.
  const [m, g] = [(await marked.boundingBox())!, (await w.page.locator('.vmx-playground-gutter').boundingBox())!];
  assert(m.y >= g.y && m.y + m.height <= g.y + g.height, `the cited line is scrolled out of view (line box ${JSON.stringify(m)}, gutter ${JSON.stringify(g)})`);
  await marked.scrollIntoViewIfNeeded();
});

pageTest('playground: the broken-host tip is an edit the example allows, and an empty console says it is empty', 'playground-empty-console', async (w) => {
  await w.page.goto('/playground', { waitUntil: 'load' });
  const tip = (await w.page.locator('.vp-doc li', { hasText: 'Try breaking it' }).textContent()) ?? '';
  assert(/replace & ~7 with \| 3/.test(tip.replace(/\s+/g, ' ')), `the tip should say "replace & ~7 with | 3": ${tip}`);
  assert(HV_EXAMPLE.includes("HOST_CS_SELECTOR, cpu.readSelector('cs') & ~7"), 'the example writes HOST_CS_SELECTOR with & ~7, as the tip says');
  // A guest that writes nothing to port E9H: the console says so instead of showing an empty box.
  await w.page.waitForFunction(() => document.querySelector('.vmx-playground')?.getAttribute('data-status') === 'ready', undefined, { timeout: 20_000 });
  await w.page.locator('.vmx-playground-example select').selectOption({ label: 'A loop that outlives its budget' });
  await w.page.locator('.vmx-playground-budget input, .vmx-playground-controls input').first().fill('5000');
  await runAndWait(w.page);
  const console = w.page.locator('.vmx-playground-console');
  assertEqual((await console.textContent())?.trim(), '(empty: the program wrote nothing to port E9H)', 'an empty debug console');
  assert(await console.evaluate((e) => e.classList.contains('vmx-playground-empty')), 'the empty console is styled as a note, not as output');
  await console.scrollIntoViewIfNeeded();
});
