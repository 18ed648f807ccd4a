// What the kernel checks and reports about code that runs on several CPUs.
//
// VMX state is per logical processor: VMXON, the current VMCS and its launch state belong to the CPU that ran the
// instruction. Code that runs a VMX instruction, reaches a sleep point with preemption enabled, and runs the next
// VMX instruction may be on another CPU by then — whose VMX state is not the one it set up. Real hardware answers
// with a #UD, a VMfailInvalid or a guest that runs with another CPU's host state, at random. Here the scheduler's
// choices are seeded, and the kernel says what happened.
// See SDM Vol. 3C, "VMX Operation" ("each logical processor"), "VMCS Life Cycle" and "Host-State Area".
import { TR, type LogicalProcessor } from '../machine/lp.ts';
import { GS } from '../x86/registers.ts';
import { hexLower } from '../util/hex.ts';
import { IMAGE, imageVa, perCpuOffset } from './boot.ts';

/** Vector of the IPI that on_each_cpu and smp_call_function_single send (Linux's CALL_FUNCTION_VECTOR). */
export const CALL_FUNCTION_VECTOR = 0xfb;

/** A scheduler migration of the current task at a sleep point. */
export interface Migration {
  readonly from: number;
  readonly to: number;
  /** The sleep point, e.g. "kmalloc(GFP_KERNEL)". */
  readonly at: string;
}

/**
 * The warning printed when a VMX instruction runs on another CPU than the task's previous VMX instruction, and the
 * scheduler moved the task in between. Null when nothing is wrong.
 */
export function vmxAfterMigration(mnemonic: string, cpu: number, lastVmxCpu: number, moves: readonly Migration[]): string | null {
  if (moves.length === 0 || cpu === lastVmxCpu) return null;
  const path = moves.map((m) => `CPU ${m.from} → CPU ${m.to} at ${m.at}`).join(', ');
  return [
    `BUG: ${mnemonic} on CPU ${cpu}, but this task's previous VMX instruction ran on CPU ${lastVmxCpu}: the scheduler moved it (${path}).`,
    `VMX state (VMXON, the current VMCS, its launch state) belongs to one logical processor; CPU ${cpu} does not have what CPU ${lastVmxCpu} set up.`,
    'Keep each CPU\'s VMX sequence on that CPU: get_cpu()/put_cpu() around it (and no sleeping allocation inside), or run it with on_each_cpu().',
  ].join('\n');
}

/**
 * The warning printed when a VMX instruction is issued through the HostCpu of another CPU than the task is on: the
 * code took `k.cpu()` and then migrated. The instruction runs where the task is, as on hardware.
 */
export function vmxThroughStaleHandle(mnemonic: string, handleCpu: number, cpu: number, moves: readonly Migration[]): string {
  const path = moves.length === 0 ? '' : ` The scheduler moved it: ${moves.map((m) => `CPU ${m.from} → CPU ${m.to} at ${m.at}`).join(', ')}.`;
  return `BUG: ${mnemonic} through the HostCpu of CPU ${handleCpu}, but this task runs on CPU ${cpu}: the instruction runs on CPU ${cpu}.${path} k.cpu() names the current CPU only while preemption is disabled.`;
}

/**
 * The per-CPU addresses a CPU's own host state holds (Linux: the GDT, the TSS, GS.base → the per-CPU area), as
 * the LP holds them (signed numbers). The kernel computes them once per CPU; a VM exit compares three numbers.
 */
export function ownHostBases(cpu: number): { readonly gdtr: number; readonly tr: number; readonly gs: number } {
  const sn = (va: bigint) => Number(BigInt.asIntN(64, va));
  return {
    gdtr: sn(imageVa(perCpuOffset(cpu, IMAGE.PERCPU_GDT))),
    tr: sn(imageVa(perCpuOffset(cpu, IMAGE.PERCPU_TSS))),
    gs: sn(imageVa(perCpuOffset(cpu, 0))),
  };
}

/** True when `lp`'s GDTR, TR and GS bases are those of `own` (the check every VM exit makes). */
export function hasOwnHostBases(lp: LogicalProcessor, own: { readonly gdtr: number; readonly tr: number; readonly gs: number }): boolean {
  return lp.gdtrBase === own.gdtr && lp.segBase[TR] === own.tr && lp.segBase[GS] === own.gs;
}

/**
 * After a VM exit on `lp`: did it load another CPU's host state? A VM exit loads GDTR, TR and GS bases from the
 * host-state area; if that area was filled on CPU 0 and the VMCS runs on CPU 1, CPU 1 now uses CPU 0's GDT, TSS
 * (and so its interrupt stacks) and per-CPU data. Returns the report, or null when the bases are this CPU's.
 * See SDM Vol. 3C, "Loading Host Segment and Descriptor-Table Registers".
 */
export function foreignHostState(lp: LogicalProcessor, cpuCount: number): string | null {
  const own = ownHostBases(lp.id);
  const now = { gdtr: lp.gdtrBase, tr: lp.segBase[TR]!, gs: lp.segBase[GS]! };
  const wrong = (['gdtr', 'tr', 'gs'] as const).filter((k) => now[k] !== own[k]);
  if (wrong.length === 0) return null;
  const field = { gdtr: 'HOST_GDTR_BASE', tr: 'HOST_TR_BASE', gs: 'HOST_GS_BASE' } as const;
  const owner = (k: 'gdtr' | 'tr' | 'gs') => {
    for (let c = 0; c < cpuCount; c++) if (ownHostBases(c)[k] === now[k]) return `CPU ${c}'s`;
    return 'no CPU\'s';
  };
  const details = wrong.map((k) => `${field[k]} = ${hexLower(BigInt.asUintN(64, BigInt(now[k])))} (${owner(k)}, not CPU ${lp.id}'s ${hexLower(BigInt.asUintN(64, BigInt(own[k])))})`);
  return [
    `BUG: a VM exit on CPU ${lp.id} loaded another CPU's host state: ${details.join('; ')}.`,
    'The host-state area was written on one CPU and the VMCS runs on another: write HOST_* fields on the CPU that launches the VMCS, from that CPU\'s own registers.',
  ].join('\n');
}
