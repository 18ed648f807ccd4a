// The page side of the playground: starts the worker that runs the emulator and talks to it.
// Which emulator parts exist is decided at build time (see `define` in the site config), so a
// build without the machine shows an honest "arrives with the machine" state.
import type { ExplainGpaRequest, HypervisorRequest, HypervisorResult, RunRequest, RunResult, WorkerReply } from './protocol.ts';

export type { HypervisorResult, RunResult };

declare const __VMXLAB_PLAYGROUND__: { machine: boolean; assembler: boolean };

export interface Runner {
  run(source: string, budget: number): Promise<RunResult | { error: string }>;
  /** Run a hypervisor module (TypeScript) on a fresh host with CPU model `model` ('' = the default). */
  runHypervisor(source: string, budget: number, model: string): Promise<HypervisorResult | { error: string }>;
  /**
   * After runHypervisor: walk a guest-physical address through the run's EPT, in the worker that ran it (it keeps
   * the host until the next run).
   */
  explainGpa(gpa: string): Promise<{ text: string } | { error: string }>;
  /** End the current run (e.g. module code that loops forever): its promise resolves with an error. Forgets the last run's host. */
  stop(): void;
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
  let settle: ((reply: WorkerReply) => void) | null = null;
  /** The worker of the last hypervisor run, kept for explainGpa until the next run. */
  let kept: Worker | null = null;
  const stop = (): void => {
    kept?.terminate();
    kept = null;
    worker?.terminate();
    worker = null;
    settle?.({ kind: 'error', error: 'Stopped: the run was ended from the page.' });
    settle = null;
  };
  const ask = (w: Worker, request: RunRequest | HypervisorRequest | ExplainGpaRequest, keep: boolean): Promise<WorkerReply> => {
    worker = w;
    return new Promise((resolve) => {
      settle = (reply) => {
        settle = null;
        resolve(reply);
      };
      const finish = (reply: WorkerReply): void => {
        if (worker === w) {
          settle?.(reply);
          worker = null;
          if (keep) kept = w;
          else w.terminate();
        }
      };
      w.onmessage = (event: MessageEvent<WorkerReply>) => finish(event.data);
      w.onerror = (event) => finish({ kind: 'error', error: `The emulator failed to start: ${event.message}` });
      w.postMessage(request);
    });
  };
  const start = (request: RunRequest | HypervisorRequest): Promise<WorkerReply> => {
    // A fresh worker per run: a guest that loops until its budget, or module code that throws or loops, cannot
    // leave state behind.
    stop();
    return ask(new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' }), request, request.kind === 'hypervisor');
  };
  return {
    async run(source, budget) {
      const reply = await start({ kind: 'guest', source, budget });
      if (reply.kind === 'error') return { error: reply.error };
      if (reply.kind !== 'result') return { error: `unexpected reply ${reply.kind}` };
      return reply;
    },
    async runHypervisor(source, budget, model) {
      const reply = await start({ kind: 'hypervisor', source, budget, model });
      if (reply.kind === 'error') return { error: reply.error };
      if (reply.kind !== 'hypervisor-result') return { error: `unexpected reply ${reply.kind}` };
      return reply;
    },
    async explainGpa(gpa) {
      const w = kept;
      if (w === null) return { error: 'Run a hypervisor module first: the explainer walks the EPT of the last run.' };
      kept = null;
      const reply = await ask(w, { kind: 'explain-gpa', gpa }, true);
      if (reply.kind === 'error') return { error: reply.error };
      if (reply.kind !== 'explain-gpa-result') return { error: `unexpected reply ${reply.kind}` };
      return { text: reply.text };
    },
    stop,
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

/** The programs the page offers; the first is loaded on arrival (and run by the browser test). */
export const EXAMPLES: readonly { name: string; source: string }[] = [
  { name: 'Hello on the debug console', source: EXAMPLE_PROGRAM },
  {
    name: 'CPUID vendor string',
    source: `; CPUID leaf 0: the vendor string is in EBX, EDX, ECX (12 ASCII bytes).
bits 64
    xor eax, eax
    cpuid
    mov [rel vendor], ebx
    mov [rel vendor + 4], edx
    mov [rel vendor + 8], ecx
    lea rsi, [rel vendor]
    mov ecx, 13
    mov dx, 0xE9
.next:
    lodsb
    out dx, al
    dec ecx
    jnz .next
    hlt
vendor:
    times 12 db 0
    db 10
`,
  },
  {
    name: 'A fault with no IDT (triple fault)',
    source: `; UD2 raises #UD. The IDT is empty, so delivering #UD faults (#GP), delivering
; that fails again (#DF), and a fault while delivering #DF is a triple fault:
; the processor shuts down. The stop reason below says which IDT entry was bad.
bits 64
    mov dx, 0xE9
    mov al, '!'
    out dx, al
    ud2
`,
  },
  {
    name: 'A loop that outlives its budget',
    source: `; This loop never ends: the run stops when the instruction budget is used up.
bits 64
    xor eax, eax
.spin:
    inc rax
    jmp .spin
`,
  },
];
