// Assemble and run one guest program (inside the playground worker), the way chapter tests do:
// a fresh machine with one logical processor already in 64-bit mode (identity-mapped paging),
// the port E9H debug console attached, the program loaded at LONG_MODE_LAYOUT.code. The emulator
// modules are reached through import.meta.glob, so this file builds before they exist.
import type { RunRequest, WorkerReply } from './protocol.ts';

type AssemblerModule = typeof import('../../../../src/guest/assembler.ts');
type RunGuestModule = typeof import('../../../../src/machine/testing/run-guest.ts');

const assemblers = import.meta.glob<AssemblerModule>('../../../../src/guest/assembler.ts');
const guests = import.meta.glob<RunGuestModule>('../../../../src/machine/testing/run-guest.ts');

const REGISTERS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;

const STOPS: Record<string, string> = {
  'all-halted': 'HLT — the processor halted',
  budget: 'instruction budget used up',
  shutdown: 'shutdown',
  breakpoint: 'breakpoint',
};

export async function runProgram(req: RunRequest): Promise<WorkerReply> {
  const loadAssembler = Object.values(assemblers)[0];
  const loadGuest = Object.values(guests)[0];
  if (loadAssembler === undefined) return { kind: 'error', error: 'The assembler (src/guest/assembler.ts) is not in this build yet.' };
  if (loadGuest === undefined) return { kind: 'error', error: 'The machine (src/machine/) is not in this build yet.' };
  const [{ assemble }, { prepareGuest }] = await Promise.all([loadAssembler(), loadGuest()]);

  // Assemble once here to report errors with line numbers (prepareGuest would throw on them).
  const budget = Math.max(1, Math.min(Math.floor(req.budget), 100_000_000));
  const check = assemble(req.source, { origin: 0x100000, bits: 64 });
  if (!check.ok) return { kind: 'error', error: check.errors.map((e) => `line ${e.line}: ${e.message}`).join('\n') };

  const g = prepareGuest(req.source);
  const result = g.machine.run({ maxInstructions: budget });
  const snap = g.lp.snapshot();
  return {
    kind: 'result',
    console: g.console.text(),
    registers: REGISTERS.map((name) => ({ name: name.toUpperCase(), value: '0x' + snap[name].toString(16).toUpperCase().padStart(16, '0') })),
    stop: (STOPS[result.reason] ?? result.reason) + (result.detail !== undefined ? `: ${result.detail}` : ''),
    instructions: result.instructions,
    bytes: check.bytes.length,
  };
}
