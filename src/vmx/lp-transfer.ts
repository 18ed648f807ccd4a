// The register state a VM exit saves and loads, and a VM entry loads, moved straight between the real LP's register
// file and the processor's cached VMCS: numbers from typed array to typed array, no BigInt and no per-segment
// objects. This is the fast path of exit/save-guest.ts, transition/load-host.ts and entry/load-guest.ts, which do
// the same through the VmTransitionCpu interface (and stay the definition: lp-transfer.test.ts holds the two to
// the same result). The steps, their order and the LP's own side effects (mode updates after each segment register,
// CPL from SS.DPL; what the TLB drops is ./vpid.ts's) are those of the general path; rarely enabled controls (debug
// controls, PAT, BNDCFGS, EFER loading) go through the general LpVmxCpu methods, as there.
// See SDM Vol. 3C, "Saving Guest State", "Loading Host State" and "Loading Guest State".
import type { LpVmxCpu } from './lp-cpu.ts';
import type { ActiveVmcs } from './vmcs.ts';
import { SLOT } from './vmcs.ts';
import { GUEST_SEGMENT_SLOTS } from './transition/segment-fields.ts';
import { CR0_KEPT_ON_VM_TRANSITION } from './transition/cr0.ts';
import { VMX_CONTROL } from './controls.ts';
import { CR0, CR4, DR7_FIXED1, EFER } from '../x86/control-registers.ts';
import { RFLAGS } from '../x86/flags.ts';
import { AR, SYSTEM_TYPE } from '../x86/segments.ts';
import {
  MSR_EFER, MSR_IA32_BNDCFGS, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP,
  MSR_IA32_SYSENTER_ESP,
} from '../x86/msr.ts';
import { CS, DS, ES, FS, GS, RSP, SS } from '../x86/registers.ts';

const {
  VM_EXIT_CONTROLS, VM_ENTRY_CONTROLS,
  GUEST_CR0, GUEST_CR3, GUEST_CR4, GUEST_DR7, GUEST_IA32_DEBUGCTL, GUEST_SYSENTER_CS, GUEST_SYSENTER_ESP,
  GUEST_SYSENTER_EIP, GUEST_IA32_PAT, GUEST_BNDCFGS, GUEST_IA32_EFER, GUEST_GDTR_BASE, GUEST_GDTR_LIMIT,
  GUEST_IDTR_BASE, GUEST_IDTR_LIMIT, GUEST_RIP, GUEST_RSP, GUEST_RFLAGS,
  HOST_CR0, HOST_CR3, HOST_CR4, HOST_IA32_SYSENTER_CS, HOST_IA32_SYSENTER_ESP, HOST_IA32_SYSENTER_EIP,
  HOST_IA32_PAT, HOST_IA32_EFER, HOST_CS_SELECTOR, HOST_SS_SELECTOR, HOST_DS_SELECTOR, HOST_ES_SELECTOR,
  HOST_FS_SELECTOR, HOST_GS_SELECTOR, HOST_FS_BASE, HOST_GS_BASE, HOST_TR_SELECTOR, HOST_TR_BASE,
  HOST_GDTR_BASE, HOST_IDTR_BASE, HOST_RIP, HOST_RSP,
} = SLOT;

/** The LP's segment-register indexes, as the transition code's SEGMENT_NAMES orders them (ES … GS, LDTR, TR). */
const LDTR = 6, TR = 7;
/** CR0 bits a VM transition keeps (all in bits 31:0 once CR0 is 32 bits wide). See ./transition/cr0.ts. */
const CR0_KEPT = Number(CR0_KEPT_ON_VM_TRANSITION & 0xffffffffn);
const U32 = 0xffffffffn;
/** See ./transition/load-host.ts. */
const CODE_EXECUTE_READ_ACCESSED = 0xb;
const DATA_READ_WRITE_ACCESSED = 0x3;
const HOST_TR_LIMIT = 0x67;
const FLAT_LIMIT = 0xffffffff;
const FLAT = AR.S | AR.P | AR.G;
const DR7_AFTER_EXIT = BigInt(DR7_FIXED1);

