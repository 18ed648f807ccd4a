// The grader's prechecks (precheck.ts: syntax, exports, types) in a worker thread of the grader
// process. Loading the TypeScript compiler and type-checking take about as long as starting vitest,
// and the box has two cores: in a thread they overlap vitest's start-up and test runs instead of
// adding to them, and the thread's language service stays warm between watch-mode saves.
// Learner code never runs here; the compiler only reads it.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Implementation } from './grader.ts';

export interface PrecheckItem {
  /** The exercise id. */
  readonly id: string;
  /** Absolute path of the file under grade. */
  readonly file: string;
  /** The path shown to the learner (relative to the course root). */
  readonly display: string;
  /** Absolute path of the exercise's test file (for the names it imports). */
  readonly test: string;
}

/** Problems by exercise id; an exercise without a problem is absent. */
export type Problems = Record<string, string>;

interface Request {
  readonly requestId: number;
  readonly items: readonly PrecheckItem[];
}
type Reply =
  | { readonly requestId: number; readonly phase: 'parse' | 'types'; readonly problems: Problems }
  | { readonly requestId: -1; readonly phase: 'crash'; readonly message: string };

export interface Prechecks {
  /**
   * `parsed`: syntax errors and missing exports (milliseconds once the compiler is loaded);
   * `typed`: type errors of the items `parsed` found no problem in.
   */
  run(items: readonly PrecheckItem[]): { parsed: Promise<Problems>; typed: Promise<Problems> };
  close(): Promise<void>;
}

/** Package-imports conditions under which `#impl/...` points at the implementation graded. */
export function conditionsOf(impl: Implementation): string[] {
  return impl === 'exercises' ? [] : [impl];
}

export function startPrechecks(root: string, impl: Implementation): Prechecks {
  // The thread runs TypeScript sources: register tsx there first, as bin/vmxlab.js does for the CLI.
  const [tsx, self] = [import.meta.resolve('tsx/esm/api'), import.meta.url].map((u) => JSON.stringify(u));
  const boot = `import(${tsx}).then((m) => { m.register(); return import(${self}); })`;
  const worker = new Worker(boot, {
    eval: true,
    workerData: { vmxlabPrecheck: true, root, conditions: conditionsOf(impl) },
  });
  worker.unref();
  const waiting = new Map<number, { parse: Deferred; types: Deferred }>();
  let failure: Error | undefined;
  const failAll = (e: Error): void => {
    failure ??= e;
    for (const w of waiting.values()) {
      w.parse.reject(e);
      w.types.reject(e);
    }
    waiting.clear();
  };
  worker.on('message', (reply: Reply) => {
    if (reply.phase === 'crash') return failAll(new Error(`the compiler check failed: ${reply.message}`));
    const w = waiting.get(reply.requestId);
    if (w === undefined) return;
    if (reply.phase === 'parse') w.parse.resolve(reply.problems);
    else {
      w.types.resolve(reply.problems);
      waiting.delete(reply.requestId);
    }
  });
  worker.on('error', (e) => failAll(e));
  worker.on('exit', (code) => failAll(new Error(`the compiler check stopped (exit ${code})`)));
  let next = 1;
  return {
    run(items) {
      const parse = deferred();
      const types = deferred();
      if (failure !== undefined) {
        parse.reject(failure);
        types.reject(failure);
      } else {
        const requestId = next++;
        waiting.set(requestId, { parse, types });
        worker.postMessage({ requestId, items } satisfies Request);
      }
      // A caller that stops after `parsed` must not leave `typed` rejected and unhandled.
      types.promise.catch(() => undefined);
      return { parsed: parse.promise, typed: types.promise };
    },
    async close() {
      await worker.terminate();
    },
  };
}

interface Deferred {
  promise: Promise<Problems>;
  resolve(p: Problems): void;
  reject(e: Error): void;
}

function deferred(): Deferred {
  let resolve!: (p: Problems) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<Problems>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

// The thread: one request at a time, in order.
if (!isMainThread && (workerData as { vmxlabPrecheck?: boolean } | undefined)?.vmxlabPrecheck === true) {
  const { root, conditions } = workerData as { root: string; conditions: string[] };
  const port = parentPort!;
  try {
    const { createTypeCheck, importedImplNames, precheckExercise } = await import('./precheck.ts');
    const types = createTypeCheck(root, conditions);
    port.on('message', ({ requestId, items }: Request) => {
      try {
        const parsed: Problems = {};
        for (const item of items) {
          const problem = precheckExercise(item.file, item.display, importedImplNames(item.test));
          if (problem !== undefined) parsed[item.id] = problem;
        }
        port.postMessage({ requestId, phase: 'parse', problems: parsed } satisfies Reply);
        const typed: Problems = {};
        const compiled = items.filter((item) => parsed[item.id] === undefined);
        const problems = types.check(compiled);
        for (const item of compiled) {
          const problem = problems.get(item.file);
          if (problem !== undefined) typed[item.id] = problem;
        }
        port.postMessage({ requestId, phase: 'types', problems: typed } satisfies Reply);
      } catch (e) {
        port.postMessage({ requestId: -1, phase: 'crash', message: (e as Error).stack ?? String(e) } satisfies Reply);
      }
    });
  } catch (e) {
    port.postMessage({ requestId: -1, phase: 'crash', message: (e as Error).stack ?? String(e) } satisfies Reply);
  }
}
