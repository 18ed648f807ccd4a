// A PC as `qemu-system-x86_64 -kernel` gives one to a multiboot kernel: the machine, the devices such kernels
// talk to (COM1 16550 at 3F8H, the E9H debug console, isa-debug-exit at F4H, fw_cfg at 510H/511H, an I/O APIC at
// FEC00000H, the CMOS RTC at 70H/71H, PCI configuration ports CF8H/CFCH with an empty bus), the firmware's
// ACPI tables (RSDP, RSDT/XSDT, MADT, FADT, DSDT), the kernel
// loaded by the multiboot loader, and a run that ends in one of a few named outcomes.
//
//   const pc = createBootPc({ cpus: 2, ramBytes: 128 << 20, append: 'quiet', output: (b) => ... });
//   const load = loadKernel(pc, elfBytes, 'kernel.elf');          // { ok: false, error } for a bad image
//   const outcome = runBoot(pc, { budget: 100_000_000 });   // { kind: 'debug-exit', status: 3, ... }

import { Machine } from '../machine/machine.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import type { CpuModel } from '../machine/cpu-model.ts';
import { DebugConsole, DEBUG_CONSOLE_PORT } from '../machine/devices/debug-console.ts';
import { COM1_BASE, UART_PORT_COUNT, Uart16550 } from '../machine/devices/uart16550.ts';
import { disassemble } from '../debug/disasm.ts';
import { linearReader } from '../debug/lp-memory.ts';
import { FwCfg, FW_CFG_PORT_SEL } from './devices/fw-cfg.ts';
import { debugExitStatus, IsaDebugExit, ISA_DEBUG_EXIT_PORT, ISA_DEBUG_EXIT_PORTS } from './devices/isa-debug-exit.ts';
import { bootMultiboot, type MultibootLoad } from './multiboot.ts';
import { writeAcpiTables, type AcpiTables } from './acpi.ts';
import { IoApic, IOAPIC_BASE, IOAPIC_MMIO_BYTES } from './devices/ioapic.ts';
import { CmosRtc, CMOS_PORT_INDEX } from './devices/cmos-rtc.ts';
import { PciHostEmptyBus, PCI_CONFIG_ADDRESS } from './devices/pci-host.ts';

export interface BootPcOptions {
  /** Logical processors (default 1). APs wait for INIT-SIPI-SIPI, as after a BIOS. */
  cpus?: number;
  /** CPU model (CPUID, MSRs); default: the machine's built-in minimal one. */
  model?: CpuModel;
  /** RAM in bytes (default 128 MiB, QEMU's default). */
  ramBytes?: number;
  /** QEMU's -append text: fw_cfg offers it as CMDLINE_DATA; the multiboot command line is "<kernel> <append>". */
  append?: string;
  /** Every byte the guest sends to COM1 or port E9H, in order (default: kept only in the devices). */
  output?: (byte: number) => void;
  /** The RTC's time at power-on (default 2026-01-01T00:00:00Z); it advances 1 s per 10^9 BSP instructions. */
  rtcStart?: Date;
}

export interface BootPc {
  readonly machine: Machine;
  readonly uart: Uart16550;
  readonly console: DebugConsole;
  readonly debugExit: IsaDebugExit;
  readonly fwCfg: FwCfg;
  readonly ioApic: IoApic;
  readonly cmos: CmosRtc;
  readonly pci: PciHostEmptyBus;
  /** Where the firmware's ACPI tables are (RSDP in the BIOS ROM area). */
  readonly acpi: AcpiTables;
  readonly append: string;
}

export const DEFAULT_BOOT_RAM = 128 * 1024 * 1024;