/** exit/save-guest.ts, up to and including RFLAGS: control registers, MSRs, segment and descriptor-table registers, RIP, RSP. */
export function saveGuestRegisters(cpu: LpVmxCpu, vmcs: ActiveVmcs, guestRip: bigint | undefined): void {
  const lp = cpu.lp;
  const exitCtls = vmcs.readLow(VM_EXIT_CONTROLS);
  vmcs.writeLow(GUEST_CR0, lp.cr0 >>> 0);
  vmcs.writeUint(GUEST_CR3, lp.cr3);
  vmcs.writeLow(GUEST_CR4, lp.cr4 >>> 0);
  if ((exitCtls & VMX_CONTROL.VM_EXIT_SAVE_DEBUG_CONTROLS) !== 0) {
    vmcs.write(GUEST_DR7, cpu.readDr7());
    vmcs.write(GUEST_IA32_DEBUGCTL, cpu.readMsr(MSR_IA32_DEBUGCTLMSR) ?? 0n);
  }
  vmcs.write(GUEST_SYSENTER_CS, (cpu.readMsr(MSR_IA32_SYSENTER_CS) ?? 0n) & U32);
  vmcs.write(GUEST_SYSENTER_ESP, cpu.readMsr(MSR_IA32_SYSENTER_ESP) ?? 0n);
  vmcs.write(GUEST_SYSENTER_EIP, cpu.readMsr(MSR_IA32_SYSENTER_EIP) ?? 0n);
  if ((exitCtls & VMX_CONTROL.VM_EXIT_SAVE_IA32_PAT) !== 0) vmcs.write(GUEST_IA32_PAT, cpu.readMsr(MSR_IA32_CR_PAT) ?? 0n);
  const efer = lp.efer >>> 0;
  if ((exitCtls & VMX_CONTROL.VM_EXIT_SAVE_IA32_EFER) !== 0) vmcs.writeLow(GUEST_IA32_EFER, efer);
  const entryCtls = vmcs.readLow(VM_ENTRY_CONTROLS);
  const ia32e = VMX_CONTROL.VM_ENTRY_IA32E_MODE;
  vmcs.writeLow(VM_ENTRY_CONTROLS, (efer & EFER.LMA) !== 0 ? entryCtls | ia32e : entryCtls & ~ia32e);

  for (let i = 0; i < GUEST_SEGMENT_SLOTS.length; i++) {
    const f = GUEST_SEGMENT_SLOTS[i]!;
    vmcs.writeLow(f.selector, lp.segSel[i]! & 0xffff);
    writeSigned(vmcs, f.base, lp.segBase[i]!);
    vmcs.writeLow(f.limit, lp.segLimit[i]!);
    vmcs.writeLow(f.ar, lp.segAr[i]!);
  }
  writeSigned(vmcs, GUEST_GDTR_BASE, lp.gdtrBase);
  vmcs.writeLow(GUEST_GDTR_LIMIT, lp.gdtrLimit & 0xffff);
  writeSigned(vmcs, GUEST_IDTR_BASE, lp.idtrBase);
  vmcs.writeLow(GUEST_IDTR_LIMIT, lp.idtrLimit & 0xffff);

  if (guestRip !== undefined) vmcs.write(GUEST_RIP, guestRip);
  else writeSigned(vmcs, GUEST_RIP, lp.rip);
  // RSP is natural width: both halves of the register.
  vmcs.data[2 * GUEST_RSP] = lp.regLo[RSP]! >>> 0;
  vmcs.data[2 * GUEST_RSP + 1] = lp.regHi[RSP]! >>> 0;
  vmcs.writeLow(GUEST_RFLAGS, lp.getRflags() >>> 0);
}

