// The chapters appear in manifest order (sidebar and prev/next), and the landing and a chapter
// page render — with screenshots to look at (test-results/browser/).
import { join } from 'node:path';
import { CHAPTERS } from '../../chapters/manifest.ts';
import { assert, assertEqual, assertNone, test } from './harness.ts';

test('landing page says what VMX Lab is, in one screen', async (t) => {
  const w = await t.newPage();
  try {
    await w.page.goto('/', { waitUntil: 'networkidle' });
    const name = await w.page.locator('.VPHero .name').textContent();
    assertEqual(name?.trim(), 'VMX Lab', 'hero name');
    const tagline = (await w.page.locator('.VPHero .tagline').textContent()) ?? '';
    assert(/emulated x86-64 CPU/.test(tagline), `tagline does not say what the course is: "${tagline}"`);
    // The hero and its first action fit in the first screen.
    const action = w.page.locator('.VPHero .actions a').first();
    const box = await action.boundingBox();
    assert(box !== null && box.y + box.height <= 900, `the hero's first action is below the fold (${JSON.stringify(box)})`);
    await w.page.screenshot({ path: join(t.site.screenshotDir, 'landing.png') });
    assertNone(w.errors, 'errors on the landing page');
  } finally {
    await w.close();
  }
});

test('chapters are in manifest order in the sidebar, with prev/next from the manifest', async (t) => {
  const w = await t.newPage();
  try {
    const problems: string[] = [];
    for (let i = 0; i < CHAPTERS.length; i++) {
      const c = CHAPTERS[i];
      await w.page.goto(`/chapters/${c.slug}`, { waitUntil: 'load' });
      const sidebar = await w.page
        .locator('.VPSidebar a[href*="/chapters/"]')
        .evaluateAll((as) => as.map((a) => new URL((a as HTMLAnchorElement).href).pathname));
      const chapterLinks = sidebar.filter((p) => /\/chapters\/\d\d-/.test(p));
      const expected = CHAPTERS.map((x) => `/chapters/${x.slug}`);
      if (JSON.stringify(chapterLinks) !== JSON.stringify(expected)) {
        problems.push(`sidebar on ${c.slug}: ${JSON.stringify(chapterLinks)} ≠ manifest ${JSON.stringify(expected)}`);
      }
      const hrefOf = async (selector: string): Promise<string | null> => {
        const l = w.page.locator(selector);
        return (await l.count()) === 0 ? null : l.first().getAttribute('href');
      };
      const prev = await hrefOf('.VPDocFooter .pager-link.prev');
      const next = await hrefOf('.VPDocFooter .pager-link.next');
      const wantPrev = i > 0 ? `/chapters/${CHAPTERS[i - 1].slug}` : null;
      const wantNext = i + 1 < CHAPTERS.length ? `/chapters/${CHAPTERS[i + 1].slug}` : null;
      if ((prev === null ? null : new URL(prev, t.site.baseUrl).pathname) !== wantPrev) problems.push(`prev on ${c.slug}: ${prev} ≠ ${wantPrev}`);
      if ((next === null ? null : new URL(next, t.site.baseUrl).pathname) !== wantNext) problems.push(`next on ${c.slug}: ${next} ≠ ${wantNext}`);
      // Every exercise of the manifest has its box, with its points.
      for (const e of c.exercises) {
        const box = w.page.locator(`#exercise-${e.id}`);
        if ((await box.count()) !== 1) {
          problems.push(`${c.slug}: exercise ${e.id} has ${await box.count()} boxes`);
          continue;
        }
        const text = (await box.textContent()) ?? '';
        if (!text.includes(`${e.points} point`)) problems.push(`${c.slug}: exercise ${e.id} box does not show ${e.points} points`);
        if (!text.includes(`exercises/${c.slug}/${e.file}`)) problems.push(`${c.slug}: exercise ${e.id} box does not name its file`);
        if (!/npx vmxlab grade/.test(text)) problems.push(`${c.slug}: exercise ${e.id} box has no grade command`);
      }
      const edit = await hrefOf('.VPDocFooter .edit-link a');
      if (edit === null || !edit.endsWith(`chapters/${c.slug}/README.md`)) problems.push(`edit link on ${c.slug}: ${edit}`);
      if (i === 0) await w.page.screenshot({ path: join(t.site.screenshotDir, 'chapter.png'), fullPage: false });
    }
    assertNone(problems, 'course structure');
    assertNone(w.errors, 'errors on chapter pages');
  } finally {
    await w.close();
  }
});
