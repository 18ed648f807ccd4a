// Saving guest state into the guest-state area on a VM exit. See SDM Vol. 3C, "Saving Guest State".
import type { VmTransitionCpu } from '../transition/transition-cpu.ts';
import { SEGMENT_NAMES } from '../transition/transition-cpu.ts';
import type { VmcsAccess } from '../transition/vmcs-access.ts';
import { writeField32 } from '../transition/vmcs-access.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';
import { GUEST_PDPTR_FIELDS, pdptesAt } from '../transition/pdptes.ts';
import { VMX_CONTROL } from '../controls.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { MSR_EFER, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../x86/msr.ts';
import { RSP } from '../../x86/registers.ts';

const has = (value: bigint, bit: number): boolean => (value & BigInt(bit)) !== 0n;


export function saveGuestState(vmcs: VmcsAccess, cpu: VmTransitionCpu, guestRip?: bigint): void {
  const exitCtls = vmcs.read('VM_EXIT_CONTROLS');
  const procCtls = vmcs.read('CPU_BASED_VM_EXEC_CONTROL');
  const proc2 = has(procCtls, VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) ? vmcs.read('SECONDARY_VM_EXEC_CONTROL') : 0n;

  // --- Control registers, debug registers, MSRs. See SDM Vol. 3C, "Saving Control Registers, Debug Registers,
  // and MSRs".
  const cr0 = cpu.readCr0();
  const cr4 = cpu.readCr4();
  vmcs.write('GUEST_CR0', cr0);
  vmcs.write('GUEST_CR3', cpu.readCr3());
  vmcs.write('GUEST_CR4', cr4);
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_DEBUG_CONTROLS)) {
    vmcs.write('GUEST_DR7', cpu.readDr7());
    vmcs.write('GUEST_IA32_DEBUGCTL', cpu.readMsr(MSR_IA32_DEBUGCTLMSR) ?? 0n);
  }
  vmcs.write('GUEST_SYSENTER_CS', (cpu.readMsr(MSR_IA32_SYSENTER_CS) ?? 0n) & 0xffffffffn);
  vmcs.write('GUEST_SYSENTER_ESP', cpu.readMsr(MSR_IA32_SYSENTER_ESP) ?? 0n);
  vmcs.write('GUEST_SYSENTER_EIP', cpu.readMsr(MSR_IA32_SYSENTER_EIP) ?? 0n);
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_IA32_PAT)) vmcs.write('GUEST_IA32_PAT', cpu.readMsr(MSR_IA32_CR_PAT) ?? 0n);
  const efer = cpu.readEfer();
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_SAVE_IA32_EFER)) vmcs.write('GUEST_IA32_EFER', efer);
  // Every VM exit stores IA32_EFER.LMA into the "IA-32e mode guest" entry control, so the next VM entry resumes
  // the guest in the mode it left. See SDM Vol. 3C, "Saving Control Registers, Debug Registers, and MSRs".
  const entryCtls = vmcs.read('VM_ENTRY_CONTROLS');
  const ia32e = BigInt(VMX_CONTROL.VM_ENTRY_IA32E_MODE);
  vmcs.write('VM_ENTRY_CONTROLS', has(efer, EFER.LMA) ? entryCtls | ia32e : entryCtls & ~ia32e);

  // --- Segment and descriptor-table registers. See SDM Vol. 3C, "Saving Segment Registers and Descriptor-Table
  // Registers".
  for (const s of SEGMENT_NAMES) {
    const seg = cpu.readSegment(s);
    const f = GUEST_SEGMENT_FIELDS[s];
    writeField32(vmcs, f.selector, seg.selector & 0xffff);
    vmcs.write(f.base, seg.base);
    writeField32(vmcs, f.limit, seg.limit);
    writeField32(vmcs, f.ar, seg.ar);
  }
  const gdtr = cpu.readDescriptorTable('GDTR');
  vmcs.write('GUEST_GDTR_BASE', gdtr.base);
  writeField32(vmcs, 'GUEST_GDTR_LIMIT', gdtr.limit & 0xffff);
  const idtr = cpu.readDescriptorTable('IDTR');
  vmcs.write('GUEST_IDTR_BASE', idtr.base);
  writeField32(vmcs, 'GUEST_IDTR_LIMIT', idtr.limit & 0xffff);

  // --- RIP, RSP, RFLAGS. See SDM Vol. 3C, "Saving RIP, RSP, RFLAGS, and SSP".
  vmcs.write('GUEST_RIP', guestRip ?? cpu.readRip());
  vmcs.write('GUEST_RSP', cpu.readGpr(RSP));
  vmcs.write('GUEST_RFLAGS', BigInt(cpu.readRflags() >>> 0));

  // --- Non-register state. See SDM Vol. 3C, "Saving Non-Register State".
  writeField32(vmcs, 'GUEST_ACTIVITY_STATE', cpu.activityState());
  writeField32(vmcs, 'GUEST_INTERRUPTIBILITY_INFO', cpu.interruptibility());
  vmcs.write('GUEST_PENDING_DBG_EXCEPTIONS', cpu.pendingDebugExceptions());

  // --- PDPTEs: saved with EPT and PAE paging. See SDM Vol. 3C, "Saving Non-Register State".
  const pae = has(cr0, CR0.PG) && has(cr4, CR4.PAE) && !has(efer, EFER.LMA);
  if (has(proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) && pae) {
    pdptesAt(cpu, cpu.readCr3()).forEach((e, i) => vmcs.write(GUEST_PDPTR_FIELDS[i]!, e));
  }
}
