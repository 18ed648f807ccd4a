// The playground's EPT explainer (chapter 6's debug aid): after the EPT example runs, an address typed in the page is
// walked through the EPT_POINTER of the run's VMCS; after a module without EPT, the explainer says EPT is off.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, assertEqual, assertNone, test } from './harness.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const hasMachine = ['src/machine/machine.ts', 'src/guest/assembler.ts'].every((f) => existsSync(join(ROOT, f)));

if (hasMachine) {
  test('playground EPT explainer: the walk of a mapped and an unmapped guest-physical address after the EPT example', async (t) => {
    const w = await t.newPage();
    try {
      await w.page.goto('/playground', { waitUntil: 'load' });
      await w.page.waitForFunction(() => document.querySelector('.vmx-playground')?.getAttribute('data-status') === 'ready');
      await w.page.locator('.vmx-playground-mode-hypervisor').click();
      // Each run's EPT line is awaited by its text, so the previous run's page cannot answer for it.
      const run = async (state: RegExp): Promise<string> => {
        await w.page.locator('.vmx-playground-run').click();
        const line = w.page.locator('.vmx-hv-ept', { hasText: state });
        await line.waitFor({ state: 'visible', timeout: 60_000 });
        return (await line.textContent()) ?? '';
      };
      const explain = async (gpa: string): Promise<string> => {
        const shown = w.page.locator('.vmx-hv-explanation');
        const before = (await shown.count()) === 0 ? null : await shown.textContent();
        await w.page.locator('.vmx-hv-gpa').fill(gpa);
        await w.page.locator('.vmx-hv-explain-run').click();
        // The answer comes from the worker: wait until the text is there and is not the previous answer.
        await w.page.waitForFunction((prev) => {
          const text = document.querySelector('.vmx-hv-explanation')?.textContent ?? null;
          return text !== null && text !== prev;
        }, before, { timeout: 30_000 });
        return (await shown.textContent()) ?? '';
      };

      // The EPT example: an identity map of the first GiB with 2-MByte pages, RWX, WB (4-level walk: PML4E, PDPTE, PDE).
      await w.page.locator('.vmx-playground-example select').selectOption({ label: 'EPT identity map (chapter 6)' });
      const state = await run(/^EPT is on/);
      assertEqual(await w.page.locator('.vmx-hv-insmod').textContent(), 'ok', 'insmod of the EPT example');
      assert(/^EPT is on: EPT_POINTER 0x[0-9A-F]+E, read from the VMCS of the run\.$/.test(state), `EPT state: ${state}`);
      const eptp = /EPT_POINTER (0x[0-9A-F]+)/.exec(state)![1]!;
      const dumped = w.page.locator('.vmx-hv-vmcs tr', { has: w.page.locator('td code', { hasText: /^EPT_POINTER$/ }) }).locator('td').nth(3);
      assertEqual(BigInt((await dumped.textContent())?.trim() ?? ''), BigInt(eptp), 'the explainer walks the EPT_POINTER the VMCS dump shows');

      const mapped = await explain('0x1000');
      const lines = mapped.split('\n');
      assertEqual(lines[0], 'guest-physical 0x1000 → host-physical 0x1000: RWX, WB, 2 MiB page', 'first line for 0x1000');
      assertEqual(lines.slice(1).map((l) => /^ {2}(\w+) at /.exec(l)?.[1]).join(' '), 'PML4E PDPTE PDE', 'the entries walked for 0x1000');
      assert(lines[1]!.startsWith(`  PML4E at 0x${(BigInt(eptp) & ~0xfffn).toString(16).toUpperCase()} `), `the walk starts at the PML4 table EPTP names: ${lines[1]}`);
      assert(/^ {2}PDE at 0x[0-9A-F]+ = 0xB7: R W X \(pde-2m\)$/.test(lines[3] ?? ''), `the leaf: ${lines[3]}`);

      const unmapped = await explain('40000000h');
      assert(unmapped.startsWith('guest-physical 0x40000000: not mapped (an access would be an EPT violation)'), `above the first GiB: ${unmapped}`);
      assert(/PDPTE at 0x[0-9A-F]+ = 0x0: not present$/.test(unmapped), `the walk stops at the PDPTE: ${unmapped}`);
      assertEqual(await explain('bogus'), "'bogus' is not a guest-physical address: give it in hex (0x1000 or 1000H) or decimal.", 'bad input');
      await w.page.screenshot({ path: join(t.site.screenshotDir, 'playground-ept.png'), fullPage: true });

      assertNone(w.errors, 'errors on the playground page');
    } finally {
      await w.close();
    }
  });

  // The same worker code in Node (no second page run, to keep browser time low): the chapter 4 example does not
  // turn on the secondary controls, so there is no walk and the page's EPT line says why.
  test('playground EPT explainer says "EPT is off" for a module without EPT (the worker\'s code, in Node)', async () => {
    const { runHypervisor } = await import('../../site/.vitepress/theme/playground/run-hypervisor.ts');
    const { explainGpa } = await import('../../site/.vitepress/theme/playground/explain-gpa.ts');
    const source = readFileSync(join(ROOT, 'site/.vitepress/theme/playground/examples/first-launch.txt'), 'utf8');
    const r = await runHypervisor({ kind: 'hypervisor', source, budget: 100_000, model: '' });
    assert(r.kind === 'hypervisor-result', `first-launch run: ${JSON.stringify(r)}`);
    assertEqual(r.ept.enabled, false, 'EPT enabled after the first-launch example');
    assert(r.ept.text.startsWith('EPT is off in this run: "activate secondary controls" (CPU_BASED_VM_EXEC_CONTROL bit 31) is 0'), `EPT line: ${r.ept.text}`);
    assertEqual(explainGpa('0x1000'), 'No EPT to walk: run a module that enables EPT first.', 'an explain request after a run without EPT');
  });
}
