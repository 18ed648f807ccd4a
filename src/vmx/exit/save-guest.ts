// Saving guest state into the guest-state area on a VM exit. See SDM Vol. 3C, "Saving Guest State".
// Every VM exit runs this: fields are written by slot (looked up once, below), 32-bit values as numbers.
import type { VmTransitionCpu } from '../transition/transition-cpu.ts';
import { SEGMENT_NAMES } from '../transition/transition-cpu.ts';
import type { VmcsAccess } from '../transition/vmcs-access.ts';
import { slotsOf, type VmcsSlots } from '../transition/vmcs-access.ts';
import { GUEST_SEGMENT_SLOTS } from '../transition/segment-fields.ts';
import { GUEST_PDPTR_FIELDS, pdptesAt } from '../transition/pdptes.ts';
import { VMX_CONTROL } from '../controls.ts';
import { ActiveVmcs, SLOT, SLOT_BY_NAME } from '../vmcs.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../x86/msr.ts';
import { RSP } from '../../x86/registers.ts';

// The slots of the fields this file writes.
const {
  VM_EXIT_CONTROLS, CPU_BASED_VM_EXEC_CONTROL, SECONDARY_VM_EXEC_CONTROL, VM_ENTRY_CONTROLS,
  GUEST_CR0, GUEST_CR3, GUEST_CR4, GUEST_DR7, GUEST_IA32_DEBUGCTL, GUEST_SYSENTER_CS, GUEST_SYSENTER_ESP,
  GUEST_SYSENTER_EIP, GUEST_IA32_PAT, GUEST_IA32_EFER, GUEST_GDTR_BASE, GUEST_GDTR_LIMIT, GUEST_IDTR_BASE,
  GUEST_IDTR_LIMIT, GUEST_RIP, GUEST_RSP, GUEST_RFLAGS, GUEST_ACTIVITY_STATE, GUEST_INTERRUPTIBILITY_INFO,
  GUEST_PENDING_DBG_EXCEPTIONS,
} = SLOT;
const GUEST_PDPTR_SLOTS = GUEST_PDPTR_FIELDS.map((f) => SLOT_BY_NAME.get(f)!);

const has = (value: number, bit: number): boolean => (value & bit) !== 0;
const hasBig = (value: bigint, bit: number): boolean => (value & BigInt(bit)) !== 0n;

export function saveGuestState(access: VmcsAccess, cpu: VmTransitionCpu, guestRip?: bigint): void {
  const vmcs = slotsOf(access);
  // The real LP moves its registers itself (../lp-transfer.ts: the same result as saveGuestRegisters below).
  if (!(vmcs instanceof ActiveVmcs && cpu.saveGuestRegistersDirect?.(vmcs, guestRip) === true)) saveGuestRegisters(vmcs, cpu, guestRip);

  // --- Non-register state. See SDM Vol. 3C, "Saving Non-Register State".
  vmcs.writeLow(GUEST_ACTIVITY_STATE, cpu.activityState());
  vmcs.writeLow(GUEST_INTERRUPTIBILITY_INFO, cpu.interruptibility());
  vmcs.write(GUEST_PENDING_DBG_EXCEPTIONS, cpu.pendingDebugExceptions());

  // --- PDPTEs: saved with EPT and PAE paging. See SDM Vol. 3C, "Saving Non-Register State".
  const procCtls = vmcs.readLow(CPU_BASED_VM_EXEC_CONTROL);
  const proc2 = has(procCtls, VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) ? vmcs.readLow(SECONDARY_VM_EXEC_CONTROL) : 0;
  if (has(proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) && paePaging(cpu)) {
    pdptesAt(cpu, cpu.readCr3()).forEach((e, i) => vmcs.write(GUEST_PDPTR_SLOTS[i]!, e));
  }
}

/** PAE paging: CR0.PG = 1, CR4.PAE = 1, IA32_EFER.LMA = 0. */
function paePaging(cpu: VmTransitionCpu): boolean {
  return hasBig(cpu.readCr0(), CR0.PG) && hasBig(cpu.readCr4(), CR4.PAE) && !hasBig(cpu.readEfer(), EFER.LMA);
}

