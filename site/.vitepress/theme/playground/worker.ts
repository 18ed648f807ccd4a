// The playground's Web Worker: assembles the guest program and runs it on the emulated machine,
// off the main thread (the page stays responsive, and iced-x86's WebAssembly may compile
// synchronously here). Modules come from src/ through import.meta.glob, so this file builds
// before they exist.
import type { RunRequest, WorkerReply } from './protocol.ts';
import { runProgram } from './run-program.ts';

self.onmessage = async (event: MessageEvent<RunRequest>) => {
  let reply: WorkerReply;
  try {
    reply = await runProgram(event.data);
  } catch (e) {
    reply = { kind: 'error', error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  (self as unknown as Worker).postMessage(reply);
};
