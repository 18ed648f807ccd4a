// The playground runs its example program on the emulator in the page and shows the expected
// debug-console output — or, in a build without the machine, says so honestly.
import { existsSync, readFileSync } from 'node:fs';
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

// The hypervisor mode: the chapter 4 first-launch example as a TypeScript module, insmod'ed on a fresh host.
const HV_EXAMPLE = join(ROOT, 'site/.vitepress/theme/playground/examples/first-launch.txt');

if (hasMachine) {
  test('playground hypervisor example: CPUID and HLT exits, a VMCS dump, and the diagnosis of a broken host state', async (t) => {
    // Independent expectations, computed here in Node: the exit numbers from the project's table, and the vendor
    // string the default CPU model's CPUID leaf 0 returns.
    const { EXIT_REASON } = await import('../../src/vmx/exit-reasons.ts');
    const { bootHost } = await import('../../src/kernel/boot-host.ts');
    const leaf0 = bootHost().kernel.cpu().cpuid(0);
    const vendor = [leaf0.ebx, leaf0.edx, leaf0.ecx].map((r) => String.fromCharCode(r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, (r >>> 24) & 0xff)).join('');
    const source = readFileSync(HV_EXAMPLE, 'utf8');
    const w = await t.newPage();
    try {
      await w.page.goto('/playground', { waitUntil: 'load' });
      await w.page.waitForFunction(() => document.querySelector('.vmx-playground')?.getAttribute('data-status') === 'ready');
      await w.page.locator('.vmx-playground-mode-hypervisor').click();
      const editor = w.page.locator('#vmx-playground-source');
      assertEqual(await editor.inputValue(), source, 'the hypervisor example in the editor');
      const run = async (): Promise<void> => {
        await w.page.locator('.vmx-playground-run').click();
        await w.page.locator('.vmx-playground-run:not([disabled])').waitFor({ state: 'visible', timeout: 60_000 });
      };

      await run();
      const exits = w.page.locator('.vmx-hv-exits tbody tr');
      await exits.first().waitFor({ state: 'visible', timeout: 60_000 });
      const trace = await exits.evaluateAll((rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (c) => (c.textContent ?? '').trim())));
      assertEqual(trace.map((r) => `${r[2]} ${r[3]}`).join(' | '), `${EXIT_REASON.EXIT_REASON_CPUID} EXIT_REASON_CPUID | ${EXIT_REASON.EXIT_REASON_HLT} EXIT_REASON_HLT`, 'exit trace');
      assertEqual(trace[0]?.[6], '2', 'VM_EXIT_INSTRUCTION_LEN of the CPUID exit');
      const consoleText = (await w.page.locator('.vmx-hv-console').textContent()) ?? '';
      assert(consoleText.includes(vendor), `the guest should print the vendor string ${vendor}: ${JSON.stringify(consoleText)}`);
      assertEqual(await w.page.locator('.vmx-hv-insmod').textContent(), 'ok', 'insmod result');
      const dmesg = (await w.page.locator('.vmx-hv-dmesg').textContent()) ?? '';
      assert(dmesg.includes('tiny_hv: the guest halted; VMX off'), `dmesg: ${dmesg}`);
      // The dump is the VMCS at the HLT exit: its GUEST_RIP is the HLT's address the trace shows.
      const rip = w.page.locator('.vmx-hv-vmcs tr', { has: w.page.locator('td code', { hasText: /^GUEST_RIP$/ }) }).locator('td').nth(3);
      assertEqual((await rip.textContent())?.trim(), trace[1]?.[5], 'GUEST_RIP in the VMCS dump = the guest RIP of the HLT exit');
      assertEqual(await w.page.locator('.vmx-hv-diagnosis').count(), 0, 'no diagnosis after a clean run');
      await w.page.screenshot({ path: join(t.site.screenshotDir, 'playground-hypervisor.png'), fullPage: true });

      // A host CS selector with RPL 3: VMLAUNCH fails with VMfailValid(8), and the page says which rule.
      const broken = source.replace("cpu.readSelector('cs') & ~7", "cpu.readSelector('cs') | 3");
      assert(broken !== source, 'the example writes HOST_CS_SELECTOR as the test expects');
      await editor.fill(broken);
      await run();
      const diagnosis = (await w.page.locator('.vmx-hv-diagnosis').textContent({ timeout: 60_000 })) ?? '';
      assert(diagnosis.includes('VMfailValid(8)') && diagnosis.includes('HOST_CS_SELECTOR'), `diagnosis: ${diagnosis}`);
      assert(((await w.page.locator('.vmx-hv-dmesg').textContent()) ?? '').includes('VM-instruction error 8'), 'dmesg reports error 8');
      assert((await w.page.locator('.vmx-hv-insmod').textContent()) !== 'ok', 'insmod must fail');
      assertEqual(await w.page.locator('.vmx-hv-exits').count(), 0, 'no VM exits when VMLAUNCH fails');
      const hostCs = w.page.locator('.vmx-hv-vmcs tr', { has: w.page.locator('td code', { hasText: /^HOST_CS_SELECTOR$/ }) }).locator('td').nth(3);
      assertEqual((await hostCs.textContent())?.trim().slice(-1), '3', 'the dump shows the refused HOST_CS_SELECTOR (RPL 3)');
      assertEqual(await w.page.locator('.vmx-hv-vmcs tbody tr').first().locator('td code').first().textContent(), 'HOST_CS_SELECTOR', 'the diagnosed field comes first in the dump');
      assertEqual(await w.page.locator('.vmx-hv-vmcs tr.vmx-hv-diagnosed').count(), 1, 'one field is marked as diagnosed');
      await w.page.screenshot({ path: join(t.site.screenshotDir, 'playground-hypervisor-broken.png'), fullPage: true });

      // A syntax error and a throw: clear messages, and the next run still works.
      await editor.fill('export default { name: "x", init( {');
      await run();
      const syntax = (await w.page.locator('.vmx-playground-error').textContent()) ?? '';
      assert(/syntax error/i.test(syntax) && /line 1/.test(syntax), `syntax error message: ${syntax}`);
      await editor.fill(source.replace('const cpu = k.cpu();', "const cpu = k.cpu(); throw new Error('boom from the page');"));
      await run();
      assert(((await w.page.locator('.vmx-hv-dmesg').textContent()) ?? '').includes('boom from the page'), 'a throw in init is an oops in dmesg');
      // Module code that never returns: the page stays usable, and Stop ends the run with a message.
      await editor.fill(source.replace('const cpu = k.cpu();', 'const cpu = k.cpu(); for (;;) {}'));
      await w.page.locator('.vmx-playground-run').click();
      await w.page.locator('.vmx-playground-stop-run').click({ timeout: 30_000 });
      const stopped = (await w.page.locator('.vmx-playground-error').textContent({ timeout: 30_000 })) ?? '';
      assert(/stopped/i.test(stopped), `message after Stop: ${stopped}`);
      await w.page.locator('.vmx-playground-reset').click();
      await run();
      await exits.nth(1).waitFor({ state: 'visible', timeout: 60_000 });
      assertNone(w.errors, 'errors on the playground page');
    } finally {
      await w.close();
    }
  });
}

