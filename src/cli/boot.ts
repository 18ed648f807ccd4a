// `vmxlab boot <kernel.elf>`: boot a Multiboot 1 kernel on the emulated PC the way `qemu-system-x86_64 -kernel`
// does, with the guest's COM1 and port E9H output on stdout and QEMU's isa-debug-exit convention for the result.
// Every way a run can end is one line on stderr and an exit status of its own (BOOT_EXIT); guest exits are odd
// ((value << 1) | 1), the emulator's own are even, so a script can tell them apart.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CPU_MODELS, DEFAULT_CPU_MODEL, getCpuModel } from '../machine/cpu-model.ts';
import { createBootPc, loadKernel, runBoot, type BootOutcome } from '../boot/pc.ts';
import { MAX_RAM_BYTES, MIN_RAM_BYTES } from '../boot/pc-memory-map.ts';
import type { MultibootModule } from '../boot/multiboot.ts';

/** The exit statuses of `vmxlab boot` besides the guest's own (value << 1) | 1. */
export const BOOT_EXIT = {
  /** Bad command line, or the kernel file cannot be read. */
  USAGE: 2,
  /** Not a loadable multiboot kernel: no (valid) multiboot header, a bad ELF, or it does not fit in RAM. */
  BAD_IMAGE: 4,
  /** A processor shut down: a triple fault. */
  SHUTDOWN: 6,
  /** The instruction budget ran out (a kernel that never exits). */
  BUDGET: 8,
  /** Every processor halted with nothing left to wake it (`cli; hlt`). */
  HALTED: 10,
  /** A bug in VMX Lab itself. */
  INTERNAL: 70,
} as const;

export const DEFAULT_BOOT_BUDGET = 100_000_000;
const DEFAULT_MEM_MIB = 128;
const MAX_CPUS = 32;

export const BOOT_USAGE = `usage: vmxlab boot <kernel.elf> [options]

Boots a Multiboot 1 kernel (ELF32, ELF64, or a.out-kludge image) as qemu-system-x86_64 -kernel does.
COM1 (3F8H) and port E9H output go to stdout. A write of v to port F4H (isa-debug-exit) ends the run
with exit status (v << 1) | 1.

  --append "args"   kernel command line after the kernel's name (multiboot cmdline; fw_cfg CMDLINE)
  --initrd "f a,g"  multiboot modules, comma-separated: file f with string "f a", then file g
  --cpus N          logical processors (default 1, at most ${MAX_CPUS}); APs wait for INIT-SIPI
  --model NAME      CPU model (default ${DEFAULT_CPU_MODEL.name}); names: data/cpu-models/
  --mem MiB         RAM (default ${DEFAULT_MEM_MIB}, ${MIN_RAM_BYTES >> 20}..${MAX_RAM_BYTES / 2 ** 20})
  --budget N        stop after N instructions, all CPUs together, time idle in HLT included
                    (default ${DEFAULT_BOOT_BUDGET}; the PC clock runs at 1 ns per instruction)
  --trace           print every instruction to stderr before it runs (slow)

Exit status: (v << 1) | 1 for a guest exit (the OS keeps the low 8 bits), ${BOOT_EXIT.USAGE} usage,
${BOOT_EXIT.BAD_IMAGE} not a loadable kernel, ${BOOT_EXIT.SHUTDOWN} triple fault, ${BOOT_EXIT.BUDGET} budget exhausted, ${BOOT_EXIT.HALTED} every CPU halted for good.`;

export interface BootCommandIo {
  /** Guest output (bytes, as the guest sent them). */
  stdout: { write(data: Uint8Array | string): unknown };
  /** The command's own messages and the trace. */
  stderr: { write(data: string): unknown };
}

export function runBootCommand(argv: string[], io: BootCommandIo = process): number {
  const say = (line: string) => io.stderr.write(`vmxlab boot: ${line}\n`);
  const args = parseBootArgs(argv);
  if (typeof args === 'string') {
    if (args === 'help') {
      io.stdout.write(`${BOOT_USAGE}\n`);
      return 0;
    }
    say(args);
    io.stderr.write(`\n${BOOT_USAGE}\n`);
    return BOOT_EXIT.USAGE;
  }
  let image: Uint8Array;
  try {
    image = readFileSync(args.kernel);
  } catch (e) {
    say(`cannot read ${args.kernel}: ${(e as Error).message}`);
    return BOOT_EXIT.USAGE;
  }
  const modules: MultibootModule[] = [];
  for (const entry of args.initrd) {
    const file = entry.split(' ')[0]!;
    try {
      modules.push({ bytes: readFileSync(file), cmdline: entry });
    } catch (e) {
      say(`cannot read module ${file}: ${(e as Error).message}`);
      return BOOT_EXIT.USAGE;
    }
  }
  const output = new OutputBuffer(io.stdout);
  try {
    const pc = createBootPc({ cpus: args.cpus, model: args.model, ramBytes: args.memMiB * 2 ** 20, append: args.append, output: (b) => output.push(b) });
    const load = loadKernel(pc, image, args.kernel, modules);
    if (!load.ok) {
      say(`${args.kernel}: ${load.error}`);
      return BOOT_EXIT.BAD_IMAGE;
    }
    const trace = args.trace ? (line: string) => io.stderr.write(`${line}\n`) : undefined;
    const outcome = runBoot(pc, { budget: args.budget, trace });
    output.flush();
    return report(outcome, args.budget, say);
  } catch (e) {
    output.flush();
    // A bug in the emulator, not in the guest: one line, and the stack only when asked for.
    say(`internal error (please report): ${(e as Error)?.message ?? String(e)}${process.env.VMXLAB_DEBUG ? `\n${(e as Error)?.stack}` : ' (VMXLAB_DEBUG=1 shows the stack)'}`);
    return BOOT_EXIT.INTERNAL;
  }
}

