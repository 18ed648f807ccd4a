// The guest's own SMP start-up. A multiprocessor guest starts like a PC: one bootstrap processor runs, and it wakes
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

const field = (v: bigint, shift: number, bits: number): number => Number((v >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n));

/** Decode the 64-bit x2APIC ICR value (EDX:EAX of the WRMSR). */
export function decodeX2apicIcr(value: bigint): IcrCommand {
  return {
    vector: field(value, 0, 8),
    deliveryMode: field(value, 8, 3),
    assert: field(value, 14, 1) === 1,
    shorthand: field(value, 18, 2),
    destination: field(value, 32, 32),
  };
}

/** What a start-up IPI with `vector` loads: real-mode CS:IP = (vector << 8):0000, CS.base = vector << 12. */
export function sipiState(vector: number): { readonly csSelector: number; readonly csBase: number; readonly rip: number } {
  const v = vector & 0xff;
  return { csSelector: v << 8, csBase: v << 12, rip: 0 };
}

/** WRMSR exit (reason 32) on the BSP. */
export function onWrmsr(k: Kernel, cpu: HostCpu): ExitAction {
  // WRMSR takes the MSR number in ECX and the value in EDX:EAX; bits 63:32 of RCX, RDX and RAX are ignored.
  const msr = Number(cpu.readGpr('rcx') & 0xffffffffn);
  if (msr !== MSR_X2APIC_ICR) return stop(`WRMSR to MSR 0x${msr.toString(16)}: this hypervisor handles only the x2APIC ICR (830H)`);
  const value = ((cpu.readGpr('rdx') & 0xffffffffn) << 32n) | (cpu.readGpr('rax') & 0xffffffffn);
  const icr = decodeX2apicIcr(value);
  if (icr.deliveryMode !== DELIVERY_MODE.INIT && icr.deliveryMode !== DELIVERY_MODE.STARTUP) {
    return stop(`ICR delivery mode ${icr.deliveryMode}: this hypervisor forwards only INIT (5) and start-up (6)`);
  }
  if (icr.shorthand !== 0 || icr.destination >= k.num_online_cpus()) {
    return stop(`ICR destination ${icr.shorthand !== 0 ? `shorthand ${icr.shorthand}` : `APIC ID ${icr.destination}`}: there is no vCPU there`);
  }
  // vCPU n runs on host CPU n, whose APIC ID is n: the guest's destination is the host's. The host APIC sends the
  // real INIT or SIPI; the target CPU is in VMX non-root operation, so it becomes an INIT or SIPI exit there.
  k.apic_icr_write(Number(value & 0xffffffffn), icr.destination);
  return SKIP;
}

/** INIT exit (reason 3) on an AP: wait for the SIPI. */
export function onInit(cpu: HostCpu): ExitAction {
  const w = vmwrite(cpu, 'GUEST_ACTIVITY_STATE', ACTIVITY_WAIT_FOR_SIPI);
  return w.ok ? RESUME : stop(`VMWRITE GUEST_ACTIVITY_STATE: ${describeVmxError(w.error)}`);
}

/** SIPI exit (reason 4) on an AP: start it in real mode at the vector's page. */
export function onSipi(cpu: HostCpu, qualification: bigint): ExitAction {
  // Bits 7:0 of the exit qualification hold the SIPI's vector; the rest are 0.
  const s = sipiState(Number(qualification & 0xffn));
  const writes: [string, () => VmxResult<void>][] = [
    ['GUEST_CS_SELECTOR', () => vmwrite(cpu, 'GUEST_CS_SELECTOR', s.csSelector)],
    ['GUEST_CS_BASE', () => vmwrite(cpu, 'GUEST_CS_BASE', BigInt(s.csBase))],
    ['GUEST_RIP', () => vmwrite(cpu, 'GUEST_RIP', BigInt(s.rip))],
    ['GUEST_ACTIVITY_STATE', () => vmwrite(cpu, 'GUEST_ACTIVITY_STATE', ACTIVITY_ACTIVE)],
  ];
  for (const [name, w] of writes) {
    const r = w();
    if (!r.ok) return stop(`VMWRITE ${name}: ${describeVmxError(r.error)}`);
  }
  return RESUME;
}
