// The end shared by every VM exit and by a VM-entry failure during or after loading guest state: load host state,
// the host PDPTEs (PAE host only) and the VM-exit MSR-load area, then continue at HOST_RIP — or a VMX abort.
// See SDM Vol. 3C, "Loading Host State", "VM-Entry Failures During or After Loading Guest State" and "VMX Aborts".
import type { TransitionContext } from './transition-cpu.ts';
import { loadHostState } from './load-host.ts';
import { loadExitMsrs } from './host-msr-load.ts';
import { vmxAbort, type VmxAbort } from './vmx-abort.ts';
import { pdptesAt } from './pdptes.ts';
import { VMX_ABORT_LOAD_HOST_MSR_FAIL, VMX_ABORT_LOAD_HOST_PDPTE_FAIL, VMX_ABORT_MACHINE_CHECK } from '../errors.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { PDPTE } from '../../x86/paging.ts';

const CR0_PG = BigInt(CR0.PG), CR4_PAE = BigInt(CR4.PAE), EFER_LMA = BigInt(EFER.LMA);

/**
 * Where the LP goes at the end of a VM exit or a VM-entry failure exit: VMX root operation with host state loaded,
 * where the caller transfers control to `rip` (= HOST_RIP); or a VMX abort.
 */
export type ExitOutcome = { readonly kind: 'host'; readonly rip: bigint } | VmxAbort;

export function finishWithHostState(ctx: TransitionContext): ExitOutcome {
  const { cpu, vmcs } = ctx;
  loadHostState(vmcs, cpu);
  // A 32-bit host with PAE paging needs its PDPTEs; a bad one is a VMX abort. See SDM Vol. 3C, "Loading Host
  // State" ("Loading Page-Directory-Pointer-Table Entries").
  // (IA32_EFER.LMA first: a 64-bit host, the usual one, answers it alone.)
  const paeHost = (cpu.readEfer() & EFER_LMA) === 0n && (cpu.readCr0() & CR0_PG) !== 0n && (cpu.readCr4() & CR4_PAE) !== 0n;
  if (paeHost) {
    const pdptes = pdptesAt(cpu, cpu.readCr3());
    const bad = pdptes.some((e) => (e & PDPTE.P) !== 0n && ((e & PDPTE.RESERVED_LOW) !== 0n || e >> BigInt(cpu.maxPhysAddr()) !== 0n));
    if (bad) return vmxAbort(ctx, VMX_ABORT_LOAD_HOST_PDPTE_FAIL, 'a host PDPTE sets reserved bits');
    cpu.loadPdptes(pdptes);
  }
  const badLoad = loadExitMsrs(vmcs, cpu, cpu.caps.misc.maxMsrListEntries);
  if (badLoad === 'machine-check') return vmxAbort(ctx, VMX_ABORT_MACHINE_CHECK, 'the VM-exit MSR-load count exceeds the recommended maximum: machine check during VM exit');
  if (badLoad !== 0) return vmxAbort(ctx, VMX_ABORT_LOAD_HOST_MSR_FAIL, `VM-exit MSR-load entry ${badLoad} could not be loaded`);
  return { kind: 'host', rip: cpu.readRip() };
}
