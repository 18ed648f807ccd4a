// Exercise 8.1 — VMX on every CPU: each CPU in VMX operation with its own VMXON region and its own current VMCS,
// set up from on_each_cpu with nothing allocated there. Every check reads the CPUs' own VMX state (what VMXON and
// VMPTRLD did), not the learner's records. Runs on 1, 2 and 4 CPUs and several scheduler seeds, and on every model.
import { describe, expect, test } from 'vitest';
import { allocPerCpuRegions, vmxOnEachCpu, vmxOnThisCpu } from '#impl/08-smp/per-cpu';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';
import { bootSmp, explain, kernelBugs, runName, smpRuns, vmxViews } from './support.ts';

describe('vmxOnEachCpu', () => {
  test.each(smpRuns())('$model, $cpus CPU(s), seed $seed: every CPU in VMX operation with its own regions', (run) => {
    const host = bootSmp(run);
    const k = host.kernel;
    const r = vmxOnEachCpu(k);
    const why = () => `${runName(run)}\n${explain(host)}`;
    expect(r.ok, `vmxOnEachCpu failed: ${r.ok ? '' : r.error}\n${why()}`).toBe(true);
    if (!r.ok) return;
    expect(kernelBugs(host), `the kernel reported bugs: a GFP_KERNEL allocation inside on_each_cpu sleeps with preemption disabled, and a VMX instruction in process context may run on a CPU the task migrated to. Allocate every region first (allocPerCpuRegions), then only VMX instructions in on_each_cpu.\n${why()}`).toEqual([]);
    const views = vmxViews(host);
    const revision = Number(k.cpu().rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn);
    views.forEach((v, c) => {
      const mine = r.cpus.get(c);
      expect(v.inVmx, `CPU ${c} is not in VMX operation: VMXON must run on every CPU, each from on_each_cpu\n${why()}`).toBe(true);
      expect(v.vmxonPointer, `CPU ${c}'s VMXON pointer is not the VMXON region recorded for CPU ${c} (cpus.get(${c}).vmxon): each CPU VMXONs with its own region\n${why()}`).toBe(mine.vmxon.pa);
      expect(v.current, `CPU ${c}'s current VMCS is not cpus.get(${c}).vmcs: VMCLEAR then VMPTRLD it on CPU ${c}\n${why()}`).toBe(mine.vmcs.pa);
      expect(mine.on && mine.loaded && mine.error === null, `cpus.get(${c}) should say on, loaded, no error: ${JSON.stringify({ on: mine.on, loaded: mine.loaded, error: mine.error })}`).toBe(true);
      expect(k.read32(mine.vmxon.va), `CPU ${c}'s VMXON region does not start with the VMCS revision identifier (IA32_VMX_BASIC[30:0])`).toBe(revision);
    });
    const regions = views.flatMap((v) => [v.vmxonPointer, v.current]);
    expect(new Set(regions).size, `two CPUs share a region: ${regions.map((p) => p?.toString(16)).join(', ')}. A VMXON region or VMCS belongs to one CPU.`).toBe(regions.length);
  });

  test('a CPU whose firmware locked VMX off fails alone: its error names it, the others are in VMX operation', () => {
    const host = bootSmp({ cpus: 3 });
    host.machine.cpus[1]!.featureControl = 0x1; // locked, VMX disabled: what some BIOSes leave on one socket
    const r = vmxOnEachCpu(host.kernel);
    const why = () => explain(host);
    expect(r.ok, `vmxOnEachCpu must fail when CPU 1 cannot enter VMX operation\n${why()}`).toBe(false);
    if (r.ok || r.cpus === null) return;
    expect(r.error, 'the error must name the CPU that failed as "cpu 1: ..."').toMatch(/cpu 1: /);
    expect(r.error, 'only CPU 1 failed').not.toMatch(/cpu [02]: /);
    const views = vmxViews(host);
    expect([views[0]!.inVmx, views[1]!.inVmx, views[2]!.inVmx], 'CPUs 0 and 2 in VMX operation, CPU 1 not').toEqual([true, false, true]);
    const c1 = r.cpus.get(1);
    expect({ on: c1.on, loaded: c1.loaded, setVmxe: c1.setVmxe }, 'CPU 1 records that it is not on, has no VMCS loaded, and owns no CR4.VMXE').toEqual({ on: false, loaded: false, setVmxe: false });
    expect(views[1]!.cr4Vmxe, 'CPU 1 must not keep CR4.VMXE set: it never entered VMX operation').toBe(false);
  });

  test('vmxOnThisCpu with another CPU\'s regions refuses and records why, without VMXON', () => {
    const host = bootSmp({ cpus: 2 });
    const k = host.kernel;
    const cpus = allocPerCpuRegions(k);
    expect(cpus, 'allocPerCpuRegions (given) returned null').not.toBeNull();
    if (cpus === null) return;
    k.smp_call_function_single(1, () => vmxOnThisCpu(k, cpus.get(0)));
    expect(cpus.get(0).error, 'called on CPU 1 with CPU 0\'s state: c.error must say which CPU it ran on').toMatch(/1/);
    expect(vmxViews(host)[1]!.inVmx, 'CPU 1 must not VMXON with CPU 0\'s region').toBe(false);
  });
});
