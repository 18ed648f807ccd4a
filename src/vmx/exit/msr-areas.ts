// The VM-exit MSR-store and MSR-load areas. A bad entry cannot fail a VM exit the way a VM entry fails: it
// causes a VMX abort. See SDM Vol. 3C, "Saving MSRs" and "Loading MSRs" (under "VM Exits").
import type { VmcsAccess, VmTransitionCpu } from '../entry/context.ts';
import { MSR_FS_BASE, MSR_GS_BASE } from '../../x86/msr.ts';
import { MSR_IA32_SMM_MONITOR_CTL } from '../entry/msr-load.ts';

/** IA32_SMBASE cannot be read by the MSR-store area. See SDM Vol. 3C, "Saving MSRs". */
export const MSR_IA32_SMBASE = 0x9e;
const X2APIC_PREFIX = 0x8;
const ENTRY_BYTES = 16;

/**
 * Store the MSRs named by the VM-exit MSR-store area; returns the 1-based position of a bad entry, or 0.
 * A list longer than the recommended maximum (512 × (IA32_VMX_MISC[27:25] + 1)) is undefined behaviour that may
 * cause a machine check; this CPU takes it ('machine-check'), which during a VM exit is a VMX abort.
 */
export function storeExitMsrs(vmcs: VmcsAccess, cpu: VmTransitionCpu, maxEntries: number): number | 'machine-check' {
  const count = Number(vmcs.read('VM_EXIT_MSR_STORE_COUNT') & 0xffffffffn);
  if (count > maxEntries) return 'machine-check';
  const base = vmcs.read('VM_EXIT_MSR_STORE_ADDR');
  for (let i = 0; i < count; i++) {
    const at = base + BigInt(ENTRY_BYTES * i);
    const index = cpu.readPhysical32(at);
    const reserved = cpu.readPhysical32(at + 4n);
    // An entry fails if bits 63:32 are set, it names an x2APIC MSR or IA32_SMBASE, or RDMSR would #GP.
    if (reserved !== 0 || index >>> 8 === X2APIC_PREFIX || index === MSR_IA32_SMBASE) return i + 1;
    const value = cpu.readMsr(index);
    if (value === null) return i + 1;
    cpu.writePhysical64(at + 8n, value);
  }
  return 0;
}

/** Load the MSRs of the VM-exit MSR-load area; returns the 1-based position of a bad entry, or 0. */
export function loadExitMsrs(vmcs: VmcsAccess, cpu: VmTransitionCpu, maxEntries: number): number | 'machine-check' {
  const count = Number(vmcs.read('VM_EXIT_MSR_LOAD_COUNT') & 0xffffffffn);
  if (count > maxEntries) return 'machine-check';
  const base = vmcs.read('VM_EXIT_MSR_LOAD_ADDR');
  for (let i = 0; i < count; i++) {
    const at = base + BigInt(ENTRY_BYTES * i);
    const index = cpu.readPhysical32(at);
    const reserved = cpu.readPhysical32(at + 4n);
    const value = cpu.readPhysical64(at + 8n);
    // The same rules as the VM-entry MSR-load area: reserved bits, FS/GS base, x2APIC MSRs, SMM-only MSRs, and
    // any value WRMSR would refuse with #GP.
    if (reserved !== 0 || index === MSR_FS_BASE || index === MSR_GS_BASE || index >>> 8 === X2APIC_PREFIX ||
      index === MSR_IA32_SMM_MONITOR_CTL) return i + 1;
    if (!cpu.writeMsr(index, value)) return i + 1;
  }
  return 0;
}
