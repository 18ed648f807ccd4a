// Child-process entry of the grader. Keeps one vitest instance warm per implementation
// (exercises/ or solutions/) and answers grade requests from the CLI over IPC.
import { createGrader, type GradeEvent, type Grader, type Implementation } from './grader.ts';
import type { ExerciseResult } from './result.ts';

export type WorkerRequest = { type: 'grade'; requestId: number; ids: string[] };
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'progress'; requestId: number; event: GradeEvent }
  | { type: 'result'; requestId: number; results: ExerciseResult[] }
  | { type: 'error'; requestId: number; message: string };

const root = process.env.VMXLAB_ROOT ?? process.cwd();
const requested = process.env.VMXLAB_IMPL;
const impl: Implementation = requested === 'solutions' || requested === 'pristine' ? requested : 'exercises';

function send(reply: WorkerReply): void {
  process.send?.(reply);
}

let grader: Grader;
try {
  grader = await createGrader(root, impl);
} catch (e) {
  send({ type: 'error', requestId: -1, message: `could not start the test runner: ${(e as Error).message}` });
  process.exit(1);
}
send({ type: 'ready' });

// One request at a time, in order.
let queue = Promise.resolve();
process.on('message', (msg: WorkerRequest) => {
  queue = queue.then(async () => {
    try {
      const results = await grader.grade(msg.ids, (event) => send({ type: 'progress', requestId: msg.requestId, event }));
      send({ type: 'result', requestId: msg.requestId, results });
    } catch (e) {
      send({ type: 'error', requestId: msg.requestId, message: (e as Error).message });
    }
  });
});
process.on('disconnect', () => {
  void grader.close().finally(() => process.exit(0));
});
