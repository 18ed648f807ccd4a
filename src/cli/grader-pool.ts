// A vitest pool for the long-lived grader: vitest's own `forks` pool, except that the next test
// process is forked ahead of time. Vitest starts a fresh process per test file and run (that is what
// keeps each grade isolated), and starting one — node, then vitest's worker runtime — is the largest
// part of a one-exercise re-grade in watch mode. Here that happens while the learner is still typing;
// the process a run takes has not run any test yet, so isolation is unchanged.
import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { PoolOptions, PoolRunnerInitializer, PoolWorker, WorkerRequest } from 'vitest/node';

/** After SIGTERM, how long a test process may take to exit before SIGKILL (vitest's own forks pool: 500 ms). */
const SIGKILL_AFTER_MS = 500;

export interface PreforkPool extends PoolRunnerInitializer {
  /** Kill the spare processes (they have run nothing). */
  dispose(): void;
}

export function preforkPool(): PreforkPool {
  // Spare processes, and the launch configuration they were forked with: a spare only goes to a task that
  // would have forked the same (vitest builds env and execArgv per run, so compare contents).
  const spares: ChildProcess[] = [];
  let sparesKey = '';
  let disposed = false;

  function take(options: PoolOptions): ChildProcess {
    const entry = resolve(options.distPath, 'workers/forks.js');
    const key = JSON.stringify([entry, options.execArgv, options.env]);
    if (key !== sparesKey) {
      for (const c of spares.splice(0)) c.kill('SIGKILL');
      sparesKey = key;
    }
    const launch = () => fork(entry, [], { env: options.env, execArgv: options.execArgv, stdio: 'pipe', serialization: 'advanced' });
    let child: ChildProcess | undefined;
    while ((child = spares.shift()) !== undefined && (child.exitCode !== null || child.signalCode !== null));
    child ??= launch();
    // The next run's process starts now, in the background.
    if (!disposed) spares.push(launch());
    return child;
  }

  return {
    name: 'prefork',
    createPoolWorker: (options) => new PreforkWorker(options, take),
    dispose() {
      disposed = true;
      for (const c of spares.splice(0)) c.kill('SIGKILL');
    },
  };
}

/** vitest's ForksPoolWorker, with the process coming from `take` instead of a fork on the spot. */
class PreforkWorker implements PoolWorker {
  readonly name = 'prefork';
  readonly cacheFs = true;
  private child: ChildProcess | undefined;

  constructor(
    private readonly options: PoolOptions,
    private readonly take: (options: PoolOptions) => ChildProcess,
  ) {}

  private get fork(): ChildProcess {
    if (this.child === undefined) throw new Error('the test process was stopped or never started');
    return this.child;
  }

  on(event: string, callback: (arg: any) => void): void {
    this.fork.on(event, callback);
  }

  off(event: string, callback: (arg: any) => void): void {
    this.fork.off(event, callback);
  }

  send(message: WorkerRequest): void {
    this.fork.send(message);
  }

  deserialize(data: unknown): unknown {
    return data;
  }

  async start(): Promise<void> {
    this.child ??= this.take(this.options);
    const logger = this.options.project.vitest.logger;
    this.child.stdout?.pipe(logger.outputStream, { end: false });
    this.child.stderr?.pipe(logger.errorStream, { end: false });
  }

  async stop(): Promise<void> {
    const child = this.fork;
    const exited = new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) done();
      else child.once('exit', () => done());
    });
    const kill = setTimeout(() => child.kill('SIGKILL'), SIGKILL_AFTER_MS);
    child.kill();
    await exited;
    clearTimeout(kill);
    this.child = undefined;
  }
}
