// Test support for chapter 8 (imported by the tests only, never by learner code): an SMP host booted the way the
// chapter's tests need it — a debug kernel (CONFIG_DEBUG_ATOMIC_SLEEP, so sleeping with preemption disabled is
// reported) with a seeded scheduler — and views of every CPU's VMX state read from the CPU itself, never from the
// learner's bookkeeping.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { bootHost, explain, read, write, type Host } from '../../src/kernel/testing/reference-vm.ts';
import { SMP_GUEST_LAYOUT, allocGuestMemory, canRunMpGuest, launchMpVcpus, loadSmpPrograms } from '../../src/kernel/testing/smp-guest.ts';
import { CPU_MODELS, DEFAULT_CPU_MODEL } from '../../src/machine/cpu-model.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { CR4 } from '../../src/x86/control-registers.ts';

export { CPU_MODELS, SMP_GUEST_LAYOUT, explain, type Host };

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

// ---------------------------------------------------------------------------------------------------------------
// Exercise 8.4: the kit runs an MP guest (src/kernel/testing/smp-guest.ts) and hands its exits to your handlers.
// ---------------------------------------------------------------------------------------------------------------

/** What a handler returns (chapter 5's ExitAction, structurally). */
export type KitAction = { readonly kind: 'resume' } | { readonly kind: 'skip' } | { readonly kind: 'stop'; readonly why: string };

export interface ApHandlers {
  onWrmsr(k: Kernel, cpu: HostCpu): KitAction;
  onInit(cpu: HostCpu): KitAction;
  onSipi(cpu: HostCpu, qualification: bigint): KitAction;
}

/** One VM exit of one vCPU, as the kit saw it, and what the handler answered. */
export interface ApExit {
  readonly reason: number;
  readonly qualification: bigint;
  readonly activity: number;
  readonly csSelector: number;
  readonly csBase: bigint;
  readonly rip: bigint;
  answer: string;
}

export interface MpRun {
  readonly host: Host;
  readonly exits: ApExit[][];
  /** APs that checked in (the guest's counter). */
  readonly counter: number;
  /** Offset of the AP program's HLT from its CS base. */
  readonly apHalt: number;
  /** Why a handler stopped a vCPU (null: none did), per CPU. */
  readonly stopped: (string | null)[];
  why(): string;
}

/** Models whose VMX can run the MP guest: EPT, unrestricted guest, the HLT and wait-for-SIPI activity states. */
export const MP_MODELS = CPU_MODELS.filter(canRunMpGuest).map((m) => m.name);

/**
 * Boot `cpus` CPUs, launch one real-mode vCPU on each (the kit's VMCS; APs halted, the BSP at its program), and
 * run the guest with `handlers` answering WRMSR, INIT and SIPI exits; HLT stops a vCPU.
 */
export function runMpGuest(handlers: ApHandlers, opts: { cpus: number; seed?: number; model?: string }): MpRun {
  const host = bootSmp({ cpus: opts.cpus, seed: opts.seed, model: opts.model });
  const k = host.kernel;
  const mem = allocGuestMemory(k);
  const { apLabels } = loadSmpPrograms(k, mem, opts.cpus - 1);
  const exits: ApExit[][] = Array.from({ length: opts.cpus }, () => []);
  const stopped: (string | null)[] = Array.from({ length: opts.cpus }, () => null);
  const rip = k.hostEntry('kit_mp_exit', (_k, cpu) => {
    const reason = Number(read(cpu, 'VM_EXIT_REASON') & 0xffffn);
    const qualification = read(cpu, 'EXIT_QUALIFICATION');
    const e: ApExit = {
      reason, qualification, activity: Number(read(cpu, 'GUEST_ACTIVITY_STATE')),
      csSelector: Number(read(cpu, 'GUEST_CS_SELECTOR')), csBase: read(cpu, 'GUEST_CS_BASE'), rip: read(cpu, 'GUEST_RIP'), answer: '',
    };
    exits[cpu.id]!.push(e);
    let action: KitAction;
    if (reason === EXIT_REASON.EXIT_REASON_MSR_WRITE) action = handlers.onWrmsr(k, cpu);
    else if (reason === EXIT_REASON.EXIT_REASON_INIT_SIGNAL) action = handlers.onInit(cpu);
    else if (reason === EXIT_REASON.EXIT_REASON_SIPI_SIGNAL) action = handlers.onSipi(cpu, qualification);
    else if (reason === EXIT_REASON.EXIT_REASON_HLT) action = { kind: 'stop', why: 'HLT' };
    else action = { kind: 'stop', why: `the kit did not expect exit reason ${reason}` };
    e.answer = action.kind === 'stop' ? `stop: ${action.why}` : action.kind;
    if (action.kind === 'stop') {
      if (action.why !== 'HLT') stopped[cpu.id] = action.why;
      return; // the vCPU stops; its CPU idles
    }
    if (action.kind === 'skip') write(host, cpu, 'GUEST_RIP', read(cpu, 'GUEST_RIP') + read(cpu, 'VM_EXIT_INSTRUCTION_LEN'));
    cpu.vmresume();
  });
  // Each vCPU's VMCS is written and launched on its own CPU, the APs first: they wait, halted, for the BSP's INIT.
  launchMpVcpus(host, mem, rip);
  const r = k.run({ maxInstructions: 2_000_000 });
  const counter = k.read16(mem.va + BigInt(SMP_GUEST_LAYOUT.counter));
  const why = (): string => explain(host, [
    `run ended: ${r.reason}`,
    ...exits.map((es, c) => `CPU ${c} exits: ${es.map((e) => `${e.reason} (qual 0x${e.qualification.toString(16)}) → ${e.answer}`).join(', ') || 'none'}`),
  ].join('\n'));
  return { host, exits, counter, apHalt: apLabels.get('ap_halt')!, stopped, why };
}
