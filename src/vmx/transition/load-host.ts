// Loading host state from the host-state area, on every VM exit and on a VM-entry failure during or after
// loading guest state. See SDM Vol. 3C, "Loading Host State".
import type { SegmentName, SegmentState, VmTransitionCpu } from './transition-cpu.ts';
import type { VmcsAccess } from './vmcs-access.ts';
import { slotsOf, type VmcsSlots } from './vmcs-access.ts';
import { ActiveVmcs, SLOT } from '../vmcs.ts';
import { mergeCr0 } from './cr0.ts';
import { ACTIVITY_STATE, INTERRUPTIBILITY } from './non-register-state.ts';
import { VMX_CONTROL } from '../controls.ts';
import { CR4, DR7_FIXED1, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR, SYSTEM_TYPE } from '../../x86/segments.ts';
import {
  MSR_EFER, MSR_IA32_BNDCFGS, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP,
  MSR_IA32_SYSENTER_ESP,
} from '../../x86/msr.ts';
import { RSP } from '../../x86/registers.ts';

/** Code segment type 11: execute/read, accessed. Data segment type 3: read/write, accessed. */
const CODE_EXECUTE_READ_ACCESSED = 0xb;
const DATA_READ_WRITE_ACCESSED = 0x3;
/** Host TR limit after a VM exit: 67H, the size of a 32-bit TSS minus 1. */
const HOST_TR_LIMIT = 0x67;

const has = (value: number, bit: number): boolean => (value & bit) !== 0;
const U32 = 0xffffffffn;

// The slots of the fields this file reads.
const {
  VM_EXIT_CONTROLS, HOST_CR0, HOST_CR3, HOST_CR4, HOST_IA32_SYSENTER_CS, HOST_IA32_SYSENTER_ESP,
  HOST_IA32_SYSENTER_EIP, HOST_IA32_PAT, HOST_IA32_EFER, HOST_CS_SELECTOR, HOST_TR_SELECTOR, HOST_TR_BASE,
  HOST_GDTR_BASE, HOST_IDTR_BASE, HOST_RIP, HOST_RSP,
} = SLOT;

/** The data segments a VM exit loads from host selectors, with their VMCS slots (looked up once, not per exit). */
const HOST_DATA_SEGMENTS: readonly { seg: SegmentName; selector: number; base: number | null }[] = [
  { seg: 'SS', selector: SLOT.HOST_SS_SELECTOR, base: null },
  { seg: 'DS', selector: SLOT.HOST_DS_SELECTOR, base: null },
  { seg: 'ES', selector: SLOT.HOST_ES_SELECTOR, base: null },
  { seg: 'FS', selector: SLOT.HOST_FS_SELECTOR, base: SLOT.HOST_FS_BASE },
  { seg: 'GS', selector: SLOT.HOST_GS_SELECTOR, base: SLOT.HOST_GS_BASE },
];

/** A flat 4-GByte segment: base, limit FFFFFFFFH, G = 1, present, code or data. */
function flat(selector: number, type: number, extra: number, base: bigint): SegmentState {
  return { selector, base, limit: 0xffffffff, ar: type | AR.S | AR.P | AR.G | extra };
}
/** A 32-bit host keeps bits 31:0 of the natural-width fields. */
function narrow(host64: boolean, v: bigint): bigint {
  return host64 ? v : v & U32;
}

export function loadHostState(access: VmcsAccess, cpu: VmTransitionCpu): void {
  const vmcs = slotsOf(access);
  // The real LP loads its registers itself (../lp-transfer.ts: the same result as loadHostRegisters below).
  if (!(vmcs instanceof ActiveVmcs && cpu.loadHostRegistersDirect?.(vmcs) === true)) loadHostRegisters(vmcs, cpu);

  // --- Non-register state: the host runs, with no STI or MOV-SS blocking and no pending debug exceptions.
  // See SDM Vol. 3C, "Updating Non-Register State".
  cpu.setActivityState(ACTIVITY_STATE.ACTIVE);
  cpu.setVirtualNmis?.(false); // guest state saved: from here bit 3 is the LP's own NMI blocking
  cpu.setInterruptibility(cpu.interruptibility() & INTERRUPTIBILITY.BLOCKING_BY_NMI);
  cpu.setPendingDebugExceptions(0n);
}

