// Test double: a logical processor for tests of VM entry and VM exit. Plain fields for every register the
// guest-state and host-state areas describe, sparse physical memory, and a small MSR file whose WRMSR refuses what
// the real one refuses (unknown MSRs, reserved EFER bits, invalid PAT types, non-canonical addresses).
import type { InjectedEvent, SegmentName, SegmentState, VmTransitionCpu } from '../transition/transition-cpu.ts';
import { SEGMENT_NAMES } from '../transition/transition-cpu.ts';
import type { VmxCapabilities } from '../capabilities.ts';
import type { MemAccess, MemWrite } from '../cpu-view.ts';
import { validPat } from '../entry/host-state.ts';
import { EFER, EFER_DEFINED } from '../../x86/control-registers.ts';
import {
  MSR_CSTAR, MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS,
  MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP, MSR_TSC_AUX, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_STAR,
  MSR_SYSCALL_MASK,
} from '../../x86/msr.ts';
import { AR } from '../../x86/segments.ts';

const U64 = 0xffffffffffffffffn;
/** MSRs whose value is a linear address: WRMSR raises #GP for a non-canonical value. */
const ADDRESS_MSRS = new Set([MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_LSTAR, MSR_CSTAR, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE]);

export class FakeTransitionCpu implements VmTransitionCpu {
  cr0 = 0n;
  cr3 = 0n;
  cr4 = 0n;
  dr7 = 0x400n;
  rip = 0n;
  rflags = 2;
  gprs: bigint[] = new Array<bigint>(16).fill(0n);
  segments: Record<SegmentName, SegmentState>;
  gdtr = { base: 0n, limit: 0xffff };
  idtr = { base: 0n, limit: 0xffff };
  activity = 0;
  interruptibilityState = 0;
  pendingDbg = 0n;
  pdptes: readonly bigint[] | null = null;
  msrs = new Map<number, bigint>([
    [MSR_EFER, BigInt(EFER.LME | EFER.LMA)], [MSR_IA32_CR_PAT, 0x0007040600070406n], [MSR_IA32_DEBUGCTLMSR, 0n],
    [MSR_IA32_SYSENTER_CS, 0n], [MSR_IA32_SYSENTER_ESP, 0n], [MSR_IA32_SYSENTER_EIP, 0n], [MSR_STAR, 0n],
    [MSR_LSTAR, 0n], [MSR_CSTAR, 0n], [MSR_SYSCALL_MASK, 0n], [MSR_KERNEL_GS_BASE, 0n], [MSR_TSC_AUX, 0n],
    [MSR_FS_BASE, 0n], [MSR_GS_BASE, 0n],
  ]);
  /** Sparse physical memory, one byte per entry. */
  readonly memory = new Map<bigint, number>();
  /** Log of state-changing calls, for tests that check order or absence of effects. */
  readonly log: string[] = [];

  constructor(readonly caps: VmxCapabilities, readonly physWidth = 39, readonly linearWidth = 48) {
    const seg = (): SegmentState => ({ selector: 0, base: 0n, limit: 0, ar: AR.UNUSABLE });
    this.segments = Object.fromEntries(SEGMENT_NAMES.map((s) => [s, seg()])) as Record<SegmentName, SegmentState>;
  }

