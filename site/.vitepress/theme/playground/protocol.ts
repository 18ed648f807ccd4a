// Messages between the playground page and its worker. Two kinds of run: a guest program
// (assembled and run on a bare logical processor) and a hypervisor module (TypeScript, run as a
// kernel module on a booted host).
export interface RunRequest {
  kind: 'guest';
  source: string;
  budget: number;
}

export interface HypervisorRequest {
  kind: 'hypervisor';
  /** The module's TypeScript source. */
  source: string;
  budget: number;
  /** CPU model name (CPU_MODELS); empty for the default model. */
  model: string;
}

/** After a hypervisor run, in the same worker: walk a guest-physical address through the run's EPT. */
export interface ExplainGpaRequest {
  kind: 'explain-gpa';
  /** As the learner typed it. */
  gpa: string;
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

/** One VM exit, or a VM-entry failure (bit 31 of the reason), from the exit trace (src/debug/exit-trace.ts). */
export interface ExitRecord {
  cpu: number;
  /** The full VM_EXIT_REASON value. */
  reason: number;
  /** Basic reason (bits 15:0) and its Linux name. */
  basic: number;
  name: string;
  entryFailure: boolean;
  qualification: string;
  guestRip: string;
  /** VM_EXIT_INSTRUCTION_LEN; null where the SDM leaves it undefined for the exit. */
  instructionLength: number | null;
}

export interface VmcsDumpRow {
  name: string;
  encoding: string;
  type: string;
  /** Hex at the field's width, or why the value is undefined for the last exit. */
  value: string;
  undefinedForThisExit: boolean;
}

export interface HypervisorResult {
  model: string;
  /** What insmod said: 'ok', or its error message. */
  insmod: string;
  /** The kernel log (printk from the module, oops reports). */
  dmesg: string;
  /** Port E9H output of the guests. */
  console: string;
  /** The last VM exits (the trace keeps a bounded number), oldest first. */
  exits: ExitRecord[];
  /** All VM exits of the run, and how often each reason occurred. */
  exitsTotal: number;
  exitSummary: string[];
  /** The explanation channel: the last VMX failure on each CPU, formatted. */
  diagnoses: string[];
  /** The VMCS fields those diagnoses name (highlighted in the dump). */
  diagnosedFields: string[];
  /** How the machine run ended (or why it did not run). */
  stop: string;
  instructions: number;
  /** Which VMCS the dump shows (the current one after the run, or the last one seen at a VM exit). */
  vmcsSource: string;
  vmcs: VmcsDumpRow[];
  /** Whether the VMCS of the run enables EPT, and its EPT_POINTER or why there is nothing to walk. */
  ept: EptSummary;
}

export interface EptSummary {
  enabled: boolean;
  text: string;
}

export type WorkerReply =
  | ({ kind: 'result' } & RunResult)
  | ({ kind: 'hypervisor-result' } & HypervisorResult)
  | { kind: 'explain-gpa-result'; text: string }
  | { kind: 'error'; error: string };
