// Exercise 8.2 — leaving VMX operation on every CPU, also when only some of them got in. Each CPU undoes what it
// did, on itself (from on_each_cpu): VMCLEAR its VMCS, VMXOFF, CR4.VMXE clear again if it was ours. Only when
// every CPU is out are the regions freed, in process context.
// Read chapters/08-smp/README.md, section "Teardown, and partial failure".
import { EIO, ENOMEM } from '../../src/kernel/errno.ts';
import type { Kernel, KernelModule, PerCpu } from '../../src/kernel/kernel.ts';
import { X86_CR4_VMXE } from '../01-vmxon/fixed-bits.ts';
import { freeVmxRegion } from '../01-vmxon/vmxon-region.ts';
import { vmxOnEachCpu, type CpuVmx } from './per-cpu.ts';

/** On c's CPU, preemption off: undo vmxOnThisCpu, as far as it got. Safe to call twice. */
export function vmxOffThisCpu(k: Kernel, c: CpuVmx): void {
  // TODO: only on c's own CPU (else return). If c.loaded: VMCLEAR c.vmcs.pa. If c.on: VMXOFF. If c.setVmxe: clear
  // CR4.VMXE. Clear each flag as you undo it, so a second call does nothing.
  throw new Error('TODO: vmxOffThisCpu');
}

/** Every CPU leaves VMX operation (on_each_cpu); then, in process context, every region is freed. */
export function vmxOffEachCpu(k: Kernel, cpus: PerCpu<CpuVmx>): void {
  // TODO: on_each_cpu → vmxOffThisCpu with that CPU's state; afterwards (every CPU is out) free both regions of
  // every CPU with freeVmxRegion.
  throw new Error('TODO: vmxOffEachCpu');
}

export type StartResult = { readonly ok: true; readonly cpus: PerCpu<CpuVmx> } | { readonly ok: false; readonly errno: number; readonly error: string };

/** VMX on every CPU, or on none: a CPU that fails makes every other CPU leave again, and nothing stays allocated. */
export function vmxStartAll(k: Kernel): StartResult {
  // TODO: vmxOnEachCpu. On failure: no regions (cpus null) → { ok: false, errno: -ENOMEM, error }; otherwise
  // vmxOffEachCpu to undo the CPUs that did get in, then { ok: false, errno: -EIO, error }.
  throw new Error('TODO: vmxStartAll');
}

/** The module: VMX on every CPU at insmod, off on every CPU at rmmod. (given) */
export function createSmpVmxModule(): KernelModule & { cpus(): PerCpu<CpuVmx> | null } {
  let cpus: PerCpu<CpuVmx> | null = null;
  return {
    name: 'vmx_lab_smp',
    init(k) {
      const r = vmxStartAll(k);
      if (!r.ok) {
        k.printk(`vmx_lab_smp: ${r.error}`);
        return r.errno;
      }
      cpus = r.cpus;
      k.printk(`vmx_lab_smp: VMX on ${k.num_online_cpus()} CPU(s)`);
      return 0;
    },
    exit(k) {
      if (cpus !== null) vmxOffEachCpu(k, cpus);
      cpus = null;
    },
    cpus: () => cpus,
  };
}