export function createBootPc(opts: BootPcOptions = {}): BootPc {
  const cpus = opts.cpus ?? 1;
  const ramBytes = opts.ramBytes ?? DEFAULT_BOOT_RAM;
  const machine = new Machine({ cpus, ramBytes, model: opts.model });
  const uart = new Uart16550(COM1_BASE);
  const console = new DebugConsole();
  uart.onTransmit = opts.output;
  console.onByte = opts.output;
  // isa-debug-exit powers the machine off: every LP stops at once, so no instruction after the OUT runs (OUT ends a
  // decoded block, and the executor does not start another on an LP that is not active).
  const debugExit = new IsaDebugExit(() => {
    for (const lp of machine.cpus) lp.shutdown('isa-debug-exit');
  });
  const fwCfg = new FwCfg({ ramBytes, cpus, cmdline: opts.append });
  machine.io.register(COM1_BASE, UART_PORT_COUNT, uart);
  machine.io.register(DEBUG_CONSOLE_PORT, 1, console);
  machine.io.register(ISA_DEBUG_EXIT_PORT, ISA_DEBUG_EXIT_PORTS, debugExit);
  machine.io.register(FW_CFG_PORT_SEL, 2, fwCfg);
  const bsp = machine.cpus[0]!;
  const cmos = new CmosRtc({ ramBytes, cpus, start: opts.rtcStart, instructions: () => bsp.instructions });
  machine.io.register(CMOS_PORT_INDEX, 2, cmos);
  const pci = new PciHostEmptyBus();
  machine.io.register(PCI_CONFIG_ADDRESS, 8, pci);
  // The I/O APIC's ID follows the local APICs' (the MP specification wants them distinct).
  const ioApicId = cpus;
  const ioApic = new IoApic(machine.apicBus, ioApicId);
  machine.memory.addMmio(IOAPIC_BASE, IOAPIC_MMIO_BYTES, ioApic);
  // What the BIOS would leave in memory before loading the kernel.
  const acpi = writeAcpiTables(machine.memory, { cpus, ioApic: { id: ioApicId, address: IOAPIC_BASE } });
  return { machine, uart, console, debugExit, fwCfg, ioApic, cmos, pci, acpi, append: opts.append ?? '' };
}

/**
 * Load a multiboot kernel into the PC. Its command line is "<name> <append>", as QEMU builds it from the -kernel
 * file name and the -append text (the kernel's own name first, as GRUB passes it too).
 */
export function loadKernel(pc: BootPc, image: Uint8Array, name = 'kernel'): MultibootLoad {
  return bootMultiboot(pc.machine, image, { cmdline: pc.append === '' ? name : `${name} ${pc.append}` });
}

/** How a boot run ended. */
export type BootOutcome =
  /** The guest wrote `value` to isa-debug-exit: QEMU would exit with `status` = (value << 1) | 1. */
  | { kind: 'debug-exit'; value: number; status: number; instructions: number }
  /** The instruction budget ran out first. */
  | { kind: 'budget'; instructions: number }
  /** A processor shut down (a triple fault); `lastFault` is the fault that started it, when known. */
  | { kind: 'shutdown'; cpu: number; reason: string; lastFault: string | undefined; rip: number; instructions: number }
  /** Every processor halted with nothing left to wake it (e.g. `cli; hlt`). */
  | { kind: 'halted'; instructions: number };

export interface RunBootOptions {
  /** Instructions to run at most (all processors). */
  budget: number;
  /** Called before each instruction with one disassembled line (slow: one instruction per run step). */
  trace?: (line: string) => void;
}

export function runBoot(pc: BootPc, opts: RunBootOptions): BootOutcome {
  const machine = pc.machine;
  let instructions = 0;
  let result;
  if (opts.trace === undefined) {
    result = machine.run({ maxInstructions: opts.budget });
    instructions = result.instructions;
  } else {
    do {
      const before = machine.cpus.map((lp) => ({ lp, rip: lp.rip, count: lp.instructions, line: traceLine(lp) }));
      result = machine.run({ maxInstructions: 1 });
      instructions += result.instructions;
      for (const b of before) if (b.lp.instructions !== b.count || b.lp.rip !== b.rip) opts.trace(b.line);
    } while (result.reason === 'budget' && instructions < opts.budget);
  }
  if (pc.debugExit.value !== undefined) {
    return { kind: 'debug-exit', value: pc.debugExit.value, status: debugExitStatus(pc.debugExit.value), instructions };
  }
  switch (result.reason) {
    case 'shutdown': {
      const lp = result.lp!;
      return { kind: 'shutdown', cpu: lp.id, reason: lp.shutdownReason, lastFault: lp.lastFault?.message, rip: lp.rip, instructions };
    }
    case 'all-halted':
      return { kind: 'halted', instructions };
    default:
      // No breakpoints or host entries are set on a boot PC: only the budget is left.
      return { kind: 'budget', instructions };
  }
}

/** "cpu0 00100010  mov eax, [ebx+4]" for the instruction the LP is about to run. */
function traceLine(lp: LogicalProcessor): string {
  const linear = lp.bits === 64 ? lp.rip : (lp.segBase[1]! + lp.rip) >>> 0;
  const bytes = linearReader(lp)(BigInt.asUintN(64, BigInt(linear)), 15);
  const where = `cpu${lp.id} ${BigInt.asUintN(64, BigInt(lp.rip)).toString(16).padStart(lp.bits === 64 ? 16 : 8, '0')}`;
  if (lp.activity !== 'active') return `${where}  (${lp.activity})`;
  if (bytes === null) return `${where}  (not readable)`;
  const [line] = disassemble(bytes, { address: lp.rip, bits: lp.bits, count: 1 });
  return `${where}  ${line?.text ?? '(bad)'}`;
}
