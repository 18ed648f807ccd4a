// Exercise 8.4 — the guest's own SMP start-up. A multiprocessor guest starts like a PC: one bootstrap processor runs, and it wakes
// each application processor with INIT, then a start-up IPI (SIPI) whose vector says where the AP begins, in real
// mode, at vector × 4 KiB. Here every vCPU runs on its own host CPU (vCPU n on CPU n, APIC ID n), launched halted.
// Three exits make the protocol work:
//  - WRMSR to the x2APIC ICR (830H) on the BSP: with "use MSR bitmaps" = 0 every WRMSR exits, so the hypervisor
//    sees the IPI the guest wants to send. It forwards INIT and start-up to the target's host CPU, through the
//    host's own local APIC, and skips the instruction.
//  - INIT (reason 3) on the AP: in VMX non-root operation an INIT only causes a VM exit; the processor does none
//    of what INIT normally does. The hypervisor gives the vCPU INIT's effect: the wait-for-SIPI activity state.
//  - SIPI (reason 4) on the AP, qualification = the vector: only a vCPU in wait-for-SIPI exits on a SIPI (in any
//    other state the SIPI is discarded). The hypervisor loads what a SIPI loads — CS = vector << 8, CS.base =
//    vector << 12, IP = 0 — and makes the vCPU active.
// See SDM Vol. 3C, "Other Causes of VM Exits", "Guest Non-Register State" and "Exit Qualification for ... SIPI",
// and SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems" and "Interrupt Command Register (ICR) in
// x2APIC Mode".
// Read chapters/08-smp/README.md, section "The guest's APs: INIT-SIPI-SIPI". The kit runs the guest: one real-mode
// vCPU per CPU under EPT and "unrestricted guest", the APs launched halted; your handlers get its WRMSR, INIT and
// SIPI exits.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { describeVmxError, vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { RESUME, SKIP, stop, type ExitAction } from '../05-exits/hypervisor.ts';

/** x2APIC ICR: one 64-bit MSR. */
export const MSR_X2APIC_ICR = 0x830;
/** ICR delivery modes (bits 10:8). */
export const DELIVERY_MODE = { FIXED: 0, LOWEST: 1, SMI: 2, NMI: 4, INIT: 5, STARTUP: 6 } as const;
/** GUEST_ACTIVITY_STATE values. */
export const ACTIVITY_ACTIVE = 0;
export const ACTIVITY_WAIT_FOR_SIPI = 3;

/** One IPI as the guest wrote it to its x2APIC ICR. */
export interface IcrCommand {
  /** Bits 7:0. */
  readonly vector: number;
  /** Bits 10:8. */
  readonly deliveryMode: number;
  /** Bit 14: assert (1) or de-assert (0). */
  readonly assert: boolean;
  /** Bits 19:18: 0 none, 1 self, 2 all including self, 3 all excluding self. */
  readonly shorthand: number;
  /** Bits 63:32: the destination's x2APIC ID. */
  readonly destination: number;
}

/** Decode the 64-bit x2APIC ICR value (EDX:EAX of the WRMSR). */
export function decodeX2apicIcr(value: bigint): IcrCommand {
  // TODO: the fields by their bit positions (see IcrCommand); destination is bits 63:32, unsigned.
  throw new Error('TODO: decodeX2apicIcr');
}

/** What a start-up IPI with `vector` loads: real-mode CS:IP = (vector << 8):0000, CS.base = vector << 12. */
export function sipiState(vector: number): { readonly csSelector: number; readonly csBase: number; readonly rip: number } {
  // TODO: only the low 8 bits of vector count.
  throw new Error('TODO: sipiState');
}

/** WRMSR exit (reason 32) on the BSP. */
export function onWrmsr(k: Kernel, cpu: HostCpu): ExitAction {
  // TODO: ECX (low 32 bits of RCX) must be MSR_X2APIC_ICR, else stop(...) naming the MSR. The value is EDX:EAX.
  // Only INIT and start-up are forwarded, only to one existing vCPU (shorthand 0, destination < num_online_cpus):
  // anything else stops the guest with a message that names what was refused. Forward with
  // k.apic_icr_write(ICR bits 31:0, destination) and SKIP the WRMSR.
  throw new Error('TODO: onWrmsr');
}

/** INIT exit (reason 3) on an AP: wait for the SIPI. */
export function onInit(cpu: HostCpu): ExitAction {
  // TODO: GUEST_ACTIVITY_STATE = ACTIVITY_WAIT_FOR_SIPI, then RESUME (an INIT exit is not caused by an
  // instruction: never SKIP it). A failed VMWRITE stops the guest.
  throw new Error('TODO: onInit');
}

/** SIPI exit (reason 4) on an AP: start it in real mode at the vector's page. */
export function onSipi(cpu: HostCpu, qualification: bigint): ExitAction {
  // TODO: the vector is bits 7:0 of the qualification; VMWRITE GUEST_CS_SELECTOR, GUEST_CS_BASE and GUEST_RIP from
  // sipiState, GUEST_ACTIVITY_STATE = ACTIVITY_ACTIVE, RESUME. A failed VMWRITE stops the guest.
  throw new Error('TODO: onSipi');
}