/** Control registers, MSRs, segment and descriptor-table registers, RIP, RSP, RFLAGS. */
function saveGuestRegisters(vmcs: VmcsSlots, cpu: VmTransitionCpu, guestRip: bigint | undefined): void {
  const exitCtls = vmcs.readLow(VM_EXIT_CONTROLS);

  // --- Control registers, debug registers, MSRs. See SDM Vol. 3C, "Saving Control Registers, Debug Registers,
  // and MSRs".
  const cr0 = cpu.readCr0();
  const cr4 = cpu.readCr4();
  vmcs.write(GUEST_CR0, cr0);
  vmcs.write(GUEST_CR3, cpu.readCr3());
  vmcs.write(GUEST_CR4, cr4);
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_DEBUG_CONTROLS)) {
    vmcs.write(GUEST_DR7, cpu.readDr7());
    vmcs.write(GUEST_IA32_DEBUGCTL, cpu.readMsr(MSR_IA32_DEBUGCTLMSR) ?? 0n);
  }
  vmcs.write(GUEST_SYSENTER_CS, (cpu.readMsr(MSR_IA32_SYSENTER_CS) ?? 0n) & 0xffffffffn);
  vmcs.write(GUEST_SYSENTER_ESP, cpu.readMsr(MSR_IA32_SYSENTER_ESP) ?? 0n);
  vmcs.write(GUEST_SYSENTER_EIP, cpu.readMsr(MSR_IA32_SYSENTER_EIP) ?? 0n);
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_IA32_PAT)) vmcs.write(GUEST_IA32_PAT, cpu.readMsr(MSR_IA32_CR_PAT) ?? 0n);
  const efer = cpu.readEfer();
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_IA32_EFER)) vmcs.write(GUEST_IA32_EFER, efer);
  // Every VM exit stores IA32_EFER.LMA into the "IA-32e mode guest" entry control, so the next VM entry resumes
  // the guest in the mode it left. See SDM Vol. 3C, "Saving Control Registers, Debug Registers, and MSRs".
  const entryCtls = vmcs.readLow(VM_ENTRY_CONTROLS);
  const ia32e = VMX_CONTROL.VM_ENTRY_IA32E_MODE;
  vmcs.writeLow(VM_ENTRY_CONTROLS, hasBig(efer, EFER.LMA) ? entryCtls | ia32e : entryCtls & ~ia32e);

  // --- Segment and descriptor-table registers. See SDM Vol. 3C, "Saving Segment Registers and Descriptor-Table
  // Registers".
  for (let i = 0; i < SEGMENT_NAMES.length; i++) {
    const seg = cpu.readSegment(SEGMENT_NAMES[i]!);
    const f = GUEST_SEGMENT_SLOTS[i]!;
    vmcs.writeLow(f.selector, seg.selector & 0xffff);
    vmcs.write(f.base, seg.base);
    vmcs.writeLow(f.limit, seg.limit);
    vmcs.writeLow(f.ar, seg.ar);
  }
  const gdtr = cpu.readDescriptorTable('GDTR');
  vmcs.write(GUEST_GDTR_BASE, gdtr.base);
  vmcs.writeLow(GUEST_GDTR_LIMIT, gdtr.limit & 0xffff);
  const idtr = cpu.readDescriptorTable('IDTR');
  vmcs.write(GUEST_IDTR_BASE, idtr.base);
  vmcs.writeLow(GUEST_IDTR_LIMIT, idtr.limit & 0xffff);

  // --- RIP, RSP, RFLAGS. See SDM Vol. 3C, "Saving RIP, RSP, RFLAGS, and SSP".
  vmcs.write(GUEST_RIP, guestRip ?? cpu.readRip());
  vmcs.write(GUEST_RSP, cpu.readGpr(RSP));
  vmcs.writeLow(GUEST_RFLAGS, cpu.readRflags() >>> 0);
}
