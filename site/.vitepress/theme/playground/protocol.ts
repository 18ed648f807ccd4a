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

/** One call of a host entry point (HOST_RIP): a VM exit, or a VM-entry failure (bit 31 of the reason). */
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
  instructionLength: number;
}

export interface VmcsDumpRow {
  name: string;
  encoding: string;
  type: string;
  value: string;
}

export interface HypervisorResult {
  model: string;
  /** What insmod said: 'ok', or its error message. */
  insmod: string;
  /** The kernel log (printk from the module, oops reports). */
  dmesg: string;
  /** Port E9H output of the guests. */
  console: string;
  exits: ExitRecord[];
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
}

export type WorkerReply =
  | ({ kind: 'result' } & RunResult)
  | ({ kind: 'hypervisor-result' } & HypervisorResult)
  | { kind: 'error'; error: string };
