// The playground's Web Worker: runs a guest program or a hypervisor module on the emulated
// machine, off the main thread (the page stays responsive, and iced-x86's WebAssembly may compile
// synchronously here). After a hypervisor run it also walks guest-physical addresses through the run's EPT.
// Every failure comes back as a message: the worker never dies silently.
import type { ExplainGpaRequest, HypervisorRequest, RunRequest, WorkerReply } from './protocol.ts';
import { runProgram } from './run-program.ts';

self.onmessage = async (event: MessageEvent<RunRequest | HypervisorRequest | ExplainGpaRequest>) => {
  let reply: WorkerReply;
  try {
    if (event.data.kind === 'explain-gpa') {
      // Asked after a hypervisor run, of the worker that ran it (it still holds the host).
      const { explainGpa } = await import('./explain-gpa.ts');
      reply = { kind: 'explain-gpa-result', text: explainGpa(event.data.gpa) };
    } else if (event.data.kind === 'hypervisor') {
      // Loaded only for hypervisor runs: it brings the kernel and the TypeScript transpiler.
      const { runHypervisor } = await import('./run-hypervisor.ts');
      reply = await runHypervisor(event.data);
    } else {
      reply = await runProgram(event.data);
    }
  } catch (e) {
    reply = { kind: 'error', error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  (self as unknown as Worker).postMessage(reply);
};