  // --- VmxCpu ---
  cpl(): number { return this.segments.SS.ar >> 5 & 3; }
  readCr0(): bigint { return this.cr0; }
  readCr4(): bigint { return this.cr4; }
  readEfer(): bigint { return this.msrs.get(MSR_EFER)!; }
  ia32eModeActive(): boolean { return (this.readEfer() & BigInt(EFER.LMA)) !== 0n; }
  csL(): boolean { return (this.segments.CS.ar & AR.L) !== 0; }
  readRflags(): number { return this.rflags; }
  writeRflags(value: number): void { this.rflags = value >>> 0; }
  readGpr(reg: number): bigint { return this.gprs[reg]!; }
  writeGpr(reg: number, value: bigint, size: 4 | 8): void { this.gprs[reg] = size === 4 ? value & 0xffffffffn : value & U64; }
  readLinear(): MemAccess { return { ok: true, value: 0n }; }
  writeLinear(): MemWrite { return { ok: true }; }
  readPhysical32(pa: bigint): number {
    let v = 0;
    for (let i = 3; i >= 0; i--) v = (v * 256) + (this.memory.get(pa + BigInt(i)) ?? 0);
    return v >>> 0;
  }
  readPhysical64(pa: bigint): bigint {
    return (BigInt(this.readPhysical32(pa + 4n)) << 32n) | BigInt(this.readPhysical32(pa));
  }
  writePhysical32(pa: bigint, value: number): void {
    for (let i = 0; i < 4; i++) this.memory.set(pa + BigInt(i), (value >>> (8 * i)) & 0xff);
  }
  writePhysical64(pa: bigint, value: bigint): void {
    this.writePhysical32(pa, Number(value & 0xffffffffn));
    this.writePhysical32(pa + 4n, Number((value >> 32n) & 0xffffffffn));
  }
  featureControl(): bigint { return 5n; }
  inSmxOperation(): boolean { return false; }
  movSsBlocking(): boolean { return (this.interruptibilityState & 2) !== 0; }
  maxPhysAddr(): number { return this.physWidth; }
  linearAddrWidth(): number { return this.linearWidth; }
  invalidateEpt(): void {}
  invalidateVpid(): void {}

  // --- VmTransitionCpu ---
  readCr3(): bigint { return this.cr3; }
  loadCr0(value: bigint): void { this.cr0 = value; this.log.push('cr0'); }
  loadCr3(value: bigint): void { this.cr3 = value; this.log.push('cr3'); }
  loadCr4(value: bigint): void { this.cr4 = value; this.log.push('cr4'); }
  readDr7(): bigint { return this.dr7; }
  loadDr7(value: bigint): void { this.dr7 = value; }
  readMsr(index: number): bigint | null { return this.msrs.get(index) ?? null; }
  writeMsr(index: number, value: bigint): boolean {
    if (!this.msrs.has(index)) return false;
    if (index === MSR_EFER && (value & ~BigInt(EFER_DEFINED)) !== 0n) return false;
    if (index === MSR_IA32_CR_PAT && validPat(value) >= 0) return false;
    if (ADDRESS_MSRS.has(index) && !this.canonical(value)) return false;
    this.msrs.set(index, value & U64);
    this.log.push(`msr:${index.toString(16)}`);
    return true;
  }
  readSegment(seg: SegmentName): SegmentState { return { ...this.segments[seg] }; }
  loadSegment(seg: SegmentName, s: SegmentState): void { this.segments[seg] = { ...s }; }
  readDescriptorTable(t: 'GDTR' | 'IDTR'): { base: bigint; limit: number } { return { ...(t === 'GDTR' ? this.gdtr : this.idtr) }; }
  loadDescriptorTable(t: 'GDTR' | 'IDTR', base: bigint, limit: number): void {
    if (t === 'GDTR') this.gdtr = { base, limit }; else this.idtr = { base, limit };
  }
  readRip(): bigint { return this.rip; }
  loadRip(value: bigint): void { this.rip = value; }
  activityState(): number { return this.activity; }
  setActivityState(state: number): void { this.activity = state; }
  interruptibility(): number { return this.interruptibilityState; }
  setInterruptibility(value: number): void { this.interruptibilityState = value >>> 0; }
  pendingDebugExceptions(): bigint { return this.pendingDbg; }
  setPendingDebugExceptions(value: bigint): void { this.pendingDbg = value; }
  /** Events delivered by event injection, in order (the fake has no IDT). */
  readonly delivered: InjectedEvent[] = [];
  deliverEvent(event: InjectedEvent): void { this.delivered.push(event); }
  loadPdptes(pdptes: readonly bigint[]): void { this.pdptes = [...pdptes]; }

  private canonical(a: bigint): boolean {
    const top = a >> BigInt(this.linearWidth - 1);
    return top === 0n || top === U64 >> BigInt(this.linearWidth - 1);
  }
}
