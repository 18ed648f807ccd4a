// Loading guest state on a successful VM entry, after every check passed. Runs before the VM-entry MSR-load area
// is processed. See SDM Vol. 3C, "Loading Guest State" and its subsections.
import type { SegmentName, VmTransitionCpu } from '../transition/transition-cpu.ts';
import { SEGMENT_NAMES } from '../transition/transition-cpu.ts';
import { mergeCr0 } from '../transition/cr0.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';
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

export function loadGuestState(v: EntryView, cpu: VmTransitionCpu): void {
  // --- Control registers, debug registers, MSRs. See SDM Vol. 3C, "Loading Guest Control Registers, Debug
  // Registers, and MSRs".
  const cr0 = mergeCr0(cpu.readCr0(), v.u64('GUEST_CR0'));
  cpu.loadCr0(cr0);
  cpu.loadCr3(v.u64('GUEST_CR3'));
  cpu.loadCr4(v.u64('GUEST_CR4'));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS)) {
    cpu.loadDr7(v.u64('GUEST_DR7'));
    cpu.writeMsr(MSR_IA32_DEBUGCTLMSR, v.u64('GUEST_IA32_DEBUGCTL'));
  }
  cpu.writeMsr(MSR_IA32_SYSENTER_CS, BigInt(v.u32('GUEST_SYSENTER_CS')));
  cpu.writeMsr(MSR_IA32_SYSENTER_ESP, v.u64('GUEST_SYSENTER_ESP'));
  cpu.writeMsr(MSR_IA32_SYSENTER_EIP, v.u64('GUEST_SYSENTER_EIP'));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT)) cpu.writeMsr(MSR_IA32_CR_PAT, v.u64('GUEST_IA32_PAT'));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_BNDCFGS)) cpu.writeMsr(MSR_IA32_BNDCFGS, v.u64('GUEST_BNDCFGS'));
  if (has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER)) {
    cpu.writeMsr(MSR_EFER, v.u64('GUEST_IA32_EFER'));
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
  for (const s of SEGMENT_NAMES) loadGuestSegment(v, cpu, s);
  cpu.loadDescriptorTable('GDTR', v.u64('GUEST_GDTR_BASE'), v.u32('GUEST_GDTR_LIMIT') & 0xffff);
  cpu.loadDescriptorTable('IDTR', v.u64('GUEST_IDTR_BASE'), v.u32('GUEST_IDTR_LIMIT') & 0xffff);

  // --- RIP, RSP, RFLAGS. See SDM Vol. 3C, "Loading Guest RIP, RSP, RFLAGS, and SSP".
  cpu.loadRip(v.u64('GUEST_RIP'));
  cpu.writeGpr(RSP, v.u64('GUEST_RSP'), 8);
  cpu.writeRflags(Number(v.u64('GUEST_RFLAGS') & 0xffffffffn));

  // --- PDPTEs: with EPT and PAE paging they come from the VMCS. See SDM Vol. 3C, "Loading Page-Directory-
  // Pointer-Table Entries".
  if (guestUsesPaePaging(v)) cpu.loadPdptes(guestPdptes(v).values);

  // --- Non-register state. See SDM Vol. 3C, "Updating Non-Register State".
  cpu.setActivityState(v.u32('GUEST_ACTIVITY_STATE'));
  cpu.setInterruptibility(v.u32('GUEST_INTERRUPTIBILITY_INFO'));
  cpu.setPendingDebugExceptions(v.u64('GUEST_PENDING_DBG_EXCEPTIONS'));
}

function loadGuestSegment(v: EntryView, cpu: VmTransitionCpu, s: SegmentName): void {
  const f = GUEST_SEGMENT_FIELDS[s];
  cpu.loadSegment(s, { selector: v.u32(f.selector) & 0xffff, base: v.u64(f.base), limit: v.u32(f.limit), ar: v.u32(f.ar) });
}