if (hasMachine) {
  test("playground hypervisor example runs on every CPU model (the worker's code, in Node)", async () => {
    const { runHypervisor } = await import('../../site/.vitepress/theme/playground/run-hypervisor.ts');
    const { CPU_MODELS } = await import('../../src/machine/cpu-model.ts');
    const { EXIT_REASON } = await import('../../src/vmx/exit-reasons.ts');
    const { bootHost } = await import('../../src/kernel/boot-host.ts');
    const source = readFileSync(HV_EXAMPLE, 'utf8');
    const problems: string[] = [];
    for (const m of CPU_MODELS) {
      const r = await runHypervisor({ kind: 'hypervisor', source, budget: 100_000, model: m.name });
      if (r.kind !== 'hypervisor-result') {
        problems.push(`${m.name}: ${r.kind === 'error' ? r.error : r.kind}`);
        continue;
      }
      const exits = r.exits.map((x) => x.basic).join(',');
      if (r.insmod !== 'ok' || exits !== `${EXIT_REASON.EXIT_REASON_CPUID},${EXIT_REASON.EXIT_REASON_HLT}`) problems.push(`${m.name}: insmod ${r.insmod}, exits [${exits}]\n${r.dmesg}`);
      // The dump lists exactly the fields this model supports: as many as a fresh host's VMX state says.
      const supported = bootHost({ model: m.name }).vmx[0]!.state.supportedSlots.reduce((n, s) => n + s, 0);
      if (r.vmcs.length !== supported) problems.push(`${m.name}: VMCS dump has ${r.vmcs.length} fields, the model supports ${supported}`);
      // The dump is the VMCS at the HLT exit, which defines no interruption information: labelled, not a number.
      const intrInfo = r.vmcs.find((f) => f.name === 'VM_EXIT_INTR_INFO');
      if (intrInfo?.undefinedForThisExit !== true || !intrInfo.value.startsWith('undefined for this exit')) problems.push(`${m.name}: VM_EXIT_INTR_INFO at the HLT exit shown as ${JSON.stringify(intrInfo)}`);
    }
    assertNone(problems, 'hypervisor example across CPU models');
  });
}
