// The first hypervisor that runs a guest: a kernel module whose init turns VMX on, builds a VMCS and launches a
// small 64-bit guest; whose VM-exit handler (at HOST_RIP) answers CPUID and, when the guest executes HLT, turns
// VMX off again and gives the CPU back to the kernel.
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

  /** VMCLEAR, VMXOFF, free everything, and put back what the VM exits changed. Runs on ctx.cpu. */
  function teardown(k: Kernel, cpu: HostCpu): void {
    if (ctx === null) return;
    const c = ctx;
    ctx = null;
    // VMCLEAR writes the VMCS data back to memory and makes it inactive: only then may the region be freed.
    // See SDM Vol. 3C, "VMCS Life Cycle".
    if (c.vmcs !== null) cpu.vmclear(c.vmcs.pa);
    vmxOff(k, c.vmxon);
    if (c.vmcs !== null) freeVmcs(k, c.vmcs);
    if (c.guest !== null) freeGuest(k, c.guest);
    // A VM exit loaded GDTR and IDTR with limit FFFFH; the kernel expects its own limits back.
    // See SDM Vol. 3C, "Loading Host Segment and Descriptor-Table Registers".
    const gdtr = cpu.sgdt();
    const idtr = cpu.sidt();
    cpu.lgdt(gdtr.base, c.gdtLimit);
    cpu.lidt(idtr.base, c.idtLimit);
    k.printk(`${MODULE}: cpu ${cpu.id}: VMX off`);
  }

  /** The handler at HOST_RIP: one call per VM exit (or failed VM entry). */
  function vmexit(k: Kernel, cpu: HostCpu): void {
    const d = diagnoseLaunch(cpu, 'host-rip');
    if (d.kind !== 'vm-exit') {
      log.failure = d;
      k.printk(`${MODULE}: ${describeLaunch(d)}`);
      teardown(k, cpu);
      return;
    }
    log.exits.push(d.reason);
    switch (d.reason) {
      case EXIT_REASON.EXIT_REASON_CPUID: {
        const r = emulateCpuid(cpu);
        if (!r.ok) {
          k.printk(`${MODULE}: CPUID exit: ${describeVmxError(r.error)}`);
          teardown(k, cpu);
          return;
        }
        break;
      }
      case EXIT_REASON.EXIT_REASON_HLT:
        k.printk(`${MODULE}: guest halted after ${log.exits.length} exits`);
        log.halted = true;
        teardown(k, cpu);
        return;
      default:
        k.printk(`${MODULE}: unexpected ${describeLaunch(d)}; stopping the guest`);
        teardown(k, cpu);
        return;
    }
    cpu.vmresume();
    // VMRESUME only comes back here if it failed.
    const again = diagnoseLaunch(cpu, 'fallthrough');
    if (again.kind !== 'no-vmfail') {
      log.failure = again;
      k.printk(`${MODULE}: VMRESUME: ${describeLaunch(again)}`);
      teardown(k, cpu);
    }
  }

  function init(k: Kernel): number {
    // Everything below belongs to one CPU: no migration until the guest runs.
    k.preempt_disable();
    try {
      return launch(k);
    } finally {
      k.preempt_enable();
    }
  }

  function launch(k: Kernel): number {
    const cpu = k.cpu();
    const on = vmxOn(k);
    if (!on.ok) {
      k.printk(`${MODULE}: ${on.error}`);
      return -EIO;
    }
    const c: VmxContext = { cpu: cpu.id, vmxon: on.region, vmcs: null, guest: null, gdtLimit: cpu.sgdt().limit, idtLimit: cpu.sidt().limit };
    ctx = c;
    const fail = (errno: number, why: string): number => {
      k.printk(`${MODULE}: ${why}`);
      teardown(k, cpu);
      return errno;
    };

    c.vmcs = allocVmcs(k);
    if (c.vmcs === null) return fail(-ENOMEM, 'cannot allocate the VMCS');
    const loaded = loadVmcs(cpu, c.vmcs);
    if (!loaded.ok) return fail(-EIO, `VMCLEAR/VMPTRLD: ${describeVmxError(loaded.error)}`);

    const controls = firstLaunchControls((msr) => cpu.rdmsr(msr));
    if (!controls.ok) {
      const bits = controls.errors.map((e) => `${e.kind} bit ${e.bit}${e.name !== undefined ? ` (${e.name})` : ''} ${e.reason}`);
      return fail(-EIO, `this CPU cannot run the guest: ${bits.join('; ')}`);
    }
    c.guest = buildGuest(k, opts.guest ?? FIRST_GUEST);
    if (c.guest === null) return fail(-ENOMEM, 'cannot allocate the guest');

    const rip = k.hostEntry(`${MODULE}_vmexit`, vmexit);
    const steps: [string, () => VmxResult<void>][] = [
      ['controls', () => writeControls(cpu, controls.controls)],
      ['host state', () => writeHostState(k, cpu, { rip, rsp: k.kernelStackTop(cpu.id) })],
      ['guest state', () => writeGuestState(k, cpu, c.guest!)],
    ];
    for (const [what, step] of steps) {
      const r = step();
      if (!r.ok) return fail(-EIO, `writing the ${what}: ${describeVmxError(r.error)}`);
    }

    cpu.vmlaunch();
    // Only a VMfail comes back here; a successful entry runs the guest, a failed one goes to HOST_RIP.
    const d = diagnoseLaunch(cpu, 'fallthrough');
    if (d.kind !== 'no-vmfail') {
      log.failure = d;
      return fail(-EIO, `VMLAUNCH: ${describeLaunch(d)}`);
    }
    k.printk(`${MODULE}: cpu ${cpu.id}: guest launched at ${c.guest.rip.toString(16)}`);
    return 0;
  }

  function exit(k: Kernel): void {
    if (ctx === null) return;
    // The guest still owns its CPU: only a VM exit gives it back, and this module has no way to force one
    // (chapter 8 uses an IPI, chapter 9 the preemption timer). Say so rather than VMXOFF from the outside.
    k.printk(`${MODULE}: cpu ${ctx.cpu}: the guest is still running; VMX stays on`);
  }

  return { module: { name: MODULE, init, exit }, log };
}

