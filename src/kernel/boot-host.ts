// A whole host in one call: the emulated machine for a CPU model, a VMX unit on every logical
// processor, and the kernel booted on it. Chapters, the CLI and the playground all start here.
import { CPU_MODELS, DEFAULT_CPU_MODEL, getCpuModel, type CpuModel } from '../machine/cpu-model.ts';
import { DebugConsole } from '../machine/devices/debug-console.ts';
import { Machine } from '../machine/machine.ts';
import { attachMmioUart, type MmioUart } from '../machine/devices/mmio-uart.ts';
import type { BoardName } from '../machine/memtype/firmware.ts';
import { attachVmx, type VmxUnitImpl } from '../vmx/unit.ts';
import { Kernel, type KernelOptions } from './kernel.ts';

export interface HostOptions extends KernelOptions {
  /** CPU model name (see data/cpu-models) or a model; default DEFAULT_CPU_MODEL. */
  model?: string | CpuModel;
  /** Logical processors (default 1). */
  cpus?: number;
  /** RAM in MiB (default 128). */
  ramMiB?: number;
  /** Pretend the CPU has no VMX: CPUID.1:ECX[5] reads 0 and VMX instructions raise #UD. */
  hideVmx?: boolean;
  /** Whose firmware programmed the MTRRs (default 'pc'; src/machine/memtype/firmware.ts). */
  board?: BoardName;
}

export interface Host {
  readonly machine: Machine;
  readonly kernel: Kernel;
  readonly model: CpuModel;
  /** Per-LP VMX units (empty with hideVmx): the explanation channel lives here. */
  readonly vmx: readonly VmxUnitImpl[];
  /** Port E9H output of the guests. */
  readonly console: DebugConsole;
  /**
   * The memory-mapped 16550 UART at FEB00000H (src/machine/devices/mmio-uart.ts), in the firmware's UC MMIO hole:
   * the device on which a wrong memory type shows (chapter 7).
   */
  readonly mmioUart: MmioUart;
}

export function bootHost(opts: HostOptions = {}): Host {
  const model = resolveModel(opts.model);
  const machine = new Machine({ cpus: opts.cpus ?? 1, ramBytes: (opts.ramMiB ?? 128) * 1024 * 1024, model, board: opts.board });
  const console = new DebugConsole();
  machine.io.register(0xe9, 1, console);
  const mmioUart = attachMmioUart(machine.memory);
  let vmx: VmxUnitImpl[] = [];
  if (opts.hideVmx) {
    for (const lp of machine.cpus) {
      const inner = lp.cpuidSource;
      lp.cpuidSource = (leaf, subleaf, p) => {
        const r = inner !== null ? inner(leaf, subleaf, p) : p.cpuid(leaf, subleaf);
        return leaf === 1 ? { ...r, ecx: r.ecx & ~(1 << 5) } : r;
      };
    }
  } else {
    vmx = attachVmx(machine.cpus, model);
  }
  const kernel = new Kernel(machine, opts);
  return { machine, kernel, model, vmx, console, mmioUart };
}

function resolveModel(m: string | CpuModel | undefined): CpuModel {
  if (m === undefined) return DEFAULT_CPU_MODEL;
  if (typeof m !== 'string') return m;
  const found = getCpuModel(m);
  if (found === undefined) throw new Error(`unknown CPU model '${m}'. Models: ${CPU_MODELS.map((x) => x.name).join(', ')}`);
  return found;
}
