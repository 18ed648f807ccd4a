// Test helper: assemble a 64-bit guest program, load it into a fresh machine in long mode, and run it.
import { assembleOrThrow } from '../../guest/assembler.ts';
import { DebugConsole, DEBUG_CONSOLE_PORT } from '../devices/debug-console.ts';
import { Machine, type MachineOptions, type RunResult } from '../machine.ts';
import type { LogicalProcessor } from '../lp.ts';
import { enterLongMode, LONG_MODE_LAYOUT, type LongModeOptions } from './long-mode.ts';

export interface GuestRun {
  machine: Machine;
  lp: LogicalProcessor;
  console: DebugConsole;
  result: RunResult;
  labels: Map<string, number>;
}

/** Build a machine with one LP in 64-bit mode, code at LONG_MODE_LAYOUT.code, port E9H console attached. */
export function prepareGuest(source: string, opts: { machine?: MachineOptions; longMode?: LongModeOptions; origin?: number } = {}): Omit<GuestRun, 'result'> {
  const machine = new Machine(opts.machine);
  const console = new DebugConsole();
  machine.io.register(DEBUG_CONSOLE_PORT, 1, console);
  const lp = machine.cpus[0]!;
  const origin = opts.origin ?? LONG_MODE_LAYOUT.code;
  enterLongMode(lp, { rip: origin, ...opts.longMode });
  const { bytes, labels } = assembleOrThrow(source.includes('bits ') ? source : `bits 64\n${source}`, { origin });
  machine.memory.writeBytes(origin, bytes);
  return { machine, lp, console, labels };
}

export function runGuest(source: string, opts: { machine?: MachineOptions; longMode?: LongModeOptions; maxInstructions?: number; origin?: number } = {}): GuestRun {
  const g = prepareGuest(source, opts);
  const result = g.machine.run({ maxInstructions: opts.maxInstructions ?? 1_000_000 });
  return { ...g, result };
}