/**
 * CPUID exits unconditionally: execute it for the guest with the host's CPUID (a real hypervisor would filter
 * the result), put the answer in the guest's RAX–RDX and skip the instruction. The instruction length is
 * defined for exits caused by instructions, so VM_EXIT_INSTRUCTION_LEN is valid here.
 * See SDM Vol. 3C, "VM-Exit Instruction Length".
 */
export function emulateCpuid(cpu: HostCpu): VmxResult<void> {
  // The guest's general-purpose registers (except RSP and RIP) are still in the register file after a VM exit.
  const leaf = Number(cpu.readGpr('rax') & 0xffffffffn);
  const subleaf = Number(cpu.readGpr('rcx') & 0xffffffffn);
  const r = cpu.cpuid(leaf, subleaf);
  // In 64-bit mode CPUID clears bits 63:32 of RAX, RBX, RCX and RDX.
  cpu.writeGpr('rax', BigInt(r.eax >>> 0));
  cpu.writeGpr('rbx', BigInt(r.ebx >>> 0));
  cpu.writeGpr('rcx', BigInt(r.ecx >>> 0));
  cpu.writeGpr('rdx', BigInt(r.edx >>> 0));
  const rip = vmread(cpu, 'GUEST_RIP');
  if (!rip.ok) return rip;
  const len = vmread(cpu, 'VM_EXIT_INSTRUCTION_LEN');
  if (!len.ok) return len;
  return vmwrite(cpu, 'GUEST_RIP', rip.value + BigInt(len.value));
}
