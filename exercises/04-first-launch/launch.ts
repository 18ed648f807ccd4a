// Exercise 4.5 — the first hypervisor that runs a guest: a kernel module whose init turns VMX on, builds a VMCS
// and launches a small 64-bit guest; whose VM-exit handler (at HOST_RIP) answers CPUID and, when the guest
// executes HLT, turns VMX off again and gives the CPU back to the kernel.
// Read chapters/04-first-launch/README.md, section "The first-launch module". Use your exercises 1.4, 2.x, 4.1–4.4.
// See SDM Vol. 3C, "VMLAUNCH/VMRESUME—Launch/Resume Virtual Machine", "VM Exits", "Loading Host State" and
// "Instructions That Cause VM Exits Unconditionally".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel, KernelModule } from '../../src/kernel/kernel.ts';
import { EIO, ENOMEM } from '../../src/kernel/errno.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { vmxOff, vmxOn } from '../01-vmxon/vmxon.ts';
import { allocVmcs, freeVmcs, loadVmcs, type VmxRegion } from '../02-vmcs/vmcs-region.ts';
import { describeVmxError, vmread, vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { firstLaunchControls, writeControls } from './controls.ts';
import { describeLaunch, diagnoseLaunch, type LaunchDiagnosis } from './diagnose.ts';
import { buildGuest, freeGuest, FIRST_GUEST, writeGuestState, type GuestImage } from './guest-state.ts';
import { writeHostState } from './host-state.ts';

/** What the module saw, for its user (and the tests). */
export interface LaunchLog {
  /** Basic exit reasons the handler received, in order. */
  readonly exits: number[];
  /** Why the launch failed (a VMfail in init, or a VM-entry failure at HOST_RIP); null if it did not. */
  failure: LaunchDiagnosis | null;
  /** The guest reached HLT and VMX is off again. */
  halted: boolean;
}

export interface FirstLaunch {
  readonly module: KernelModule;
  readonly log: LaunchLog;
}

/** Everything that must be undone on this CPU, in reverse order of setup. */
interface VmxContext {
  cpu: number;
  vmxon: VmxRegion;
  vmcs: VmxRegion | null;
  guest: GuestImage | null;
  /** The descriptor-table limits to restore: a VM exit sets both to FFFFH. */
  gdtLimit: number;
  idtLimit: number;
}

const MODULE = 'first_launch';

/** A module that runs `guest` (default: FIRST_GUEST) once on the CPU that loads it. */
export function createFirstLaunch(opts: { guest?: string } = {}): FirstLaunch {
  const log: LaunchLog = { exits: [], failure: null, halted: false };
  let ctx: VmxContext | null = null;

  /**
   * VMCLEAR the VMCS, vmxOff, free the VMCS and the guest, and put the kernel's GDTR/IDTR limits back (a VM exit
   * set them to FFFFH): cpu.lgdt(base, limit) / cpu.lidt(base, limit). Safe to call twice.
   */
  function teardown(k: Kernel, cpu: HostCpu): void {
    // TODO
    throw new Error('TODO: teardown');
  }

  /**
   * The handler at HOST_RIP. diagnoseLaunch(cpu, 'host-rip'): on a VM-entry failure record it in log.failure,
   * printk it and tear down. Otherwise push the basic reason on log.exits and:
   *  - CPUID: emulateCpuid, then VMRESUME (and check how it fell through);
   *  - HLT: log.halted = true, teardown;
   *  - anything else: printk, teardown.
   */
  function vmexit(k: Kernel, cpu: HostCpu): void {
    // TODO
    throw new Error('TODO: vmexit');
  }

  /**
   * module_init: with preemption disabled, vmxOn, allocate and load a VMCS, firstLaunchControls (printk the
   * refused bits and fail if any), buildGuest(k, opts.guest ?? FIRST_GUEST), a host entry point for vmexit
   * (k.hostEntry), writeControls, writeHostState (HOST_RSP: k.kernelStackTop(cpu.id)), writeGuestState, VMLAUNCH,
   * diagnoseLaunch(cpu, 'fallthrough'). Return 0, or -EIO/-ENOMEM after printk and teardown.
   */
  function init(k: Kernel): number {
    // TODO
    throw new Error('TODO: init');
  }

  function exit(k: Kernel): void {
    if (ctx === null) return;
    // The guest still owns its CPU: only a VM exit gives it back, and this module has no way to force one
    // (a later chapter uses an IPI or the preemption timer). Say so rather than VMXOFF from the outside.
    k.printk(`${MODULE}: cpu ${ctx.cpu}: the guest is still running; VMX stays on`);
  }

  return { module: { name: MODULE, init, exit }, log };
}

/**
 * CPUID exits unconditionally: run it for the guest with the host's cpu.cpuid(EAX, ECX), put the answer in the
 * guest's RAX–RDX (cpu.readGpr/writeGpr: the guest's general registers stay in the register file on a VM exit)
 * with bits 63:32 clear, and advance GUEST_RIP by VM_EXIT_INSTRUCTION_LEN — defined for exits caused by
 * instructions. See SDM Vol. 3C, "VM-Exit Instruction Length".
 */
export function emulateCpuid(cpu: HostCpu): VmxResult<void> {
  // TODO
  throw new Error('TODO: emulateCpuid');
}