/** transition/load-host.ts, up to and including RFLAGS. */
export function loadHostRegisters(cpu: LpVmxCpu, vmcs: ActiveVmcs): void {
  const lp = cpu.lp;
  const exitCtls = vmcs.readLow(VM_EXIT_CONTROLS);
  const host64 = (exitCtls & VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0;

  loadCr0(cpu, (lp.cr0 & CR0_KEPT) | (vmcs.readLow(HOST_CR0) & ~CR0_KEPT));
  const cr4 = vmcs.readLow(HOST_CR4);
  lp.cr4 = (host64 ? cr4 | CR4.PAE : cr4 & ~CR4.PCIDE) >>> 0;
  lp.cr3 = vmcs.readUnsigned(HOST_CR3);
  lp.dr[7] = DR7_AFTER_EXIT;
  cpu.writeMsr(MSR_IA32_DEBUGCTLMSR, 0n);
  cpu.writeMsr(MSR_IA32_SYSENTER_CS, BigInt(vmcs.readLow(HOST_IA32_SYSENTER_CS)));
  cpu.writeMsr(MSR_IA32_SYSENTER_ESP, host64 ? vmcs.read(HOST_IA32_SYSENTER_ESP) : BigInt(vmcs.readLow(HOST_IA32_SYSENTER_ESP)));
  cpu.writeMsr(MSR_IA32_SYSENTER_EIP, host64 ? vmcs.read(HOST_IA32_SYSENTER_EIP) : BigInt(vmcs.readLow(HOST_IA32_SYSENTER_EIP)));
  if ((exitCtls & VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT) !== 0) cpu.writeMsr(MSR_IA32_CR_PAT, vmcs.read(HOST_IA32_PAT));
  if ((exitCtls & VMX_CONTROL.VM_EXIT_CLEAR_BNDCFGS) !== 0) cpu.writeMsr(MSR_IA32_BNDCFGS, 0n);
  if ((exitCtls & VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER) !== 0) cpu.writeMsr(MSR_EFER, vmcs.read(HOST_IA32_EFER));
  else loadEfer(cpu, host64 ? lp.efer | EFER.LMA | EFER.LME : lp.efer & ~(EFER.LMA | EFER.LME));

  // Segment registers in the general path's order: CS, SS, DS, ES, FS, GS, TR, LDTR (each load updates the mode).
  lp.setSegmentAt(CS, vmcs.readLow(HOST_CS_SELECTOR), 0, FLAT_LIMIT, CODE_EXECUTE_READ_ACCESSED | FLAT | (host64 ? AR.L : AR.DB));
  hostDataSegment(cpu, SS, vmcs.readLow(HOST_SS_SELECTOR), 0);
  hostDataSegment(cpu, DS, vmcs.readLow(HOST_DS_SELECTOR), 0);
  hostDataSegment(cpu, ES, vmcs.readLow(HOST_ES_SELECTOR), 0);
  hostDataSegment(cpu, FS, vmcs.readLow(HOST_FS_SELECTOR), address(vmcs, host64, HOST_FS_BASE));
  hostDataSegment(cpu, GS, vmcs.readLow(HOST_GS_SELECTOR), address(vmcs, host64, HOST_GS_BASE));
  lp.setSegmentAt(TR, vmcs.readLow(HOST_TR_SELECTOR), address(vmcs, host64, HOST_TR_BASE), HOST_TR_LIMIT, SYSTEM_TYPE.TSS_BUSY | AR.P);
  lp.setSegmentAt(LDTR, 0, 0, 0, AR.UNUSABLE);
  lp.gdtrBase = address(vmcs, host64, HOST_GDTR_BASE);
  lp.gdtrLimit = 0xffff;
  lp.idtrBase = address(vmcs, host64, HOST_IDTR_BASE);
  lp.idtrLimit = 0xffff;

  lp.rip = address(vmcs, host64, HOST_RIP);
  cpu.loadedHostRip();
  // RSP: bits 63:0 for a 64-bit host, else bits 31:0.
  lp.regLo[RSP] = vmcs.data[2 * HOST_RSP]! | 0;
  lp.regHi[RSP] = host64 ? vmcs.data[2 * HOST_RSP + 1]! | 0 : 0;
  lp.setRflags(RFLAGS.FIXED1);
}

/** entry/load-guest.ts, up to and including RFLAGS (the PDPTEs and non-register state follow there). */
export function loadGuestRegisters(cpu: LpVmxCpu, vmcs: ActiveVmcs, entryCtls: number): void {
  const lp = cpu.lp;
  const cr0 = ((lp.cr0 & CR0_KEPT) | (vmcs.readLow(GUEST_CR0) & ~CR0_KEPT)) >>> 0;
  loadCr0(cpu, cr0);
  lp.cr3 = vmcs.readUnsigned(GUEST_CR3);
  lp.cr4 = vmcs.readLow(GUEST_CR4);
  if ((entryCtls & VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS) !== 0) {
    cpu.loadDr7(vmcs.read(GUEST_DR7));
    cpu.writeMsr(MSR_IA32_DEBUGCTLMSR, vmcs.read(GUEST_IA32_DEBUGCTL));
  }
  cpu.writeMsr(MSR_IA32_SYSENTER_CS, BigInt(vmcs.readLow(GUEST_SYSENTER_CS)));
  cpu.writeMsr(MSR_IA32_SYSENTER_ESP, vmcs.read(GUEST_SYSENTER_ESP));
  cpu.writeMsr(MSR_IA32_SYSENTER_EIP, vmcs.read(GUEST_SYSENTER_EIP));
  if ((entryCtls & VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT) !== 0) cpu.writeMsr(MSR_IA32_CR_PAT, vmcs.read(GUEST_IA32_PAT));
  if ((entryCtls & VMX_CONTROL.VM_ENTRY_LOAD_BNDCFGS) !== 0) cpu.writeMsr(MSR_IA32_BNDCFGS, vmcs.read(GUEST_BNDCFGS));
  if ((entryCtls & VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER) !== 0) {
    cpu.writeMsr(MSR_EFER, vmcs.read(GUEST_IA32_EFER));
  } else {
    const ia32e = (entryCtls & VMX_CONTROL.VM_ENTRY_IA32E_MODE) !== 0;
    let efer = lp.efer >>> 0;
    efer = ia32e ? efer | EFER.LMA : efer & ~EFER.LMA;
    if ((cr0 & CR0.PG) !== 0) efer = ia32e ? efer | EFER.LME : efer & ~EFER.LME;
    loadEfer(cpu, efer);
  }

  for (let i = 0; i < GUEST_SEGMENT_SLOTS.length; i++) {
    const f = GUEST_SEGMENT_SLOTS[i]!;
    lp.setSegmentAt(i, vmcs.readLow(f.selector) & 0xffff, vmcs.readSigned(f.base), vmcs.readLow(f.limit), vmcs.readLow(f.ar));
  }
  lp.gdtrBase = vmcs.readSigned(GUEST_GDTR_BASE);
  lp.gdtrLimit = vmcs.readLow(GUEST_GDTR_LIMIT) & 0xffff;
  lp.idtrBase = vmcs.readSigned(GUEST_IDTR_BASE);
  lp.idtrLimit = vmcs.readLow(GUEST_IDTR_LIMIT) & 0xffff;

  lp.rip = vmcs.readSigned(GUEST_RIP);
  lp.regLo[RSP] = vmcs.data[2 * GUEST_RSP]! | 0;
  lp.regHi[RSP] = vmcs.data[2 * GUEST_RSP + 1]! | 0;
  lp.setRflags(vmcs.readLow(GUEST_RFLAGS) | RFLAGS.FIXED1);
}

/** A natural-width host address field as the LP holds it: signed; a 32-bit host keeps bits 31:0. */
function address(vmcs: ActiveVmcs, host64: boolean, slot: number): number {
  return host64 ? vmcs.readSigned(slot) : vmcs.readLow(slot);
}

/** A data segment after a VM exit: flat, read/write; a null selector makes it unusable. */
function hostDataSegment(cpu: LpVmxCpu, s: number, selector: number, base: number): void {
  cpu.lp.setSegmentAt(s, selector, base, FLAT_LIMIT, DATA_READ_WRITE_ACCESSED | FLAT | AR.DB | (selector === 0 ? AR.UNUSABLE : 0));
}

/** LpVmxCpu.loadCr0 with a 32-bit value. */
function loadCr0(cpu: LpVmxCpu, cr0: number): void {
  cpu.lp.cr0 = cr0 >>> 0;
  cpu.lp.updateMode();
}

/** LpVmxCpu.writeMsr(IA32_EFER) with a 32-bit value. */
function loadEfer(cpu: LpVmxCpu, efer: number): void {
  cpu.lp.efer = efer >>> 0;
  cpu.lp.updateMode();
}

/** `vmcs.write(slot, BigInt.asUintN(64, BigInt(n)))` for an LP register held as a signed number. */
function writeSigned(vmcs: ActiveVmcs, slot: number, n: number): void {
  if (n >= 0) vmcs.writeUint(slot, n);
  else vmcs.write(slot, BigInt.asUintN(64, BigInt(n)));
}
