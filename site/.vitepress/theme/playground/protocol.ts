// Messages between the playground page and its worker.
export interface RunRequest {
  source: string;
  budget: number;
}

export interface RunResult {
  /** Bytes the guest wrote to the debug console, port E9H. */
  console: string;
  /** Register name → value after the run. */
  registers: { name: string; value: string }[];
  /** Why the run stopped: HLT, budget exhausted, a fault… */
  stop: string;
  instructions: number;
  /** Assembled size, for the status line. */
  bytes: number;
}

export type WorkerReply = ({ kind: 'result' } & RunResult) | { kind: 'error'; error: string };
