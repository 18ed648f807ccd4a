// Chapter 4's first launch, made safe to run on an SMP host. Chapter 4 wrapped its whole init in preempt_disable,
// and a debug kernel (CONFIG_DEBUG_ATOMIC_SLEEP) reports why that is wrong: vmxOn, allocVmcs and buildGuest
// allocate with GFP_KERNEL, which may sleep, and sleeping with preemption disabled is a bug. Dropping the
// preempt_disable silences that report and breaks something worse: every allocation between VMXON and VMLAUNCH
// is a point where the scheduler may move the task, and the rest of the sequence then runs on a CPU that has
// none of the VMX state the first part set up.
// The fix, as in KVM: everything that may sleep first, in process context; then pin the task to one CPU
// (get_cpu) for the VMX sequence, which allocates nothing; put_cpu after VMLAUNCH.
// See SDM Vol. 3C, "VMX Operation" and "VMCS Life Cycle", and Linux's Documentation/locking/preempt-locking.rst.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel, KernelModule } from '../../src/kernel/kernel.ts';
import { EIO, ENOMEM } from '../../src/kernel/errno.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from '../01-vmxon/vmxon-region.ts';
import { allocVmcs } from '../02-vmcs/vmcs-region.ts';
import { describeVmxError, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { firstLaunchControls, writeControls } from '../04-first-launch/controls.ts';
import { describeLaunch, diagnoseLaunch } from '../04-first-launch/diagnose.ts';
import { buildGuest, freeGuest, FIRST_GUEST, writeGuestState, type GuestImage } from '../04-first-launch/guest-state.ts';
import { writeHostState } from '../04-first-launch/host-state.ts';
import { emulateCpuid } from '../04-first-launch/launch.ts';
import { vmxOnThisCpu, type CpuVmx } from './per-cpu.ts';
import { vmxOffThisCpu } from './teardown.ts';

export const MODULE = 'pinned_launch';

/** What the module saw: where it launched, the exits, how it ended. */
export interface PinnedLaunchLog {
  /** The CPU the guest was launched on, or -1. */
  launchedOn: number;
  readonly exits: number[];
  /** The guest reached HLT and VMX is off again on its CPU. */
  halted: boolean;
}

export interface PinnedLaunch {
  readonly module: KernelModule;
  readonly log: PinnedLaunchLog;
}

/** One launch: the CPU's VMX state, the guest, the kernel's descriptor-table limits to restore after exits. */
interface Launch {
  readonly vmx: CpuVmx;
  readonly guest: GuestImage;
  gdtLimit: number;
  idtLimit: number;
}

export function createPinnedLaunch(): PinnedLaunch {
  const log: PinnedLaunchLog = { launchedOn: -1, exits: [], halted: false };
  let launch: Launch | null = null;

  // ---- given: teardown and the exit handler (they run on the guest's CPU, at HOST_RIP) ----
  function teardown(k: Kernel, cpu: HostCpu): void {
    if (launch === null) return;
    const l = launch;
    launch = null;
    vmxOffThisCpu(k, l.vmx);
    freeVmxRegion(k, l.vmx.vmxon);
    freeVmxRegion(k, l.vmx.vmcs);
    freeGuest(k, l.guest);
    cpu.lgdt(cpu.sgdt().base, l.gdtLimit);
    cpu.lidt(cpu.sidt().base, l.idtLimit);
    k.printk(`${MODULE}: cpu ${cpu.id}: VMX off`);
  }

  function vmexit(k: Kernel, cpu: HostCpu): void {
    const d = diagnoseLaunch(cpu, 'host-rip');
    if (d.kind !== 'vm-exit') {
      k.printk(`${MODULE}: ${describeLaunch(d)}`);
      teardown(k, cpu);
      return;
    }
    log.exits.push(d.reason);
    if (d.reason === EXIT_REASON.EXIT_REASON_HLT) {
      log.halted = true;
      teardown(k, cpu);
      return;
    }
    const r = d.reason === EXIT_REASON.EXIT_REASON_CPUID ? emulateCpuid(cpu) : null;
    if (r === null || !r.ok) {
      k.printk(`${MODULE}: ${r === null ? `unexpected ${describeLaunch(d)}` : describeVmxError(r.error)}; stopping the guest`);
      teardown(k, cpu);
      return;
    }
    cpu.vmresume();
    const again = diagnoseLaunch(cpu, 'fallthrough');
    if (again.kind !== 'no-vmfail') {
      k.printk(`${MODULE}: VMRESUME: ${describeLaunch(again)}`);
      teardown(k, cpu);
    }
  }

  // ---- init ----
  function init(k: Kernel): number {
    // Process context: everything that may sleep, before any VMX instruction. The task may move meanwhile;
    // nothing here belongs to a CPU.
    const vmxon = allocVmxonRegion(k);
    const vmcs = allocVmcs(k);
    const guest = buildGuest(k, FIRST_GUEST);
    const rip = k.hostEntry(`${MODULE}_vmexit`, vmexit);
    if (vmxon === null || vmcs === null || guest === null) {
      for (const r of [vmxon, vmcs]) if (r !== null) freeVmxRegion(k, r);
      if (guest !== null) freeGuest(k, guest);
      k.printk(`${MODULE}: out of memory`);
      return -ENOMEM;
    }
    // One CPU from VMXON to VMLAUNCH, and nothing in between that sleeps.
    const cpuId = k.get_cpu();
    try {
      return launchHere(k, { cpu: cpuId, vmxon, vmcs, on: false, setVmxe: false, loaded: false, error: null }, guest, rip);
    } finally {
      k.put_cpu();
    }
  }

  /** With preemption disabled: VMX on, the VMCS, VMLAUNCH — on this CPU only. */
  function launchHere(k: Kernel, vmx: CpuVmx, guest: GuestImage, rip: bigint): number {
    const cpu = k.cpu();
    launch = { vmx, guest, gdtLimit: cpu.sgdt().limit, idtLimit: cpu.sidt().limit };
    const fail = (errno: number, why: string): number => {
      k.printk(`${MODULE}: ${why}`);
      teardown(k, cpu);
      return errno;
    };
    vmxOnThisCpu(k, vmx);
    if (vmx.error !== null) return fail(-EIO, vmx.error);
    const controls = firstLaunchControls((msr) => cpu.rdmsr(msr));
    if (!controls.ok) return fail(-EIO, `this CPU cannot run the guest: ${controls.errors.map((e) => `${e.kind} bit ${e.bit} ${e.reason}`).join('; ')}`);
    const steps: [string, () => VmxResult<void>][] = [
      ['controls', () => writeControls(cpu, controls.controls)],
      ['host state', () => writeHostState(k, cpu, { rip, rsp: k.kernelStackTop(cpu.id) })],
      ['guest state', () => writeGuestState(k, cpu, guest)],
    ];
    for (const [what, step] of steps) {
      const r = step();
      if (!r.ok) return fail(-EIO, `writing the ${what}: ${describeVmxError(r.error)}`);
    }
    cpu.vmlaunch();
    const d = diagnoseLaunch(cpu, 'fallthrough');
    if (d.kind !== 'no-vmfail') return fail(-EIO, `VMLAUNCH: ${describeLaunch(d)}`);
    log.launchedOn = cpu.id;
    k.printk(`${MODULE}: cpu ${cpu.id}: guest launched`);
    return 0;
  }

  function exit(k: Kernel): void {
    if (launch !== null) k.printk(`${MODULE}: cpu ${launch.vmx.cpu}: the guest is still running; VMX stays on`);
  }

  return { module: { name: MODULE, init, exit }, log };
}
