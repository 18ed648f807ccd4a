// What VM entry and VM exit need from the rest of the machine: the VMCS being entered, the capability MSRs, and the
// logical processor. These are the narrow views VMLAUNCH/VMRESUME hands to `vmEntry`.
import type { VmxCpu } from '../cpu-view.ts';
import type { VmxCapabilities } from '../capabilities.ts';
import type { ActiveVmcs } from '../vmcs.ts';
import { VMCS_SLOT } from '../vmcs.ts';
import type { InjectedEvent } from './inject.ts';

/**
 * The current VMCS, by Linux field name. Values are raw, zero-extended to 64 bits (a 16-bit selector reads as
 * 0n..0xFFFFn). Writes of read-only (VM-exit information) fields are allowed here: this is the processor writing.
 */
export interface VmcsAccess {
  read(field: string): bigint;
  write(field: string, value: bigint): void;
  /** Optional fast path: bits 31:0 of a field as an unsigned number, without creating a BigInt. */
  read32?(field: string): number;
  /** Optional fast path: write a 16/32-bit field (truncated to its width) from a number. */
  write32?(field: string, value: number): void;
}

/** Write a 16/32-bit field from a number, through the fast path when the accessor has one. */
export function writeField32(vmcs: VmcsAccess, field: string, value: number): void {
  if (vmcs.write32) vmcs.write32(field, value);
  else vmcs.write(field, BigInt(value >>> 0));
}
/** Read bits 31:0 of a field as a number, through the fast path when the accessor has one. */
export function readField32(vmcs: VmcsAccess, field: string): number {
  return vmcs.read32 ? vmcs.read32(field) : Number(vmcs.read(field) & 0xffffffffn);
}

/** The `VmcsAccess` view of an active VMCS cache entry (the current VMCS of an LP). */
export function vmcsAccessOf(vmcs: ActiveVmcs): VmcsAccess {
  return {
    read: (field) => vmcs.readByName(field) ?? 0n,
    write: (field, value) => void vmcs.writeByName(field, value),
    read32: (field) => {
      const slot = VMCS_SLOT[field];
      return slot === undefined ? 0 : vmcs.readLow(slot) >>> 0;
    },
    write32: (field, value) => {
      const slot = VMCS_SLOT[field];
      if (slot !== undefined) vmcs.writeLow(slot, value);
    },
  };
}

/** A segment register as VM entry and exit load and save it: access rights in the VMCS layout (bit 16 = unusable). */
export interface SegmentState {
  selector: number;
  base: bigint;
  limit: number;
  ar: number;
}
export type SegmentName = 'ES' | 'CS' | 'SS' | 'DS' | 'FS' | 'GS' | 'LDTR' | 'TR';
export const SEGMENT_NAMES: readonly SegmentName[] = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'];

/**
 * What VM entries and VM exits load and save beyond `VmxCpu`: the processor state the guest-state and host-state
 * areas describe. See SDM Vol. 3C, "Guest-State Area" and "Host-State Area". The real LP implements this;
 * tests use `FakeTransitionCpu` (../testing/fake-transition-cpu.ts).
 */
export interface VmTransitionCpu extends VmxCpu {
  readCr3(): bigint;
  /** Load CR0/CR3/CR4 as VM transitions do: no #GP checks (the VMCS was checked), TLB effects as for MOV to CR. */
  loadCr0(value: bigint): void;
  loadCr3(value: bigint): void;
  loadCr4(value: bigint): void;
  readDr7(): bigint;
  loadDr7(value: bigint): void;
  /** RDMSR at CPL 0 without raising: the value, or null if RDMSR would raise #GP (e.g. an MSR the model lacks). */
  readMsr(index: number): bigint | null;
  /**
   * WRMSR at CPL 0 without raising: true if written, false if WRMSR would raise #GP (unknown MSR, reserved bits,
   * non-canonical address). Used for the MSR-load areas and for the MSRs in the guest/host-state areas.
   */
  writeMsr(index: number, value: bigint): boolean;
  readSegment(seg: SegmentName): SegmentState;
  loadSegment(seg: SegmentName, s: SegmentState): void;
  readDescriptorTable(table: 'GDTR' | 'IDTR'): { base: bigint; limit: number };
  loadDescriptorTable(table: 'GDTR' | 'IDTR', base: bigint, limit: number): void;
  readRip(): bigint;
  loadRip(value: bigint): void;
  /** Guest activity state (0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI). See SDM Vol. 3C, "Guest Non-Register State". */
  activityState(): number;
  setActivityState(state: number): void;
  /** Interruptibility state in the VMCS layout (bit 0 STI, 1 MOV SS, 2 SMI, 3 NMI blocking). */
  interruptibility(): number;
  setInterruptibility(value: number): void;
  /** Pending debug exceptions in the VMCS layout (B3–B0, enabled breakpoint, BS, RTM). */
  pendingDebugExceptions(): bigint;
  /**
   * Deliver an event through the IDT now, as event injection does (no exception-bitmap check for the event
   * itself; faults during delivery follow the usual rules). See SDM Vol. 3C, "Event Injection".
   */
  deliverEvent(event: InjectedEvent): void;
  setPendingDebugExceptions(value: bigint): void;
  /** Use these four PDPTEs for PAE paging (loaded by VM entry/exit instead of read from memory at CR3). */
  loadPdptes(pdptes: readonly bigint[]): void;
}

/** Everything `vmEntry` needs. */
export interface EntryContext {
  readonly cpu: VmTransitionCpu;
  readonly vmcs: VmcsAccess;
  /** The model's decoded capability MSRs (usually `cpu.caps`). */
  readonly caps: VmxCapabilities;
  readonly instruction: 'VMLAUNCH' | 'VMRESUME';
  /** Physical address of the current VMCS region (a VMX abort writes its indicator there). */
  readonly vmcsPointer: bigint;
}
