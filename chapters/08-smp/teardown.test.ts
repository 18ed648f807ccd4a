// Exercise 8.2 — teardown on every CPU, and all-or-nothing start: after rmmod, or after a start in which one CPU
// failed, no CPU is in VMX operation, no CR4.VMXE is left set, every VMCS was VMCLEARed before its CPU's VMXOFF, and
// every page is free again — freed only once every CPU is out. Checked on the CPUs themselves.
import { describe, expect, test } from 'vitest';
import { createSmpVmxModule, vmxOffThisCpu, vmxStartAll } from '#impl/08-smp/teardown';
import { EIO } from '../../src/kernel/errno.ts';
import { bootSmp, explain, kernelBugs, runName, smpRuns, vmxViews, type Host } from './support.ts';

/** Record, at every VMXOFF, the VMCSs still active on that CPU; at every free_page, which CPUs are in VMX operation. */
function spy(host: Host): { activeAtVmxoff: string[]; inVmxAtFree: string[] } {
  const out = { activeAtVmxoff: [] as string[], inVmxAtFree: [] as string[] };
  for (const cpu of host.kernel.allCpus()) {
    const vmxoff = cpu.vmxoff.bind(cpu);
    cpu.vmxoff = () => {
      const active = host.vmx[host.kernel.cpu().id]!.state.active;
      if (active.length > 0) out.activeAtVmxoff.push(`CPU ${host.kernel.cpu().id}: VMCS ${active.map((v) => v.pa.toString(16)).join(', ')} still active`);
      vmxoff();
    };
  }
  const k = host.kernel;
  const freePage = k.free_page.bind(k);
  k.free_page = (va: bigint) => {
    const on = host.vmx.map((u, i) => (u.state.inVmxOperation ? i : -1)).filter((i) => i >= 0);
    if (on.length > 0) out.inVmxAtFree.push(`free_page(${va.toString(16)}) while CPU(s) ${on.join(', ')} in VMX operation`);
    freePage(va);
  };
  return out;
}

function expectAllOut(host: Host, freeBefore: number, what: string): void {
  const why = () => `${what}\n${explain(host)}`;
  vmxViews(host).forEach((v, c) => {
    expect(v.inVmx, `CPU ${c} is still in VMX operation: VMXOFF must run on every CPU that got in, from on_each_cpu\n${why()}`).toBe(false);
    expect(v.cr4Vmxe, `CPU ${c} still has CR4.VMXE set: clear it after VMXOFF when vmxOnThisCpu set it (c.setVmxe)\n${why()}`).toBe(false);
  });
  expect(host.kernel.pages.freeCount(), `pages leaked: ${freeBefore - host.kernel.pages.freeCount()} page(s) still allocated; free both regions of every CPU\n${why()}`).toBe(freeBefore);
}

describe('teardown', () => {
  test.each(smpRuns())('$model, $cpus CPU(s), seed $seed: insmod then rmmod leaves every CPU out of VMX operation and nothing allocated', (run) => {
    const host = bootSmp(run);
    const k = host.kernel;
    const free = k.pages.freeCount();
    const s = spy(host);
    const mod = createSmpVmxModule();
    const loaded = k.insmod(mod);
    expect(loaded.ok, `insmod failed: ${loaded.ok ? '' : loaded.message}\n${runName(run)}\n${explain(host)}`).toBe(true);
    expect(vmxViews(host).every((v) => v.inVmx), `after insmod every CPU should be in VMX operation\n${explain(host)}`).toBe(true);
    expect(k.rmmod(mod.name).ok, `rmmod oopsed\n${explain(host)}`).toBe(true);
    expectAllOut(host, free, runName(run));
    expect(s.activeAtVmxoff, 'VMCLEAR each CPU\'s VMCS before its VMXOFF: the processor may keep VMCS data in its own cache, and only VMCLEAR writes it back and makes the VMCS inactive').toEqual([]);
    expect(s.inVmxAtFree, 'free the regions only after every CPU has left VMX operation: a VMXON region or VMCS freed while in use is memory the processor may still write').toEqual([]);
    expect(kernelBugs(host), `the kernel reported bugs\n${explain(host)}`).toEqual([]);
  });

  test.each([2, 4])('%i CPUs, the last one with VMX locked off by the firmware: insmod fails with EIO and leaves nothing behind', (cpus) => {
    const host = bootSmp({ cpus });
    const k = host.kernel;
    host.machine.cpus[cpus - 1]!.featureControl = 0x1;
    const free = k.pages.freeCount();
    const s = spy(host);
    const r = vmxStartAll(k);
    expect(r.ok, `vmxStartAll must fail when CPU ${cpus - 1} cannot enter VMX operation\n${explain(host)}`).toBe(false);
    if (r.ok) return;
    expect(r.errno, 'the error is -EIO (VMX could not be turned on), not -ENOMEM').toBe(-EIO);
    expect(r.error, `the error names the CPU: "cpu ${cpus - 1}: ..."`).toMatch(new RegExp(`cpu ${cpus - 1}: `));
    expectAllOut(host, free, `after a failed start on ${cpus} CPUs`);
    expect(s.activeAtVmxoff, 'the CPUs that did get in must VMCLEAR before VMXOFF').toEqual([]);
    expect(s.inVmxAtFree, 'free the regions only after every CPU has left VMX operation').toEqual([]);
  });

  test('vmxOffThisCpu is safe to call twice (rmmod after a failed start must not fault)', () => {
    const host = bootSmp({ cpus: 2 });
    const k = host.kernel;
    const mod = createSmpVmxModule();
    expect(k.insmod(mod).ok, `insmod failed\n${explain(host)}`).toBe(true);
    const cpus = mod.cpus()!;
    k.on_each_cpu((c) => vmxOffThisCpu(k, cpus.get(c)));
    k.on_each_cpu((c) => vmxOffThisCpu(k, cpus.get(c)));
    expect(kernelBugs(host), `a second vmxOffThisCpu must do nothing: clear c.loaded, c.on and c.setVmxe as you undo each step\n${explain(host)}`).toEqual([]);
    expect(vmxViews(host).some((v) => v.inVmx), 'every CPU left VMX operation').toBe(false);
  });
});
