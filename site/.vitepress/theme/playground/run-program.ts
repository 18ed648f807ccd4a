// Assemble and run one guest program (inside the playground worker). The emulator modules are
// reached through import.meta.glob: the glob is empty until the file is committed, and the
// page reports what is missing instead of failing to build.
import type { RunRequest, WorkerReply } from './protocol.ts';

type AssemblerModule = typeof import('../../../../src/guest/assembler.ts');

const assemblers = import.meta.glob<AssemblerModule>('../../../../src/guest/assembler.ts');
const machines = import.meta.glob<Record<string, unknown>>('../../../../src/machine/machine.ts');

/** Where the example program is loaded; the guest runs in 64-bit mode from here. */
export const ORIGIN = 0x1000;

export async function runProgram(req: RunRequest): Promise<WorkerReply> {
  const loadAssembler = Object.values(assemblers)[0];
  if (loadAssembler === undefined) return { kind: 'error', error: 'The assembler (src/guest/assembler.ts) is not in this build yet.' };
  const { assemble } = await loadAssembler();
  const asm = assemble(req.source, { origin: ORIGIN, bits: 64 });
  if (!asm.ok) {
    return { kind: 'error', error: asm.errors.map((e) => `line ${e.line}: ${e.message}`).join('\n') };
  }
  const loadMachine = Object.values(machines)[0];
  if (loadMachine === undefined) {
    return {
      kind: 'error',
      error: `Assembled ${asm.bytes.length} bytes. The machine (src/machine/machine.ts) is not in this build yet, so nothing runs.`,
    };
  }
  return { kind: 'error', error: 'The machine is in this build, but the playground does not drive it yet.' };
}
