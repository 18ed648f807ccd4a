// Exercise 8.3 — find the migration bug. This is chapter 4's first launch on an SMP host. Chapter 4 wrapped its
// whole init in preempt_disable, and a debug kernel (CONFIG_DEBUG_ATOMIC_SLEEP) reported that as a bug: vmxOn,
// allocVmcs and buildGuest allocate with GFP_KERNEL, which may sleep, and sleeping with preemption disabled is not
// allowed. Someone "fixed" the report by deleting the preempt_disable. Now insmod works on one CPU, and on an SMP
// host it fails for some seeds and not for others, with a #UD or a VMfailInvalid in the middle of the launch.
// Read chapters/08-smp/README.md, sections "Sleep points and migration" and "Pinning a VMX sequence", then
// run the tests and read dmesg: the kernel names the sleep point that moved the task.
// TODO: fix init (and only init; the teardown and the exit handler are given and correct): no GFP_KERNEL
// allocation between get_cpu() and put_cpu(), and no VMX instruction outside them. Exercises 8.1 (vmxOnThisCpu)
// and 8.2 (vmxOffThisCpu) have the pieces you need.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel, KernelModule } from '../../src/kernel/kernel.ts';
import { EIO, ENOMEM } from '../../src/kernel/errno.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { vmxOn } from '../01-vmxon/vmxon.ts';
import { freeVmxRegion } from '../01-vmxon/vmxon-region.ts';
import { allocVmcs, loadVmcs } from '../02-vmcs/vmcs-region.ts';
import { describeVmxError, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { firstLaunchControls, writeControls } from '../04-first-launch/controls.ts';
import { describeLaunch, diagnoseLaunch } from '../04-first-launch/diagnose.ts';
import { buildGuest, freeGuest, FIRST_GUEST, writeGuestState, type GuestImage } from '../04-first-launch/guest-state.ts';
import { writeHostState } from '../04-first-launch/host-state.ts';
import { emulateCpuid } from '../04-first-launch/launch.ts';
import type { CpuVmx } from './per-cpu.ts';
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

  // ---- init: the bug is here ----
  function init(k: Kernel): number {
    const cpu = k.cpu();
    const on = vmxOn(k); // chapter 1: VMXON on this CPU (it allocates the region itself)
    if (!on.ok) {
      k.printk(`${MODULE}: ${on.error}`);
      return -EIO;
    }
    const vmcs = allocVmcs(k);
    const guest = buildGuest(k, FIRST_GUEST);
    const rip = k.hostEntry(`${MODULE}_vmexit`, vmexit);
    if (vmcs === null || guest === null) {
      k.printk(`${MODULE}: out of memory`);
      return -ENOMEM;
    }
    const vmx: CpuVmx = { cpu: cpu.id, vmxon: on.region, vmcs, on: true, setVmxe: true, loaded: false, error: null };
    launch = { vmx, guest, gdtLimit: cpu.sgdt().limit, idtLimit: cpu.sidt().limit };
    const fail = (errno: number, why: string): number => {
      k.printk(`${MODULE}: ${why}`);
      teardown(k, cpu);
      return errno;
    };
    const loaded = loadVmcs(cpu, vmcs);
    if (!loaded.ok) return fail(-EIO, `VMCLEAR/VMPTRLD: ${describeVmxError(loaded.error)}`);
    vmx.loaded = true;
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
