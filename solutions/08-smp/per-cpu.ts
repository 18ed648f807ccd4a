// VMX on every CPU. VMX operation, the VMXON region, the current VMCS and IA32_FEATURE_CONTROL all belong to one
// logical processor, so a hypervisor for an SMP host does chapter 1 and chapter 2 once per CPU, each CPU with its
// own regions. Two contexts, as in KVM:
//  - process context (module init): allocate every CPU's regions with GFP_KERNEL, which may sleep and migrate
//    the task — harmless here, because allocating touches no CPU's VMX state;
//  - each CPU, from on_each_cpu (an IPI handler: preemption off, must not sleep): VMXON with that CPU's
//    preallocated region, then VMCLEAR and VMPTRLD of its own VMCS. Nothing is allocated there.
// See SDM Vol. 3C, "VMX Operation", "Enabling and Entering VMX Operation" and "VMCS Life Cycle".
import type { Kernel, PerCpu } from '../../src/kernel/kernel.ts';
import { cpuHasVmx, enableFeatureControl } from '../01-vmxon/detect.ts';
import { X86_CR4_VMXE, enterVmxCrState } from '../01-vmxon/fixed-bits.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from '../01-vmxon/vmxon-region.ts';
import { allocVmcs, loadVmcs } from '../02-vmcs/vmcs-region.ts';
import { describeVmxError, vmxStatusOf } from '../02-vmcs/vmx-access.ts';

/** One CPU's VMX state, as the hypervisor keeps it (per-CPU data: one of these for each CPU). */
export interface CpuVmx {
  readonly cpu: number;
  readonly vmxon: VmxRegion;
  readonly vmcs: VmxRegion;
  /** VMXON succeeded on this CPU. */
  on: boolean;
  /** CR4.VMXE was clear before: it is ours to clear again after VMXOFF. */
  setVmxe: boolean;
  /** VMCLEAR + VMPTRLD of `vmcs` succeeded: it is this CPU's current VMCS. */
  loaded: boolean;
  /** Why this CPU is not in VMX operation with its VMCS loaded, or null. */
  error: string | null;
}

export type VmxOnEachCpuResult =
  | { readonly ok: true; readonly cpus: PerCpu<CpuVmx> }
  /** cpus: what was set up (some CPUs may be on: undo with chapter 8's teardown); null if allocation failed. */
  | { readonly ok: false; readonly error: string; readonly cpus: PerCpu<CpuVmx> | null };

/**
 * Process context: a VMXON region and a VMCS for every CPU (alloc_percpu). Null if memory runs out; then what was
 * allocated is freed again.
 */
export function allocPerCpuRegions(k: Kernel): PerCpu<CpuVmx> | null {
  const regions: { vmxon: VmxRegion; vmcs: VmxRegion }[] = [];
  let failed = false;
  for (let c = 0; c < k.num_online_cpus() && !failed; c++) {
    const vmxon = allocVmxonRegion(k);
    const vmcs = allocVmcs(k);
    if (vmxon !== null && vmcs !== null) regions.push({ vmxon, vmcs });
    else {
      if (vmxon !== null) freeVmxRegion(k, vmxon);
      if (vmcs !== null) freeVmxRegion(k, vmcs);
      failed = true;
    }
  }
  if (failed) {
    for (const r of regions) {
      freeVmxRegion(k, r.vmxon);
      freeVmxRegion(k, r.vmcs);
    }
    return null;
  }
  return k.alloc_percpu((cpu) => ({ cpu, ...regions[cpu]!, on: false, setVmxe: false, loaded: false, error: null }));
}

/**
 * On the CPU `c` belongs to, with preemption off (from on_each_cpu): VMXON with c.vmxon, then make c.vmcs current.
 * Records the outcome in `c`; allocates nothing.
 */
export function vmxOnThisCpu(k: Kernel, c: CpuVmx): void {
  const cpu = k.cpu();
  if (cpu.id !== c.cpu) {
    c.error = `called on CPU ${cpu.id} with CPU ${c.cpu}'s regions`;
    return;
  }
  if (!cpuHasVmx(cpu)) {
    c.error = 'this CPU does not support VMX (CPUID.1:ECX.VMX = 0)';
    return;
  }
  const fc = enableFeatureControl(cpu);
  if (!fc.ok) {
    c.error = fc.reason;
    return;
  }
  c.setVmxe = (cpu.readCr4() & X86_CR4_VMXE) === 0n;
  enterVmxCrState(cpu);
  cpu.vmxon(c.vmxon.pa);
  const on = vmxStatusOf(cpu);
  if (!on.ok) {
    if (c.setVmxe) cpu.writeCr4(cpu.readCr4() & ~X86_CR4_VMXE);
    c.setVmxe = false;
    c.error = `VMXON: ${describeVmxError(on.error)}`;
    return;
  }
  c.on = true;
  const loaded = loadVmcs(cpu, c.vmcs);
  if (!loaded.ok) {
    c.error = `VMCLEAR/VMPTRLD: ${describeVmxError(loaded.error)}`;
    return;
  }
  c.loaded = true;
  k.printk(`vmxlab: cpu ${cpu.id}: VMX on, VMCS ${c.vmcs.pa.toString(16)} current`);
}

/** Allocate in process context, then VMXON and VMPTRLD on every CPU from on_each_cpu. */
export function vmxOnEachCpu(k: Kernel): VmxOnEachCpuResult {
  const cpus = allocPerCpuRegions(k);
  if (cpus === null) return { ok: false, error: 'out of memory for the VMXON regions and VMCSs', cpus: null };
  k.on_each_cpu((cpu) => vmxOnThisCpu(k, cpus.get(cpu)));
  const errors: string[] = [];
  for (let c = 0; c < k.num_online_cpus(); c++) {
    const e = cpus.get(c).error;
    if (e !== null) errors.push(`cpu ${c}: ${e}`);
  }
  return errors.length === 0 ? { ok: true, cpus } : { ok: false, error: errors.join('; '), cpus };
}
