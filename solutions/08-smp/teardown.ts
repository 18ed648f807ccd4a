// Leaving VMX operation on every CPU — also when only some of them got in. Each CPU undoes what it did, on itself
// (from on_each_cpu): VMCLEAR its VMCS (the processor may hold VMCS data in its own cache until then), VMXOFF,
// CR4.VMXE clear again if it was ours. Only when every CPU is out are the regions freed, in process context: a
// region freed while some CPU still uses it is memory the processor may still write.
// See SDM Vol. 3C, "VMCS Life Cycle", "VMXOFF—Leave VMX Operation" and "Restrictions on VMX Operation".
import { EIO, ENOMEM } from '../../src/kernel/errno.ts';
import type { Kernel, KernelModule, PerCpu } from '../../src/kernel/kernel.ts';
import { X86_CR4_VMXE } from '../01-vmxon/fixed-bits.ts';
import { freeVmxRegion } from '../01-vmxon/vmxon-region.ts';
import { vmxOnEachCpu, type CpuVmx } from './per-cpu.ts';

/** On c's CPU, preemption off: undo vmxOnThisCpu, as far as it got. Safe to call twice. */
export function vmxOffThisCpu(k: Kernel, c: CpuVmx): void {
  const cpu = k.cpu();
  if (cpu.id !== c.cpu) return;
  if (c.loaded) {
    cpu.vmclear(c.vmcs.pa);
    c.loaded = false;
  }
  if (c.on) {
    cpu.vmxoff();
    c.on = false;
  }
  if (c.setVmxe) {
    cpu.writeCr4(cpu.readCr4() & ~X86_CR4_VMXE);
    c.setVmxe = false;
  }
}

/** Every CPU leaves VMX operation (on_each_cpu); then, in process context, every region is freed. */
export function vmxOffEachCpu(k: Kernel, cpus: PerCpu<CpuVmx>): void {
  k.on_each_cpu((cpu) => vmxOffThisCpu(k, cpus.get(cpu)));
  for (let c = 0; c < k.num_online_cpus(); c++) {
    const s = cpus.get(c);
    freeVmxRegion(k, s.vmxon);
    freeVmxRegion(k, s.vmcs);
  }
}

export type StartResult = { readonly ok: true; readonly cpus: PerCpu<CpuVmx> } | { readonly ok: false; readonly errno: number; readonly error: string };

/** VMX on every CPU, or on none: a CPU that fails makes every other CPU leave again, and nothing stays allocated. */
export function vmxStartAll(k: Kernel): StartResult {
  const r = vmxOnEachCpu(k);
  if (r.ok) return r;
  if (r.cpus === null) return { ok: false, errno: -ENOMEM, error: r.error };
  vmxOffEachCpu(k, r.cpus);
  return { ok: false, errno: -EIO, error: r.error };
}

/** The module: VMX on every CPU at insmod, off on every CPU at rmmod. */
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
