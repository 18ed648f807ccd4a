// Loading guest state on a successful VM entry, after every check passed. Runs before the VM-entry MSR-load area
// is processed. See SDM Vol. 3C, "Loading Guest State" and its subsections.
import type { VmTransitionCpu } from '../transition/transition-cpu.ts';
import { SEGMENT_NAMES } from '../transition/transition-cpu.ts';
import { mergeCr0 } from '../transition/cr0.ts';
import { GUEST_SEGMENT_SLOTS } from '../transition/segment-fields.ts';
import { slotsOf, type VmcsSlots } from '../transition/vmcs-access.ts';
import { ActiveVmcs, SLOT } from '../vmcs.ts';
import type { EntryView } from './view.ts';
import { VMX_CONTROL } from '../controls.ts';
import { guestPdptes, guestUsesPaePaging } from './guest-non-register.ts';
import { CR0, EFER } from '../../x86/control-registers.ts';
import {
  MSR_EFER, MSR_IA32_BNDCFGS, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP,
  MSR_IA32_SYSENTER_ESP,
} from '../../x86/msr.ts';
import { RSP } from '../../x86/registers.ts';

const has = (value: number, bit: number): boolean => (value & bit) !== 0;

// The slots of the fields this file loads (looked up once: every VM entry loads them).
const {
  GUEST_CR0, GUEST_CR3, GUEST_CR4, GUEST_DR7, GUEST_IA32_DEBUGCTL, GUEST_SYSENTER_CS, GUEST_SYSENTER_ESP,
  GUEST_SYSENTER_EIP, GUEST_IA32_PAT, GUEST_BNDCFGS, GUEST_IA32_EFER, GUEST_GDTR_BASE, GUEST_GDTR_LIMIT,
  GUEST_IDTR_BASE, GUEST_IDTR_LIMIT, GUEST_RIP, GUEST_RSP, GUEST_RFLAGS, GUEST_ACTIVITY_STATE,
  GUEST_INTERRUPTIBILITY_INFO, GUEST_PENDING_DBG_EXCEPTIONS,
} = SLOT;

export function loadGuestState(v: EntryView, cpu: VmTransitionCpu): void {
  const vmcs = slotsOf(v.vmcs);
  // The real LP loads its registers itself (../lp-transfer.ts: the same result as loadGuestRegisters below).
  if (!(vmcs instanceof ActiveVmcs && cpu.loadGuestRegistersDirect?.(vmcs, v.entryCtls) === true)) loadGuestRegisters(v, vmcs, cpu);

  // --- PDPTEs: with EPT and PAE paging they come from the VMCS. See SDM Vol. 3C, "Loading Page-Directory-
  // Pointer-Table Entries".
  // (An IA-32e mode guest, the usual one, answers the PAE-paging question without reading CR0 and CR4.)
  if (!v.ia32eModeGuest && guestUsesPaePaging(v)) cpu.loadPdptes(guestPdptes(v).values);

  // --- Non-register state. See SDM Vol. 3C, "Updating Non-Register State".
  cpu.setActivityState(vmcs.readLow(GUEST_ACTIVITY_STATE));
  cpu.setVirtualNmis?.((v.pin & VMX_CONTROL.PIN_BASED_VIRTUAL_NMIS) !== 0);
  cpu.setInterruptibility(vmcs.readLow(GUEST_INTERRUPTIBILITY_INFO));
  cpu.setPendingDebugExceptions(vmcs.read(GUEST_PENDING_DBG_EXCEPTIONS));
}

/** Control registers, MSRs, segment and descriptor-table registers, RIP, RSP, RFLAGS. */
function loadGuestRegisters(v: EntryView, vmcs: VmcsSlots, cpu: VmTransitionCpu): void {
  // --- Control registers, debug registers, MSRs. See SDM Vol. 3C, "Loading Guest Control Registers, Debug
  // Registers, and MSRs".
  const cr0 = mergeCr0(cpu.readCr0(), vmcs.read(GUEST_CR0));
  cpu.loadCr0(cr0);
  cpu.loadCr3(vmcs.read(GUEST_CR3));
  cpu.loadCr4(vmcs.read(GUEST_CR4));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS)) {
    cpu.loadDr7(vmcs.read(GUEST_DR7));
    cpu.writeMsr(MSR_IA32_DEBUGCTLMSR, vmcs.read(GUEST_IA32_DEBUGCTL));
  }
  cpu.writeMsr(MSR_IA32_SYSENTER_CS, BigInt(vmcs.readLow(GUEST_SYSENTER_CS)));
  cpu.writeMsr(MSR_IA32_SYSENTER_ESP, vmcs.read(GUEST_SYSENTER_ESP));
  cpu.writeMsr(MSR_IA32_SYSENTER_EIP, vmcs.read(GUEST_SYSENTER_EIP));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT)) cpu.writeMsr(MSR_IA32_CR_PAT, vmcs.read(GUEST_IA32_PAT));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_BNDCFGS)) cpu.writeMsr(MSR_IA32_BNDCFGS, vmcs.read(GUEST_BNDCFGS));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER)) {
    cpu.writeMsr(MSR_EFER, vmcs.read(GUEST_IA32_EFER));
  } else {
    // Without "load IA32_EFER", LMA follows "IA-32e mode guest"; so does LME when the guest has paging on.
    let efer = cpu.readEfer();
    const ia32e = v.ia32eModeGuest;
    efer = ia32e ? efer | BigInt(EFER.LMA) : efer & ~BigInt(EFER.LMA);
    if ((cr0 & BigInt(CR0.PG)) !== 0n) efer = ia32e ? efer | BigInt(EFER.LME) : efer & ~BigInt(EFER.LME);
    cpu.writeMsr(MSR_EFER, efer);
  }

  // --- Segment and descriptor-table registers. Selector, base, limit and access rights come from the VMCS; for
  // an unusable register the SDM leaves base/limit/other attributes undefined, and this CPU loads the fields as
  // they are. See SDM Vol. 3C, "Loading Guest Segment Registers and Descriptor-Table Registers".
  for (let i = 0; i < SEGMENT_NAMES.length; i++) loadGuestSegment(vmcs, cpu, i);
  cpu.loadDescriptorTable('GDTR', vmcs.read(GUEST_GDTR_BASE), vmcs.readLow(GUEST_GDTR_LIMIT) & 0xffff);
  cpu.loadDescriptorTable('IDTR', vmcs.read(GUEST_IDTR_BASE), vmcs.readLow(GUEST_IDTR_LIMIT) & 0xffff);

  // --- RIP, RSP, RFLAGS. See SDM Vol. 3C, "Loading Guest RIP, RSP, RFLAGS, and SSP".
  cpu.loadRip(vmcs.read(GUEST_RIP));
  cpu.writeGpr(RSP, vmcs.read(GUEST_RSP), 8);
  cpu.writeRflags(vmcs.readLow(GUEST_RFLAGS));
}

/** Segment register `i` of SEGMENT_NAMES from its guest-state fields. */
function loadGuestSegment(vmcs: VmcsSlots, cpu: VmTransitionCpu, i: number): void {
  const f = GUEST_SEGMENT_SLOTS[i]!;
  cpu.loadSegment(SEGMENT_NAMES[i]!, { selector: vmcs.readLow(f.selector) & 0xffff, base: vmcs.read(f.base), limit: vmcs.readLow(f.limit), ar: vmcs.readLow(f.ar) });
}
