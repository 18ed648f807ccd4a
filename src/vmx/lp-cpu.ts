// The real logical processor seen through the narrow views VMX code is written against (VmxCpu,
// VmTransitionCpu). Everything VMX instructions, VM entries and VM exits do to the LP goes through here.
import { CpuFault } from '../machine/fault.ts';
import { deliverWithDoubleFault } from '../machine/interrupts.ts';
import type { LogicalProcessor, SegmentRegisterName } from '../machine/lp.ts';
import { CR0, EFER } from '../x86/control-registers.ts';
import { AR } from '../x86/segments.ts';
import { CS } from '../x86/registers.ts';
import type { VmxCapabilities } from './capabilities.ts';
import type { MemAccess, MemWrite } from './cpu-view.ts';
import type { InjectedEvent, SegmentName, SegmentState, VmTransitionCpu } from './transition/transition-cpu.ts';
import { INTERRUPTIBILITY } from './transition/non-register-state.ts';
import type { ActiveVmcs } from './vmcs.ts';
import { invalidateEpt } from './ept/attach.ts';
import { invalidateVpidMappings } from './vpid.ts';
import { loadGuestRegisters, loadHostRegisters, saveGuestRegisters } from './lp-transfer.ts';

/** The LP's activity states, indexed by their VMCS encoding (ACTIVITY_STATE in transition/non-register-state.ts). */
const ACTIVITY = ['active', 'hlt', 'shutdown', 'wait-for-sipi'] as const;
const { BLOCKING_BY_STI, BLOCKING_BY_MOV_SS, BLOCKING_BY_NMI } = INTERRUPTIBILITY;

/** The LP's name for each segment register (constant strings: every VM exit and entry loads and saves all eight). */
const SEGMENT_REGISTER: Readonly<Record<SegmentName, SegmentRegisterName>> = {
  ES: 'es', CS: 'cs', SS: 'ss', DS: 'ds', FS: 'fs', GS: 'gs', LDTR: 'ldtr', TR: 'tr',
};

export class LpVmxCpu implements VmTransitionCpu {
  private pendingDbg = 0n;
  /**
   * While a VMX instruction whose memory operand's address faulted runs: the fault its operand access raises.
   * See VmxMemOperand.addressFault (src/machine/vmx-seam.ts).
   */
  operandFault: CpuFault | null = null;
  constructor(
    readonly lp: LogicalProcessor,
    readonly caps: VmxCapabilities,
  ) {}

  cpl(): number { return this.lp.cpl; }
  readCr0(): bigint { return this.lp.readCr0(); }
  readCr4(): bigint { return this.lp.readCr4(); }
  readCr3(): bigint { return this.lp.readCr3(); }
  readEfer(): bigint { return BigInt(this.lp.efer >>> 0); }
  ia32eModeActive(): boolean { return (this.lp.efer & EFER.LMA) !== 0; }
  // From the segment array: every VMREAD/VMWRITE asks (getSegment would build an object with a BigInt base).
  csL(): boolean { return (this.lp.segAr[CS]! & AR.L) !== 0; }
  readRflags(): number { return this.lp.getRflags() >>> 0; }
  writeRflags(value: number): void { this.lp.setRflags(value | 2); }
  readGpr(reg: number): bigint { return this.lp.getGpr(reg); }
  writeGpr(reg: number, value: bigint, size: 4 | 8): void {
    this.lp.setGpr(reg, size === 4 ? value & 0xffffffffn : value);
  }

