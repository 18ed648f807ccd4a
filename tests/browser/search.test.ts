// Local search (minisearch, no network) finds VMX instructions.
import { assert, test } from './harness.ts';

test('search finds "VMXON"', async (t) => {
  const w = await t.newPage();
  try {
    await w.page.goto('/', { waitUntil: 'load' });
    await w.page.locator('.VPNavBarSearch button').first().click();
    const input = w.page.locator('.VPLocalSearchBox input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill('VMXON');
    const results = w.page.locator('.VPLocalSearchBox .results li');
    await results.first().waitFor({ state: 'visible', timeout: 10_000 });
    const n = await results.count();
    const texts = await results.allTextContents();
    assert(n > 0, 'search returned no results for VMXON');
    assert(
      texts.some((x) => /vmxon/i.test(x)),
      `no result mentions VMXON; first results: ${texts.slice(0, 3).join(' | ')}`,
    );
    // Following the first result lands on a real page.
    await results.first().locator('a').first().click();
    await w.page.waitForLoadState('load');
    const h1 = await w.page.locator('h1').first().textContent();
    assert(h1 !== null && h1.trim() !== '', `the first result led to ${w.page.url()}, which has no heading`);
    assert(w.errors.length === 0, `errors during search: ${w.errors.join('; ')}`);
  } finally {
    await w.close();
  }
});
