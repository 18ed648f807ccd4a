// Exercise 8.1 — VMX on every CPU. VMX operation, the VMXON region, the current VMCS and IA32_FEATURE_CONTROL all
// belong to one logical processor, so a hypervisor for an SMP host does chapters 1 and 2 once per CPU, each CPU
// with its own regions — in two contexts, as KVM does:
//  - process context (module init): allocate every CPU's regions with GFP_KERNEL (may sleep, may migrate the
//    task: harmless, allocating touches no CPU's VMX state) — allocPerCpuRegions, given;
//  - each CPU, from on_each_cpu (an IPI handler: preemption off, must not sleep): VMXON with that CPU's region,
//    then VMCLEAR + VMPTRLD of its own VMCS. Nothing is allocated there.
// Read chapters/08-smp/README.md, sections "Per-CPU VMX state" and "Two contexts".
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
 * allocated is freed again. (given)
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
  // TODO: on k.cpu() (check it is c.cpu: else c.error says so): cpuHasVmx and enableFeatureControl (chapter 1;
  // their failure text goes to c.error), remember in c.setVmxe whether CR4.VMXE was clear, enterVmxCrState, VMXON
  // with c.vmxon.pa and vmxStatusOf (on failure: clear VMXE again if you set it, c.error = `VMXON: ...`), c.on = true,
  // then loadVmcs(cpu, c.vmcs) (failure: c.error = `VMCLEAR/VMPTRLD: ...`), c.loaded = true. Allocate nothing.
  throw new Error('TODO: vmxOnThisCpu');
}

/** Allocate in process context, then VMXON and VMPTRLD on every CPU from on_each_cpu. */
export function vmxOnEachCpu(k: Kernel): VmxOnEachCpuResult {
  // TODO: allocPerCpuRegions in process context (null → { ok: false, error, cpus: null }), then
  // k.on_each_cpu((cpu) => vmxOnThisCpu(k, cpus.get(cpu))). ok only if no CPU has an error; otherwise
  // error lists them as "cpu N: reason", joined with "; ".
  throw new Error('TODO: vmxOnEachCpu');
}
