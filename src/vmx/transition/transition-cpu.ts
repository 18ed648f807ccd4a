// What VM entries and VM exits load and save: the processor state the guest-state and host-state areas describe,
// seen through a narrow interface. The real LP implements it (../lp-cpu.ts); tests use `FakeTransitionCpu`
// (../testing/fake-transition-cpu.ts). See SDM Vol. 3C, "Guest-State Area" and "Host-State Area".
import type { VmxCpu } from '../cpu-view.ts';
import type { VmcsAccess } from './vmcs-access.ts';
import type { ActiveVmcs } from '../vmcs.ts';

/** A segment register as VM entry and exit load and save it: access rights in the VMCS layout (bit 16 = unusable). */
export interface SegmentState {
  selector: number;
  base: bigint;
  limit: number;
  ar: number;
}
export type SegmentName = 'ES' | 'CS' | 'SS' | 'DS' | 'FS' | 'GS' | 'LDTR' | 'TR';
export const SEGMENT_NAMES: readonly SegmentName[] = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'];

/** An event as the processor delivers it through the IDT on behalf of VM entry (event injection). */
export interface InjectedEvent {
  /** Interruption type: 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged
   *  software exception, 6 software exception. */
  readonly type: 0 | 2 | 3 | 4 | 5 | 6;
  readonly vector: number;
  /** The error code pushed, or null when "deliver error code" is 0. */
  readonly errorCode: number | null;
  /**
   * VM-entry instruction length: for software interrupts and exceptions (types 4–6) the return address pushed
   * is RIP + this length, as if the INT n / INT3 / INTO / INT1 instruction had executed. 0 for other types.
   */
  readonly instructionLength: number;
}

/** The processor state VM transitions load and save, beyond what the VMX instructions need (`VmxCpu`). */
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
  /**
   * Optional: the RIP just loaded came from HOST_RIP (a VM exit or a VM-entry failure that loaded host state).
   * The real LP uses it to stop at host entry points without checking every instruction (src/machine/cpu.ts).
   */
  loadedHostRip?(): void;
  /** Guest activity state (0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI). See SDM Vol. 3C, "Guest Non-Register State". */
  activityState(): number;
  setActivityState(state: number): void;
  /**
   * Interruptibility state in the VMCS layout (bit 0 STI, 1 MOV SS, 2 SMI, 3 NMI blocking — virtual-NMI blocking
   * while `setVirtualNmis(true)` is in effect).
   */
  interruptibility(): number;
  setInterruptibility(value: number): void;
  /**
   * Optional: "virtual NMIs" in effect (VM entry, before the interruptibility state is loaded) or not (VM exit and
   * entry failure, before host state). See SDM Vol. 3C, "Guest Interruptibility State" and "Virtual NMIs".
   */
  setVirtualNmis?(on: boolean): void;
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
  /**
   * Optional fast paths (the real LP: ../lp-transfer.ts): move the register state of a VM exit or entry — control
   * registers through RFLAGS — between the LP and the processor's cached VMCS directly, with the same result as
   * the code in exit/save-guest.ts, transition/load-host.ts and entry/load-guest.ts that does it through the
   * methods above. They return false when not taken; the caller then does it itself.
   */
  saveGuestRegistersDirect?(vmcs: ActiveVmcs, guestRip: bigint | undefined): boolean;
  loadHostRegistersDirect?(vmcs: ActiveVmcs): boolean;
  loadGuestRegistersDirect?(vmcs: ActiveVmcs, entryCtls: number): boolean;
}

/** What every VM transition acts on: the LP, the current VMCS, and the current-VMCS pointer (for a VMX abort). */
export interface TransitionContext {
  readonly cpu: VmTransitionCpu;
  readonly vmcs: VmcsAccess;
  /** Physical address of the current VMCS region (a VMX abort writes its indicator there). */
  readonly vmcsPointer: bigint;
}
