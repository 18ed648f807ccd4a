// The playground runs its example program on the emulator in the page and shows the expected
// debug-console output — or, in a build without the machine, says so honestly.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXAMPLE_EXPECTED_OUTPUT } from '../../site/.vitepress/theme/playground/runner.ts';
import { assert, assertEqual, assertNone, test } from './harness.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const hasMachine = ['src/machine/machine.ts', 'src/machine/testing/run-guest.ts', 'src/guest/assembler.ts'].every((f) => existsSync(join(ROOT, f)));

test(hasMachine ? 'playground runs its example and prints the expected output' : 'playground says the machine has not arrived', async (t) => {
  const w = await t.newPage();
  try {
    await w.page.goto('/playground', { waitUntil: 'load' });
    const root = w.page.locator('.vmx-playground');
    await root.waitFor({ state: 'visible', timeout: 10_000 });
    await w.page.waitForFunction(() => document.querySelector('.vmx-playground')?.getAttribute('data-status') !== 'loading');
    const status = await root.getAttribute('data-status');
    if (!hasMachine) {
      assertEqual(status, 'missing', 'playground status without the machine');
      const text = (await w.page.locator('.vmx-playground-missing').textContent()) ?? '';
      assert(/arrives with the machine/i.test(text), `no "arrives with the machine" notice: ${text}`);
      assert(await w.page.locator('.vmx-playground-run').isDisabled(), 'the run button is enabled without a machine');
    } else {
      assertEqual(status, 'ready', 'playground status');
      await w.page.locator('.vmx-playground-run').click();
      const out = w.page.locator('.vmx-playground-console');
      await out.waitFor({ state: 'visible', timeout: 60_000 });
      assertEqual(await out.textContent(), EXAMPLE_EXPECTED_OUTPUT, 'debug console output');
      const rax = await w.page.locator('.vmx-playground-registers tr', { hasText: 'RAX' }).locator('td').textContent();
      assertEqual(rax?.trim(), '0x0000000000001234', 'RAX after the example (mov rax, 0x1234; hlt)');
      const stop = (await w.page.locator('.vmx-playground-stop').textContent()) ?? '';
      assert(/HLT/.test(stop), `the example should stop at HLT: ${stop}`);
      // Another example from the picker: a fault with no IDT ends in a triple fault (shutdown).
      await w.page.locator('.vmx-playground-example select').selectOption({ label: 'A fault with no IDT (triple fault)' });
      await w.page.locator('.vmx-playground-run').click();
      await w.page.locator('.vmx-playground-stop', { hasText: 'shutdown' }).waitFor({ state: 'visible', timeout: 60_000 });
      assertEqual(await w.page.locator('.vmx-playground-console').textContent(), '!', 'console output before the fault');
    }
    await w.page.screenshot({ path: join(t.site.screenshotDir, 'playground.png') });
    assertNone(w.errors, 'errors on the playground page');
  } finally {
    await w.close();
  }
});
