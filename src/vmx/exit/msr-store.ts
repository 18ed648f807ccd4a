// The VM-exit MSR-store area: the guest's MSRs saved on a VM exit. A bad entry cannot fail a VM exit the way a VM
// entry fails: it causes a VMX abort. See SDM Vol. 3C, "Saving MSRs".
import type { VmTransitionCpu } from '../transition/transition-cpu.ts';
import { readField32, type VmcsAccess } from '../transition/vmcs-access.ts';
import { isX2apicMsr, msrAreaEntryAddress } from '../transition/msr-area.ts';
import { MSR_IA32_SMBASE } from '../../x86/msr.ts';

/**
 * Store the MSRs named by the VM-exit MSR-store area; returns the 1-based position of a bad entry, or 0.
 * A list longer than the recommended maximum (512 × (IA32_VMX_MISC[27:25] + 1)) is undefined behaviour that may
 * cause a machine check; this CPU takes it ('machine-check'), which during a VM exit is a VMX abort.
 */
export function storeExitMsrs(vmcs: VmcsAccess, cpu: VmTransitionCpu, maxEntries: number): number | 'machine-check' {
  const count = readField32(vmcs, 'VM_EXIT_MSR_STORE_COUNT');
  if (count > maxEntries) return 'machine-check';
  // An empty list (the usual case) needs no address: every VM exit gets here.
  if (count === 0) return 0;
  const base = vmcs.read('VM_EXIT_MSR_STORE_ADDR');
  for (let i = 0; i < count; i++) {
    const at = msrAreaEntryAddress(base, i);
    const index = cpu.readPhysical32(at);
    const reserved = cpu.readPhysical32(at + 4n);
    // An entry fails if bits 63:32 are set, it names an x2APIC MSR or IA32_SMBASE, or RDMSR would #GP.
    if (reserved !== 0 || isX2apicMsr(index) || index === MSR_IA32_SMBASE) return i + 1;
    const value = cpu.readMsr(index);
    if (value === null) return i + 1;
    // The value goes into bits 127:64 of the entry.
    cpu.writePhysical64(at + 8n, value);
  }
  return 0;
}
