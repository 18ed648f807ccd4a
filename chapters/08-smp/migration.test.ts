// Exercise 8.3 — the migration bug: the first launch must work for every scheduler seed on 1, 2 and 4 CPUs, on a
// debug kernel that reports sleeping with preemption disabled. The guest runs to HLT on the CPU it was launched on,
// and VMX is off again there; the kernel reports nothing.
import { describe, expect, test } from 'vitest';
import { createPinnedLaunch } from '#impl/08-smp/migration';
import { bootSmp, explain, kernelBugs, runName, smpRuns, vmxViews } from './support.ts';

const GUEST_OUTPUT = 'guest: hello from VMX non-root operation';

describe('the pinned first launch', () => {
  test.each(smpRuns())('$model, $cpus CPU(s), seed $seed: the guest runs to HLT and nothing is reported', (run) => {
    const host = bootSmp(run);
    const k = host.kernel;
    const free = k.pages.freeCount();
    const hv = createPinnedLaunch();
    const loaded = k.insmod(hv.module);
    const why = () => `${runName(run)}\n${explain(host)}`;
    expect(loaded.ok, `insmod failed: ${loaded.ok ? '' : loaded.message}. Read the BUG lines in dmesg: they name the sleep point that moved the task between two VMX instructions.\n${why()}`).toBe(true);
    expect(kernelBugs(host), `the kernel reported bugs during insmod. "sleeping function called from invalid context": an allocation between get_cpu() and put_cpu(); "the scheduler moved it": a VMX instruction outside them.\n${why()}`).toEqual([]);
    expect(hv.log.launchedOn, `log.launchedOn should be the CPU of VMLAUNCH\n${why()}`).toBeGreaterThanOrEqual(0);
    k.run({ maxInstructions: 200_000 });
    expect(hv.log.halted, `the guest did not reach HLT (exits: ${hv.log.exits.join(', ')})\n${why()}`).toBe(true);
    expect(host.console.text(), 'the guest prints its greeting and the CPU vendor').toContain(GUEST_OUTPUT);
    expect(vmxViews(host).some((v) => v.inVmx), `after the guest halted, no CPU should be in VMX operation\n${why()}`).toBe(false);
    expect(k.pages.freeCount(), `pages leaked\n${why()}`).toBe(free);
    expect(kernelBugs(host), `the kernel reported bugs\n${why()}`).toEqual([]);
  });
});
