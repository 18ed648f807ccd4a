// The CLI side of grading: starts grader-worker.ts in its own process group, sends it
// requests, and stops it when learner code does not finish (an infinite loop in TypeScript
// cannot be interrupted from inside the same process). A stopped worker is restarted on the
// next request, so watch mode keeps going.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exercisePaths, allExercises } from '../../chapters/manifest.ts';
import type { Implementation } from './grader.ts';
import type { WorkerReply, WorkerRequest } from './grader-worker.ts';
import type { ExerciseResult } from './result.ts';

/** How long one grade request may take before we assume the code under test never finishes. */
export const DEFAULT_GRADE_TIMEOUT_MS = Number(process.env.VMXLAB_TIMEOUT_MS ?? 60_000);

const WORKER = fileURLToPath(new URL('./grader-worker.ts', import.meta.url));

export class GraderClient {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: ExerciseResult[]) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly root: string,
    private readonly impl: Implementation,
    private readonly timeoutMs = DEFAULT_GRADE_TIMEOUT_MS,
  ) {}

  /** Start the worker now (watch mode warms it up while the learner reads). */
  start(): Promise<void> {
    if (this.ready !== undefined) return this.ready;
    const child = fork(WORKER, [], {
      cwd: this.root,
      env: { ...process.env, VMXLAB_ROOT: this.root, VMXLAB_IMPL: this.impl },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      detached: true, // its own process group, so a stop reaches vitest's workers too
    });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    this.ready = new Promise((resolveReady, rejectReady) => {
      child.on('message', (msg: WorkerReply) => {
        if (msg.type === 'ready') return resolveReady();
        const p = this.pending.get(msg.requestId);
        if (msg.type === 'error' && msg.requestId === -1) return rejectReady(new Error(msg.message));
        if (p === undefined) return;
        this.pending.delete(msg.requestId);
        if (msg.type === 'result') p.resolve(msg.results);
        else p.reject(new Error(msg.message));
      });
      child.on('exit', (code) => {
        const err = new Error(`the grader stopped unexpectedly (exit ${code ?? 'signal'})${stderr ? `:\n${stderr.trim()}` : ''}`);
        rejectReady(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
        }
      });
    });
    return this.ready;
  }

  /** Grade exercises by id. Never rejects: a crash or a timeout becomes a `problem` on each result. */
  async grade(ids: readonly string[]): Promise<ExerciseResult[]> {
    try {
      await this.start();
      const child = this.child!;
      const requestId = this.nextId++;
      const answer = new Promise<ExerciseResult[]>((resolve, reject) => this.pending.set(requestId, { resolve, reject }));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
      });
      child.send({ type: 'grade', requestId, ids: [...ids] } satisfies WorkerRequest);
      const outcome = await Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
      if (outcome === 'timeout') {
        this.pending.delete(requestId);
        this.kill();
        // Find out which exercise never finishes: grade them one by one.
        if (ids.length > 1) {
          const one: ExerciseResult[] = [];
          for (const id of ids) one.push(...(await this.grade([id])));
          return one;
        }
        return ids.map((id) =>
          problemResult(id, `did not finish within ${Math.round(this.timeoutMs / 1000)} s — is there an infinite loop? The tests were stopped; your file is unchanged.`),
        );
      }
      return outcome;
    } catch (e) {
      return ids.map((id) => problemResult(id, (e as Error).message));
    }
  }

  kill(): void {
    const child = this.child;
    if (child?.pid === undefined) return;
    this.child = undefined;
    this.ready = undefined;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }

  async close(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.disconnect();
    const t = setTimeout(() => this.kill(), 5000);
    await exited;
    clearTimeout(t);
  }
}

function problemResult(id: string, message: string): ExerciseResult {
  const ref = allExercises().find((r) => r.exercise.id === id);
  const file = ref === undefined ? id : exercisePaths(ref).exercise;
  return {
    id,
    chapter: ref?.chapter.slug ?? '',
    title: ref?.exercise.title ?? id,
    passed: false,
    points: 0,
    maxPoints: ref?.exercise.points ?? 0,
    tests: { total: 0, passed: 0, failed: 0 },
    failures: [],
    problem: `${file}: ${message}`,
  };
}