function report(outcome: BootOutcome, budget: number, say: (line: string) => void): number {
  switch (outcome.kind) {
    case 'debug-exit':
      return outcome.status; // the guest chose it: nothing to add, as QEMU adds nothing
    case 'budget':
      say(`instruction budget exhausted: ${budget} instructions${outcome.instructions < budget ? ` (${outcome.instructions} executed, the rest idle in HLT)` : ''} and the kernel did not exit (raise it with --budget N)`);
      return BOOT_EXIT.BUDGET;
    case 'shutdown':
      say(`CPU ${outcome.cpu} shut down at EIP ${hex(outcome.rip)} after ${outcome.instructions} instructions: ${outcome.reason}${outcome.lastFault !== undefined ? `; the last fault raised: ${outcome.lastFault}` : ''}`);
      return BOOT_EXIT.SHUTDOWN;
    case 'halted':
      say(`every CPU is halted and nothing can wake it (after ${outcome.instructions} instructions): the kernel stopped without writing to isa-debug-exit (port F4H)`);
      return BOOT_EXIT.HALTED;
  }
}

interface BootArgs {
  kernel: string;
  append: string;
  /** Module entries as QEMU's -initrd takes them: "file args", comma-separated. */
  initrd: string[];
  cpus: number;
  model: (typeof CPU_MODELS)[number];
  memMiB: number;
  budget: number;
  trace: boolean;
}

/** The arguments, 'help', or what is wrong with them. */
function parseBootArgs(argv: string[]): BootArgs | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        append: { type: 'string' },
        initrd: { type: 'string' },
        cpus: { type: 'string' },
        model: { type: 'string' },
        mem: { type: 'string' },
        budget: { type: 'string' },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    return (e as Error).message;
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length !== 1) return positionals.length === 0 ? 'which kernel? give the path of a multiboot ELF' : `one kernel only, got ${positionals.length}: ${positionals.join(' ')}`;
  const cpus = integer(values.cpus, 1);
  if (cpus === undefined || cpus < 1 || cpus > MAX_CPUS) return `--cpus must be a whole number from 1 to ${MAX_CPUS}, got '${values.cpus}'`;
  const memMiB = integer(values.mem, DEFAULT_MEM_MIB);
  if (memMiB === undefined || memMiB * 2 ** 20 < MIN_RAM_BYTES || memMiB * 2 ** 20 > MAX_RAM_BYTES) {
    return `--mem must be a whole number of MiB from ${MIN_RAM_BYTES >> 20} to ${MAX_RAM_BYTES / 2 ** 20}, got '${values.mem}'`;
  }
  const budget = integer(values.budget, DEFAULT_BOOT_BUDGET);
  if (budget === undefined || budget < 1) return `--budget must be a whole number of instructions (at least 1), got '${values.budget}'`;
  const model = values.model === undefined ? DEFAULT_CPU_MODEL : getCpuModel(values.model);
  if (model === undefined) return `unknown CPU model '${values.model}'. Models: ${CPU_MODELS.map((m) => m.name).join(', ')}`;
  const initrd = (values.initrd ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '');
  return { kernel: positionals[0]!, append: values.append ?? '', initrd, cpus, model, memMiB, budget, trace: values.trace };
}

/** A whole number written in decimal (underscores allowed: 1_000_000), or the default when absent. */
function integer(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined) return fallback;
  if (!/^[0-9][0-9_]*$/.test(text)) return undefined;
  const n = Number(text.replaceAll('_', ''));
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Guest bytes, written a line (or 4 KiB) at a time rather than one write per byte. */
class OutputBuffer {
  private bytes: number[] = [];
  constructor(private readonly out: BootCommandIo['stdout']) {}
  push(b: number): void {
    this.bytes.push(b);
    if (b === 0x0a || this.bytes.length >= 4096) this.flush();
  }
  flush(): void {
    if (this.bytes.length === 0) return;
    this.out.write(Uint8Array.from(this.bytes));
    this.bytes = [];
  }
}

function hex(n: number): string {
  return `${(n >>> 0).toString(16).toUpperCase().padStart(8, '0')}H`;
}