  readLinear(linear: bigint, size: 4 | 8): MemAccess {
    if (this.operandFault !== null) return { ok: false, fault: this.operandFault };
    const la = Number(BigInt.asIntN(64, linear));
    try {
      if (size === 4) return { ok: true, value: BigInt(this.lp.read32(la) >>> 0) };
      const lo = this.lp.read64(la);
      return { ok: true, value: (BigInt(this.lp.hi >>> 0) << 32n) | BigInt(lo >>> 0) };
    } catch (e) {
      if (e instanceof CpuFault) return { ok: false, fault: e };
      throw e;
    }
  }
  writeLinear(linear: bigint, size: 4 | 8, value: bigint): MemWrite {
    if (this.operandFault !== null) return { ok: false, fault: this.operandFault };
    const la = Number(BigInt.asIntN(64, linear));
    try {
      if (size === 4) this.lp.write32(la, Number(value & 0xffffffffn) | 0);
      else this.lp.write64(la, Number(value & 0xffffffffn) | 0, Number((value >> 32n) & 0xffffffffn) | 0);
      return { ok: true };
    } catch (e) {
      if (e instanceof CpuFault) return { ok: false, fault: e };
      throw e;
    }
  }

  readPhysical32(pa: bigint): number { return this.lp.memory.read32(Number(pa)) >>> 0; }
  readPhysical64(pa: bigint): bigint { return this.lp.memory.read64(Number(pa)); }
  writePhysical32(pa: bigint, value: number): void { this.lp.memory.write32(Number(pa), value); }
  writePhysical64(pa: bigint, value: bigint): void { this.lp.memory.write64(Number(pa), value); }

  featureControl(): bigint { return BigInt(this.lp.featureControl >>> 0); }
  inSmxOperation(): boolean { return false; }
  movSsBlocking(): boolean { return this.lp.shadowAt === this.lp.instructions && this.lp.shadowKind === 'mov-ss'; }
  maxPhysAddr(): number { return this.lp.maxPhysAddr; }
  linearAddrWidth(): number { return 48; }

  // Guest-physical mappings are cached per EP4TA until INVEPT (./ept/attach.ts); linear and combined mappings are
  // tagged by VPID and EP4TA (./vpid.ts).
  invalidateEpt(eptp: bigint | null): void { invalidateEpt(this.lp, eptp); }
  invalidateVpid(vpid: number | null, linear: bigint | null): void { invalidateVpidMappings(this.lp, vpid, linear); }

  // --- VmTransitionCpu: loads without the MOV-to-CR #GP checks (the VMCS was checked) ---
  // No TLB flush: what a VM entry or VM exit invalidates depends on "enable VPID", not on the loads (./vpid.ts).
  loadCr0(value: bigint): void {
    const lp = this.lp;
    lp.cr0 = Number(value & 0xffffffffn) >>> 0;
    // IA32_EFER.LMA follows from the loaded EFER/controls; VM transitions set EFER explicitly after CR0.
    lp.updateMode();
  }
  loadCr3(value: bigint): void { this.lp.cr3 = Number(value); }
  loadCr4(value: bigint): void { this.lp.cr4 = Number(value & 0xffffffffn) >>> 0; }
  readDr7(): bigint { return this.lp.dr[7]!; }
  loadDr7(value: bigint): void { this.lp.dr[7] = value; }

  readMsr(index: number): bigint | null {
    try {
      return this.lp.rdmsr(index);
    } catch (e) {
      if (e instanceof CpuFault) return null;
      throw e;
    }
  }
  writeMsr(index: number, value: bigint): boolean {
    try {
      if (index === 0xc0000080) {
        // EFER loaded by a VM transition: LMA comes with the value (the checks made it consistent).
        this.lp.efer = Number(value & 0xffffffffn);
        this.lp.updateMode();
        return true;
      }
      this.lp.wrmsr(index, value);
      return true;
    } catch (e) {
      if (e instanceof CpuFault) return false;
      throw e;
    }
  }

  readSegment(seg: SegmentName): SegmentState {
    return this.lp.getSegment(SEGMENT_REGISTER[seg]);
  }
  loadSegment(seg: SegmentName, s: SegmentState): void {
    this.lp.setSegment(SEGMENT_REGISTER[seg], s);
  }
  readDescriptorTable(table: 'GDTR' | 'IDTR'): { base: bigint; limit: number } {
    return table === 'GDTR' ? this.lp.sgdt() : this.lp.sidt();
  }
  loadDescriptorTable(table: 'GDTR' | 'IDTR', base: bigint, limit: number): void {
    if (table === 'GDTR') this.lp.lgdt(base, limit);
    else this.lp.lidt(base, limit);
  }
  readRip(): bigint { return BigInt.asUintN(64, BigInt(this.lp.rip)); }
  loadRip(value: bigint): void { this.lp.setReg('rip', value); }
  loadedHostRip(): void { this.lp.checkHostEntry = true; }

