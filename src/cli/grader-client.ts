// The CLI side of grading: starts grader-worker.ts in its own process group, sends it
// requests, and stops it when learner code does not finish (an infinite loop in TypeScript
// cannot be interrupted from inside the same process). A stopped worker is restarted on the
// next request, so watch mode keeps going.
// The time limit applies to each exercise's tests: the worker reports when an exercise's tests
// start and end and when its result is final, so on a timeout the exercise that never finished is
// known, results already final are kept, and only the exercises not yet graded are graded again.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exercisePaths, allExercises } from '../../chapters/manifest.ts';
import type { GradeEvent, Implementation } from './grader.ts';
import type { WorkerReply, WorkerRequest } from './grader-worker.ts';
import type { ExerciseResult } from './result.ts';

/** How long one exercise's tests may run before we assume the code under test never finishes (VMXLAB_TIMEOUT_MS, default 60 s). */
export function gradeTimeoutMs(): number {
  return Number(process.env.VMXLAB_TIMEOUT_MS ?? 60_000);
}

const WORKER = fileURLToPath(new URL('./grader-worker.ts', import.meta.url));
/**
 * How the worker starts: vitest (plain JavaScript, over a thousand modules) is loaded before tsx registers its
 * loader hooks, which would otherwise see every one of those modules; then tsx, for the worker's own TypeScript.
 * This takes about a second off every cold start (a `vmxlab grade`, the author checks, watch mode's first verdict).
 */
const WORKER_EXEC_ARGV = ['--import', `data:text/javascript,${encodeURIComponent(`import ${JSON.stringify(import.meta.resolve('vitest/node'))};`)}`, '--import', 'tsx'];

export class GraderClient {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 1;
  private pending = new Map<
    number,
    { resolve: (r: ExerciseResult[]) => void; reject: (e: Error) => void; progress: (e: GradeEvent) => void }
  >();

  constructor(
    private readonly root: string,
    private readonly impl: Implementation,
    private readonly timeoutMs = gradeTimeoutMs(),
    /** The worker's module (the client's own tests use a scripted stand-in). */
    private readonly worker = WORKER,
  ) {}

  /** Start the worker now (watch mode warms it up while the learner reads). */
  start(): Promise<void> {
    if (this.ready !== undefined) return this.ready;
    const child = fork(this.worker, [], {
      cwd: this.root,
      env: { ...process.env, VMXLAB_ROOT: this.root, VMXLAB_IMPL: this.impl },
      execArgv: WORKER_EXEC_ARGV,
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
        if (msg.type === 'progress') return p.progress(msg.event);
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

  /**
   * Grade exercises by id. Never rejects: a crash or a timeout becomes a `problem` on each result.
   * `timeoutMs` overrides the client's limit for this request.
   */
  async grade(ids: readonly string[], opts: { timeoutMs?: number } = {}): Promise<ExerciseResult[]> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    let outcome: ExerciseResult[] | { stuck: readonly string[]; final: ReadonlyMap<string, ExerciseResult> };
    try {
      await this.start();
      outcome = await this.request(ids, timeoutMs);
    } catch (e) {
      return ids.map((id) => problemResult(id, (e as Error).message));
    }
    if (Array.isArray(outcome)) return outcome;
    // Something never finished: stop the worker (and every test process with it), report the exercises that
    // ran out of time, keep the results that were final, and grade the rest again in a fresh worker.
    this.kill();
    const { stuck, final } = outcome;
    const rest = ids.filter((id) => !final.has(id) && !stuck.includes(id));
    const again = rest.length > 0 ? await this.grade(rest, opts) : [];
    const limit = `did not finish within ${Math.round(timeoutMs / 1000)} s — is there an infinite loop? The tests were stopped; your file is unchanged.`;
    return ids.map((id) => final.get(id) ?? again.find((r) => r.id === id) ?? problemResult(id, limit));
  }

  /** One request to the running worker; on a timeout, which exercises never finished and which results are final. */
  private request(ids: readonly string[], timeoutMs: number): Promise<ExerciseResult[] | { stuck: readonly string[]; final: ReadonlyMap<string, ExerciseResult> }> {
    const child = this.child!;
    const requestId = this.nextId++;
    const final = new Map<string, ExerciseResult>();
    const running = new Map<string, number>(); // exercise id → when its tests started
    let timer: NodeJS.Timeout | undefined;
    return new Promise((resolve, reject) => {
      const settle = (value: ExerciseResult[] | { stuck: readonly string[]; final: ReadonlyMap<string, ExerciseResult> }) => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        resolve(value);
      };
      // One timer, for the exercise that has been running longest.
      const arm = (): void => {
        clearTimeout(timer);
        if (running.size === 0) return;
        const deadline = Math.min(...running.values()) + timeoutMs;
        timer = setTimeout(() => {
          const now = performance.now();
          const stuck = [...running].filter(([, started]) => now - started >= timeoutMs).map(([id]) => id);
          if (stuck.length === 0) arm();
          else settle({ stuck, final });
        }, Math.max(0, deadline - performance.now()));
      };
      this.pending.set(requestId, {
        resolve: (results) => settle(results),
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        progress: (event) => {
          if (event.type === 'running') running.set(event.id, performance.now());
          else if (event.type === 'ended') running.delete(event.id);
          else final.set(event.result.id, event.result);
          arm();
        },
      });
      child.send({ type: 'grade', requestId, ids: [...ids] } satisfies WorkerRequest);
    });
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
