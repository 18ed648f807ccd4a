// A stand-in for grader-worker.ts in the GraderClient's own tests: it speaks the same IPC protocol
// and grades by script instead of running vitest, so what the client does on a timeout can be
// tested without any real code, and without depending on how fast the machine is.
//   VMXLAB_FAKE_SCRIPT  JSON: exercise id → 'pass' (tests run and end) or 'loop' (tests start, never end)
//   VMXLAB_FAKE_LOG     a file: one line per request, the ids it asked for
import { appendFileSync } from 'node:fs';
import type { WorkerReply, WorkerRequest } from './grader-worker.ts';
import type { ExerciseResult } from './result.ts';

const script = JSON.parse(process.env.VMXLAB_FAKE_SCRIPT ?? '{}') as Record<string, 'pass' | 'loop'>;
const send = (reply: WorkerReply): void => {
  process.send?.(reply);
};

function passed(id: string): ExerciseResult {
  return {
    id,
    chapter: 'fake',
    title: `graded by process ${process.pid}`,
    passed: true,
    points: 1,
    maxPoints: 1,
    tests: { total: 1, passed: 1, failed: 0 },
    failures: [],
  };
}

process.on('message', ({ requestId, ids }: WorkerRequest) => {
  appendFileSync(process.env.VMXLAB_FAKE_LOG!, `${ids.join(' ')}\n`);
  const results: ExerciseResult[] = [];
  for (const id of ids) {
    send({ type: 'progress', requestId, event: { type: 'running', id } });
    if (script[id] === 'loop') return; // its tests never end: no reply, ever
    send({ type: 'progress', requestId, event: { type: 'ended', id } });
    const r = passed(id);
    results.push(r);
    send({ type: 'progress', requestId, event: { type: 'done', result: r } });
  }
  send({ type: 'result', requestId, results });
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