  activityState(): number { return ACTIVITY.indexOf(this.lp.activity); }
  setActivityState(state: number): void { this.lp.activity = ACTIVITY[state] ?? 'active'; }

  interruptibility(): number {
    const lp = this.lp;
    let v = (lp.virtualNmis ? lp.virtualNmiBlocked : lp.nmiBlocked) ? BLOCKING_BY_NMI : 0;
    if (lp.shadowAt === lp.instructions) v |= lp.shadowKind === 'mov-ss' ? BLOCKING_BY_MOV_SS : BLOCKING_BY_STI;
    return v;
  }
  setInterruptibility(value: number): void {
    const lp = this.lp;
    // With virtual NMIs bit 3 is virtual-NMI blocking; it "does not affect the blocking of NMIs after VM entry. NMIs
    // are not blocked in VMX non-root operation". See SDM Vol. 3C, "Interruptibility State" (in "Special Features
    // of VM Entry").
    if (lp.virtualNmis) {
      lp.virtualNmiBlocked = (value & BLOCKING_BY_NMI) !== 0;
      lp.nmiBlocked = false;
    } else lp.nmiBlocked = (value & BLOCKING_BY_NMI) !== 0;
    if (value & (BLOCKING_BY_STI | BLOCKING_BY_MOV_SS)) {
      lp.shadowAt = lp.instructions;
      lp.shadowKind = value & BLOCKING_BY_MOV_SS ? 'mov-ss' : 'sti';
    } else {
      lp.shadowAt = -1;
      lp.shadowKind = '';
    }
  }
  setVirtualNmis(on: boolean): void {
    this.lp.virtualNmis = on;
    if (!on) this.lp.virtualNmiBlocked = false; // saved in the VMCS by then; the host has no virtual NMIs
  }
  pendingDebugExceptions(): bigint { return this.pendingDbg; }
  deliverEvent(e: InjectedEvent): void {
    const lp = this.lp;
    // Software interrupts and exceptions return after the instruction that (as if) raised them.
    const returnRip = lp.rip + e.instructionLength;
    deliverWithDoubleFault(lp, { vector: e.vector, errorCode: e.errorCode ?? -1, explanation: 'event injected by VM entry' },
      e.type, returnRip, e.instructionLength, { injected: true });
  }
  setPendingDebugExceptions(value: bigint): void { this.pendingDbg = value; }
  /** PAE paging without IA-32e mode is not emulated; the PDPTEs are kept for inspection only. */
  loadPdptes(pdptes: readonly bigint[]): void { this.pdptes = [...pdptes]; }
  pdptes: bigint[] = [];

  /**
   * VM exits and entries move register state straight between this LP and the cached VMCS (./lp-transfer.ts).
   * False: only through the methods above, as for any VmTransitionCpu (tests compare the two paths).
   */
  directTransfer = true;
  saveGuestRegistersDirect(vmcs: ActiveVmcs, guestRip: bigint | undefined): boolean {
    if (this.directTransfer) saveGuestRegisters(this, vmcs, guestRip);
    return this.directTransfer;
  }
  loadHostRegistersDirect(vmcs: ActiveVmcs): boolean {
    if (this.directTransfer) loadHostRegisters(this, vmcs);
    return this.directTransfer;
  }
  loadGuestRegistersDirect(vmcs: ActiveVmcs, entryCtls: number): boolean {
    if (this.directTransfer) loadGuestRegisters(this, vmcs, entryCtls);
    return this.directTransfer;
  }

  /** Paging on (for inspectors). */
  pagingEnabled(): boolean { return (this.lp.cr0 & CR0.PG) !== 0; }
}
