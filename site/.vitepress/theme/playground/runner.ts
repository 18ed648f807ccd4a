// The page side of the playground: starts the worker that runs the emulator and talks to it.
// Which emulator parts exist is decided at build time (see `define` in the site config), so a
// build without the machine shows an honest "arrives with the machine" state.
import type { RunResult, WorkerReply } from './protocol.ts';

export type { RunResult };

declare const __VMXLAB_PLAYGROUND__: { machine: boolean; assembler: boolean };

export interface Runner {
  run(source: string, budget: number): Promise<RunResult | { error: string }>;
}

/** Which parts of the emulator this build contains. */
export function availability(): { machine: boolean; assembler: boolean } {
  return __VMXLAB_PLAYGROUND__;
}

export function loadRunner(): Runner | null {
  if (import.meta.env.SSR) return null;
  const have = availability();
  if (!have.machine || !have.assembler) return null;
  let worker: Worker | null = null;
  return {
    run(source, budget) {
      // A fresh worker per run: a guest that loops until its budget cannot leave state behind.
      worker?.terminate();
      const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
      worker = w;
      return new Promise((resolve) => {
        w.onmessage = (event: MessageEvent<WorkerReply>) => {
          const reply = event.data;
          resolve(reply.kind === 'error' ? { error: reply.error } : reply);
          w.terminate();
        };
        w.onerror = (event) => {
          resolve({ error: `The emulator failed to start: ${event.message}` });
          w.terminate();
        };
        w.postMessage({ source, budget });
      });
    },
  };
}

export const EXAMPLE_PROGRAM = `; Print a greeting on the debug console (port E9H), then stop.
bits 64
    lea rsi, [rel message]
    mov ecx, message_end - message
    mov dx, 0xE9
.next:
    lodsb
    out dx, al
    dec ecx
    jnz .next
    mov rax, 0x1234
    hlt
message:
    db "Hello, VMX Lab", 10
message_end:
`;

export const EXAMPLE_EXPECTED_OUTPUT = 'Hello, VMX Lab\n';
