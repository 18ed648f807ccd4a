// A PC as `qemu-system-x86_64 -kernel` gives one to a multiboot kernel: the machine; the devices such kernels talk
// to (COM1 16550 at 3F8H, the E9H debug console, isa-debug-exit at F4H, fw_cfg at 510H/511H, the 8259 PICs, the 8254
// PIT, the CMOS RTC at 70H/71H, PCI configuration ports with an empty bus, an I/O APIC at FEC00000H); the firmware's
// ACPI tables (RSDP, RSDT/XSDT, MADT, FADT, DSDT); the kernel loaded by the multiboot loader; and a run that ends in
// one of a few named outcomes.
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
import { bootMultiboot, type MultibootLoad, type MultibootModule } from './multiboot.ts';
import { writeAcpiTables, type AcpiTables } from './acpi.ts';
import { IoApic, IOAPIC_BASE, IOAPIC_MMIO_BYTES } from './devices/ioapic.ts';
import { CmosRtc, CMOS_PORT_INDEX } from './devices/cmos-rtc.ts';
import { PciHostEmptyBus, PCI_CONFIG_ADDRESS } from './devices/pci-host.ts';
import { Pic8259Pair, PIC_MASTER, PIC_SLAVE } from './devices/pic8259.ts';
import { Pit8254, PIT_PORT_BASE, PIT_PORT_COMMAND, PORT_61H } from './devices/pit8254.ts';
import { setUpVirtualWire, VirtualWireSource } from './virtual-wire.ts';
import type { LocalApic } from '../machine/apic.ts';
import type { RunResult } from '../machine/machine.ts';
import { RFLAGS } from '../x86/flags.ts';

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
  /** The RTC's time at power-on (default 2026-01-01T00:00:00Z); it advances 1 s per 10^9 instructions (PcClock). */
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
  readonly pic: Pic8259Pair;
  readonly pit: Pit8254;
  readonly clock: PcClock;
  /** Where the firmware's ACPI tables are (RSDP in the BIOS ROM area). */
  readonly acpi: AcpiTables;
  readonly append: string;
}

export const DEFAULT_BOOT_RAM = 128 * 1024 * 1024;

/**
 * The PC's time for its timers (PIT, RTC), in nanoseconds: one per instruction retired by the processor that has
 * retired the most (processors run side by side, and each one's TSC counts its retired instructions, so this is a
 * 1 GHz machine whose clock runs while any processor does), plus the time runBoot skips while every processor is
 * halted waiting for a timer interrupt. Deterministic: it depends on the guest's instructions only.
 */
export class PcClock {
  idleNs = 0;
  constructor(private readonly cpus: readonly LogicalProcessor[]) {}
  now(): number {
    let most = 0;
    for (const lp of this.cpus) if (lp.instructions > most) most = lp.instructions;
    return most + this.idleNs;
  }
}

/** IRQ 0 (the PIT) is wired to the master PIC's input 0 and to I/O APIC input 2 (the MADT's source override). */
const PIT_IRQ = 0;
const PIT_GSI = 2;

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
  const clock = new PcClock(machine.cpus);
  const cmos = new CmosRtc({ ramBytes, cpus, start: opts.rtcStart, instructions: () => clock.now() });
  machine.io.register(CMOS_PORT_INDEX, 2, cmos);
  const pci = new PciHostEmptyBus();
  machine.io.register(PCI_CONFIG_ADDRESS, 8, pci);
  const pic = new Pic8259Pair();
  machine.io.register(PIC_MASTER, 2, pic);
  machine.io.register(PIC_SLAVE, 2, pic);
  const pit = new Pit8254(() => clock.now());
  machine.io.register(PIT_PORT_BASE, 4, pit);
  machine.io.register(PORT_61H, 1, pit);
  // As the BIOS leaves them: PIT channel 0 in mode 3 at 18.2 Hz (count 0 = 65536); the PICs masked; the BSP's LINT0
  // an ExtINT virtual wire to the PICs, LINT1 NMI.
  pit.out(PIT_PORT_COMMAND, 1, 0x36); // channel 0, low then high byte, mode 3
  pit.out(PIT_PORT_BASE, 1, 0);
  pit.out(PIT_PORT_BASE, 1, 0);
  const bspApic = bsp.apic as unknown as LocalApic | null;
  if (bspApic !== null) setUpVirtualWire(bspApic);
  bsp.interruptSource = new VirtualWireSource(bspApic, pic);
  // The I/O APIC's ID follows the local APICs' (the MP specification wants them distinct).
  const ioApicId = cpus;
  const ioApic = new IoApic(machine.apicBus, ioApicId);
  machine.memory.addMmio(IOAPIC_BASE, IOAPIC_MMIO_BYTES, ioApic);
  // What the BIOS would leave in memory before loading the kernel.
  const acpi = writeAcpiTables(machine.memory, { cpus, ioApic: { id: ioApicId, address: IOAPIC_BASE }, isaOverrides: [{ irq: PIT_IRQ, gsi: PIT_GSI }] });
  return { machine, uart, console, debugExit, fwCfg, ioApic, cmos, pci, pic, pit, clock, acpi, append: opts.append ?? '' };
}

