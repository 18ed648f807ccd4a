// VM exits, first cut: record the exit information, save guest state, store MSRs, load host state, load MSRs,
// and hand control to the host at HOST_RIP — or, if a step that cannot fail architecturally does fail, a VMX
// abort. See SDM Vol. 3C, "VM Exits" and "VMX Aborts".
import type { VmcsAccess, VmTransitionCpu } from '../entry/context.ts';
import type { VmExitCause } from './info.ts';
import { recordExitInformation } from './info.ts';
import { saveGuestState } from './save-guest.ts';
import { loadHostState } from './load-host.ts';
import { loadExitMsrs, storeExitMsrs } from './msr-areas.ts';
import { ACTIVITY_STATE, PDPTE } from '../entry/bits.ts';
import { VMX_ABORT_LOAD_HOST_MSR_FAIL, VMX_ABORT_LOAD_HOST_PDPTE_FAIL, VMX_ABORT_MACHINE_CHECK, VMX_ABORT_SAVE_GUEST_MSR_FAIL } from '../errors.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';

export type { VmExitCause } from './info.ts';
export { UNDEFINED_32, UNDEFINED_64, UNDEFINED_INVALID_INFO } from './info.ts';

/** What a VM exit needs: the LP, the current VMCS and the current-VMCS pointer (for the VMX-abort indicator). */
export interface ExitContext {
  readonly cpu: VmTransitionCpu;
  readonly vmcs: VmcsAccess;
  /** Physical address of the current VMCS region. */
  readonly vmcsPointer: bigint;
}

/**
 * The end of a VM exit: the LP is in VMX root operation with host state loaded, and the caller transfers control
 * to `rip` (= HOST_RIP); or a VMX abort put the LP into the VMX-abort shutdown state.
 */
export type ExitOutcome =
  | { readonly kind: 'host'; readonly rip: bigint }
  | { readonly kind: 'vmx-abort'; readonly indicator: number; readonly message: string };

export function vmExit(ctx: ExitContext, cause: VmExitCause): ExitOutcome {
  const { cpu, vmcs } = ctx;
  recordExitInformation(vmcs, cause);
  saveGuestState(vmcs, cpu, cause.guestRip);
  const badStore = storeExitMsrs(vmcs, cpu, cpu.caps.misc.maxMsrListEntries);
  if (badStore === 'machine-check') return vmxAbort(ctx, VMX_ABORT_MACHINE_CHECK, 'the VM-exit MSR-store count exceeds the recommended maximum: machine check during VM exit');
  if (badStore !== 0) return vmxAbort(ctx, VMX_ABORT_SAVE_GUEST_MSR_FAIL, `VM-exit MSR-store entry ${badStore} could not be stored`);
  return finishWithHostState(ctx);
}

/**
 * Load host state, the host PDPTEs (PAE host only) and the VM-exit MSR-load area. Shared by VM exits and by
 * VM-entry failures during or after loading guest state.
 */
export function finishWithHostState(ctx: ExitContext): ExitOutcome {
  const { cpu, vmcs } = ctx;
  loadHostState(vmcs, cpu);
  // A 32-bit host with PAE paging needs its PDPTEs; a bad one is a VMX abort. See SDM Vol. 3C, "Loading Host
  // State" ("Loading Page-Directory-Pointer-Table Entries").
  const paeHost = (cpu.readCr0() & BigInt(CR0.PG)) !== 0n && (cpu.readCr4() & BigInt(CR4.PAE)) !== 0n &&
    (cpu.readEfer() & BigInt(EFER.LMA)) === 0n;
  if (paeHost) {
    const base = cpu.readCr3() & 0xffffffe0n;
    const pdptes = [0, 1, 2, 3].map((i) => cpu.readPhysical64(base + BigInt(8 * i)));
    const bad = pdptes.some((e) => (e & PDPTE.P) !== 0n && ((e & PDPTE.RESERVED_LOW) !== 0n || e >> BigInt(cpu.maxPhysAddr()) !== 0n));
    if (bad) return vmxAbort(ctx, VMX_ABORT_LOAD_HOST_PDPTE_FAIL, 'a host PDPTE sets reserved bits');
    cpu.loadPdptes(pdptes);
  }
  const badLoad = loadExitMsrs(vmcs, cpu, cpu.caps.misc.maxMsrListEntries);
  if (badLoad === 'machine-check') return vmxAbort(ctx, VMX_ABORT_MACHINE_CHECK, 'the VM-exit MSR-load count exceeds the recommended maximum: machine check during VM exit');
  if (badLoad !== 0) return vmxAbort(ctx, VMX_ABORT_LOAD_HOST_MSR_FAIL, `VM-exit MSR-load entry ${badLoad} could not be loaded`);
  return { kind: 'host', rip: cpu.readRip() };
}

/**
 * A VMX abort: the indicator is written at offset 4 of the current VMCS region and the LP enters the VMX-abort
 * shutdown state (only RESET leaves it). See SDM Vol. 3C, "VMX Aborts".
 */
function vmxAbort(ctx: ExitContext, indicator: number, message: string): ExitOutcome {
  ctx.cpu.writePhysical32(ctx.vmcsPointer + 4n, indicator);
  ctx.cpu.setActivityState(ACTIVITY_STATE.SHUTDOWN);
  return { kind: 'vmx-abort', indicator, message };
}

// The causes (which exit-information fields each kind of exit defines) live with the exit causes, ../nonroot/.