/** Control registers, MSRs, segment and descriptor-table registers, RIP, RSP, RFLAGS. */
function loadHostRegisters(vmcs: VmcsSlots, cpu: VmTransitionCpu): void {
  const exitCtls = vmcs.readLow(VM_EXIT_CONTROLS);
  const host64 = has(exitCtls, VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE);

  // --- Control registers, debug registers, MSRs. CR0 keeps ET, NW, CD and its reserved bits; CR4.PAE is set for
  // a 64-bit host and CR4.PCIDE cleared for a 32-bit one. DR7 becomes 400H and IA32_DEBUGCTL 0.
  // See SDM Vol. 3C, "Loading Host Control Registers, Debug Registers, MSRs".
  cpu.loadCr0(mergeCr0(cpu.readCr0(), vmcs.read(HOST_CR0)));
  let cr4 = vmcs.read(HOST_CR4);
  cr4 = host64 ? cr4 | BigInt(CR4.PAE) : cr4 & ~BigInt(CR4.PCIDE);
  cpu.loadCr4(cr4);
  cpu.loadCr3(vmcs.read(HOST_CR3));
  cpu.loadDr7(BigInt(DR7_FIXED1));
  cpu.writeMsr(MSR_IA32_DEBUGCTLMSR, 0n);
  cpu.writeMsr(MSR_IA32_SYSENTER_CS, vmcs.read(HOST_IA32_SYSENTER_CS) & 0xffffffffn);
  cpu.writeMsr(MSR_IA32_SYSENTER_ESP, narrow(host64, vmcs.read(HOST_IA32_SYSENTER_ESP)));
  cpu.writeMsr(MSR_IA32_SYSENTER_EIP, narrow(host64, vmcs.read(HOST_IA32_SYSENTER_EIP)));
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT)) cpu.writeMsr(MSR_IA32_CR_PAT, vmcs.read(HOST_IA32_PAT));
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_CLEAR_BNDCFGS)) cpu.writeMsr(MSR_IA32_BNDCFGS, 0n);
  if (has(exitCtls, VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER)) {
    cpu.writeMsr(MSR_EFER, vmcs.read(HOST_IA32_EFER));
  } else {
    // Without "load IA32_EFER", LMA and LME follow "host address-space size".
    const lm = BigInt(EFER.LMA | EFER.LME);
    const efer = cpu.readEfer();
    cpu.writeMsr(MSR_EFER, host64 ? efer | lm : efer & ~lm);
  }

  // --- Segment registers. See SDM Vol. 3C, "Loading Host Segment and Descriptor-Table Registers".
  // CS: 64-bit code (L = 1, D/B = 0) for a 64-bit host, else 32-bit code (D/B = 1).
  cpu.loadSegment('CS', flat(vmcs.readLow(HOST_CS_SELECTOR), CODE_EXECUTE_READ_ACCESSED, host64 ? AR.L : AR.DB, 0n));
  for (const s of HOST_DATA_SEGMENTS) {
    const selector = vmcs.readLow(s.selector);
    // FS and GS bases come from the VMCS; the others are 0. A null selector makes the register unusable.
    const base = s.base !== null ? narrow(host64, vmcs.read(s.base)) : 0n;
    const seg = flat(selector, DATA_READ_WRITE_ACCESSED, AR.DB, base);
    if (selector === 0) seg.ar |= AR.UNUSABLE;
    cpu.loadSegment(s.seg, seg);
  }
  cpu.loadSegment('TR', {
    selector: vmcs.readLow(HOST_TR_SELECTOR),
    base: narrow(host64, vmcs.read(HOST_TR_BASE)),
    limit: HOST_TR_LIMIT,
    ar: SYSTEM_TYPE.TSS_BUSY | AR.P,
  });
  // LDTR is null and unusable after a VM exit.
  cpu.loadSegment('LDTR', { selector: 0, base: 0n, limit: 0, ar: AR.UNUSABLE });
  // GDTR and IDTR limits become FFFFH; a hypervisor that returns to its OS must restore them.
  cpu.loadDescriptorTable('GDTR', narrow(host64, vmcs.read(HOST_GDTR_BASE)), 0xffff);
  cpu.loadDescriptorTable('IDTR', narrow(host64, vmcs.read(HOST_IDTR_BASE)), 0xffff);

  // --- RIP, RSP, RFLAGS: RFLAGS is cleared except bit 1. See SDM Vol. 3C, "Loading Host RIP, RSP, RFLAGS, and SSP".
  cpu.loadRip(narrow(host64, vmcs.read(HOST_RIP)));
  // Tell the machine the host runs from here: HOST_RIP may be a host entry point (a TypeScript VM-exit handler,
  // Kernel.hostEntry), which the executor then stops at instead of fetching the bytes at that address.
  cpu.loadedHostRip?.();
  cpu.writeGpr(RSP, narrow(host64, vmcs.read(HOST_RSP)), 8);
  cpu.writeRflags(RFLAGS.FIXED1);
}