/**
 * Load a multiboot kernel into the PC. Its command line is "<name> <append>", as QEMU builds it from the -kernel
 * file name and the -append text (the kernel's own name first, as GRUB passes it too).
 */
export function loadKernel(pc: BootPc, image: Uint8Array, name = 'kernel', modules: readonly MultibootModule[] = []): MultibootLoad {
  return bootMultiboot(pc.machine, image, { cmdline: pc.append === '' ? name : `${name} ${pc.append}`, modules });
}

/** How a boot run ended. */
export type BootOutcome =
  /** The guest wrote `value` to isa-debug-exit: QEMU would exit with `status` = (value << 1) | 1. */
  | { kind: 'debug-exit'; value: number; status: number; instructions: number }
  /** The instruction budget ran out first (idle time while every CPU waited for a timer counts against it). */
  | { kind: 'budget'; instructions: number }
  /** A processor shut down (a triple fault); `lastFault` is the fault that started it, when known. */
  | { kind: 'shutdown'; cpu: number; reason: string; lastFault: string | undefined; rip: number; instructions: number }
  /** Every processor halted with nothing left to wake it (e.g. `cli; hlt`). */
  | { kind: 'halted'; instructions: number };

export interface RunBootOptions {
  /** Instructions to run at most (all processors), idle time while every CPU is halted included (1 ns = 1). */
  budget: number;
  /** Called before each instruction with one disassembled line (slow: one instruction per run step). */
  trace?: (line: string) => void;
}

export function runBoot(pc: BootPc, opts: RunBootOptions): BootOutcome {
  const machine = pc.machine;
  /** Instructions executed; `used` adds the idle time skipped while halted, which also counts against the budget. */
  let instructions = 0;
  let used = 0;
  let result: RunResult = { reason: 'budget', instructions: 0 };
  // Run in slices that end at the PIT's next IRQ 0, so timer interrupts arrive on time (and deterministically).
  while (used < opts.budget) {
    const slice = Math.min(opts.budget - used, opts.trace === undefined ? untilTimer(pc) : 1);
    result = opts.trace === undefined ? machine.run({ maxInstructions: slice }) : traceStep(machine, opts.trace);
    instructions += result.instructions;
    used += result.instructions;
    pulseTimer(pc);
    if (result.reason === 'budget') continue;
    if (result.reason === 'all-halted') {
      // Everyone is halted: if a timer interrupt can wake one of them, the time until it passes idle.
      const idle = idleUntilTimer(pc, opts.budget - used);
      if (idle > 0) {
        used += idle;
        pulseTimer(pc);
        continue;
      }
    }
    break;
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

/** Instructions until the PIT's next IRQ 0 (at least 1), or Infinity. */
function untilTimer(pc: BootPc): number {
  const next = pc.pit.nextIrq0At();
  return next === Infinity ? Infinity : Math.max(1, next - pc.clock.now());
}

/** If channel 0's OUT rose, pulse IRQ 0 on both interrupt controllers (edge-triggered inputs). */
function pulseTimer(pc: BootPc): void {
  if (!pc.pit.takeIrq0()) return;
  pc.pic.setIrq(PIT_IRQ, true);
  pc.pic.setIrq(PIT_IRQ, false);
  pc.ioApic.setIrq(PIT_GSI, true);
  pc.ioApic.setIrq(PIT_GSI, false);
}

/** Skip the clock to the next IRQ 0 when it can wake a halted CPU; returns the nanoseconds skipped (0: none). */
function idleUntilTimer(pc: BootPc, left: number): number {
  const wakeable = pc.machine.cpus.some((lp) => lp.activity === 'hlt' && (lp.rflagsRaw & RFLAGS.IF) !== 0);
  const routed = !pc.pic.masked(PIT_IRQ) || !pc.ioApic.masked(PIT_GSI);
  const next = pc.pit.nextIrq0At();
  if (!wakeable || !routed || next === Infinity || left <= 0) return 0;
  const skip = Math.min(left, Math.max(1, next - pc.clock.now()));
  pc.clock.idleNs += skip;
  return skip;
}

/** One instruction on whichever LP runs next, traced before it runs. */
function traceStep(machine: Machine, trace: (line: string) => void): RunResult {
  const before = machine.cpus.map((lp) => ({ lp, rip: lp.rip, count: lp.instructions, line: traceLine(lp) }));
  const result = machine.run({ maxInstructions: 1 });
  for (const b of before) if (b.lp.instructions !== b.count || b.lp.rip !== b.rip) trace(b.line);
  return result;
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
