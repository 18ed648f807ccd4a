// Test support for chapter 8 (imported by the tests only, never by learner code): an SMP host booted the way the
// chapter's tests need it — a debug kernel (CONFIG_DEBUG_ATOMIC_SLEEP, so sleeping with preemption disabled is
// reported) with a seeded scheduler — and views of every CPU's VMX state read from the CPU itself, never from the
// learner's bookkeeping.
import { bootHost, explain, type Host } from '../../src/kernel/testing/reference-vm.ts';
import { CPU_MODELS, DEFAULT_CPU_MODEL } from '../../src/machine/cpu-model.ts';
import { CR4 } from '../../src/x86/control-registers.ts';

export { CPU_MODELS, explain, type Host };

/** The CPU counts and seeds every exercise runs on (the default model); every other model runs at 2 CPUs, each with its own seed. */
export const CPU_COUNTS = [1, 2, 4] as const;
export const SEEDS = [1, 2, 3, 4, 5, 6] as const;
export const DEFAULT_MODEL = DEFAULT_CPU_MODEL.name;

/** The runs of a test: (model, cpus, seed). */
export function smpRuns(): { model: string; cpus: number; seed: number }[] {
  const runs: { model: string; cpus: number; seed: number }[] = [];
  for (const cpus of CPU_COUNTS) for (const seed of SEEDS) runs.push({ model: DEFAULT_MODEL, cpus, seed });
  CPU_MODELS.filter((m) => m.name !== DEFAULT_MODEL).forEach((m, i) => runs.push({ model: m.name, cpus: 2, seed: 101 + i }));
  return runs;
}

/** A host with `cpus` CPUs, a debug kernel and the scheduler seeded with `seed`. */
export function bootSmp(opts: { model?: string; cpus: number; seed?: number }): Host {
  return bootHost({ model: opts.model ?? DEFAULT_MODEL, cpus: opts.cpus, seed: opts.seed ?? 1, debugAtomicSleep: true, ramMiB: 64 });
}

/** One CPU's VMX state as the processor holds it. */
export interface CpuVmxView {
  readonly inVmx: boolean;
  readonly vmxonPointer: bigint | null;
  /** The current-VMCS pointer, or null. */
  readonly current: bigint | null;
  /** VMCSs active on the CPU (VMPTRLDed, not VMCLEARed). */
  readonly active: readonly bigint[];
  readonly cr4Vmxe: boolean;
}

export function vmxViews(host: Host): CpuVmxView[] {
  return host.vmx.map((u, i) => ({
    inVmx: u.state.inVmxOperation,
    vmxonPointer: u.state.vmxonPointer,
    current: u.state.current?.pa ?? null,
    active: u.state.active.map((v) => v.pa),
    cr4Vmxe: (host.machine.cpus[i]!.readCr4() & BigInt(CR4.VMXE)) !== 0n,
  }));
}

/** The kernel's BUG and WARNING reports (with the line after each, which says where). */
export function kernelBugs(host: Host): string[] {
  return host.kernel.dmesg().split('\n').filter((l) => /BUG|WARNING|Oops|general protection|invalid opcode/.test(l));
}

/** "model X, N CPUs, seed S" — for messages. */
export function runName(r: { model: string; cpus: number; seed: number }): string {
  return `model ${r.model}, ${r.cpus} CPU(s), seed ${r.seed}`;
}
