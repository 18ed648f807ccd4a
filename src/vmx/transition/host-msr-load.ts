// Loading MSRs from the VM-exit MSR-load area: the last step of a VM exit, and of a VM-entry failure during or
// after loading guest state. A bad entry cannot fail the transition: it causes a VMX abort.
// See SDM Vol. 3C, "Loading MSRs" (under "VM Exits").
import type { VmTransitionCpu } from './transition-cpu.ts';
import { readField32, type VmcsAccess } from './vmcs-access.ts';
import { isFsGsBaseMsr, isX2apicMsr, readMsrAreaEntry } from './msr-area.ts';
import { MSR_IA32_SMM_MONITOR_CTL } from '../../x86/msr.ts';

/**
 * Load the MSRs of the VM-exit MSR-load area; returns the 1-based position of a bad entry, or 0.
 * A list longer than the recommended maximum (512 × (IA32_VMX_MISC[27:25] + 1)) is undefined behaviour that may
 * cause a machine check; this CPU takes it ('machine-check'), which during a VM exit is a VMX abort.
 */
export function loadExitMsrs(vmcs: VmcsAccess, cpu: VmTransitionCpu, maxEntries: number): number | 'machine-check' {
  const count = readField32(vmcs, 'VM_EXIT_MSR_LOAD_COUNT');
  if (count > maxEntries) return 'machine-check';
  // An empty list (the usual case) needs no address: every VM exit gets here.
  if (count === 0) return 0;
  const base = vmcs.read('VM_EXIT_MSR_LOAD_ADDR');
  for (let i = 0; i < count; i++) {
    const e = readMsrAreaEntry(cpu, base, i);
    // The same rules as the VM-entry MSR-load area: reserved bits, FS/GS base, x2APIC MSRs, SMM-only MSRs, and
    // any value WRMSR would refuse with #GP.
    if (e.reserved !== 0 || isFsGsBaseMsr(e.index) || isX2apicMsr(e.index) || e.index === MSR_IA32_SMM_MONITOR_CTL) return e.position;
    if (!cpu.writeMsr(e.index, e.value)) return e.position;
  }
  return 0;
}
