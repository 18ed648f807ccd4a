// The VM-exit trace: every VM exit (and VM-entry failure exit) of a host's logical processors, as the exit-
// information fields reported it — what `perf kvm stat` or a printk in the exit handler would show on Linux. The
// last `capacity` exits are kept in a ring buffer; the count per exit reason is kept exactly for the whole run, so
// the summary stays right however long the guest loops.
//
//   const trace = traceExits(host);
//   runGuests(host);
//   trace.format();   // the last exits, then how often each reason occurred
//   trace.stop();
//
// Recording reads the VMCS storage only (through the VMX unit's observer seam): it never changes what the guest or
// the hypervisor sees. See SDM Vol. 3C, "Basic VM-Exit Information".
import type { VmExitEvent, VmxObserver } from '../vmx/observe.ts';
import { hexPadded } from './hex.ts';

/** Anything with VMX units to watch: a booted host, or the units themselves. */
export type ExitTraceSource = { readonly vmx: readonly Observable[] } | readonly Observable[];
interface Observable {
  observe(o: VmxObserver): () => void;
}

/** One recorded exit; `index` counts exits from 1 over the whole trace (also those the ring has dropped). */
export interface TracedExit extends VmExitEvent {
  readonly index: number;
}

export interface ExitReasonCount {
  readonly basicReason: number;
  readonly name: string;
  readonly count: number;
  /** count / all exits, 0..1. */
  readonly share: number;
}

export interface ExitTrace {
  /** The exits still in the ring buffer, oldest first. */
  readonly entries: readonly TracedExit[];
  /** Every exit since the trace started, including those the ring buffer no longer holds. */
  readonly total: number;
  /** Exits per basic reason, most frequent first (ties by reason number): exact, not limited by the ring. */
  summary(): ExitReasonCount[];
  /** A text table of the last `last` exits (default: all kept), then the summary. */
  format(opts?: { last?: number }): string;
  /** Stop recording (unsubscribe from every unit); what was recorded stays readable. */
  stop(): void;
}

export const DEFAULT_TRACE_CAPACITY = 1024;

export function traceExits(source: ExitTraceSource, opts: { capacity?: number } = {}): ExitTrace {
  const units = 'vmx' in source ? source.vmx : source;
  const capacity = Math.max(1, Math.floor(opts.capacity ?? DEFAULT_TRACE_CAPACITY));
  const ring: VmExitEvent[] = [];
  let next = 0; // where the next exit goes once the ring is full
  let total = 0;
  const counts = new Map<number, { name: string; count: number }>();

  const record = (e: VmExitEvent): void => {
    total++;
    const c = counts.get(e.basicReason);
    if (c === undefined) counts.set(e.basicReason, { name: e.name, count: 1 });
    else c.count++;
    if (ring.length < capacity) ring.push(e);
    else {
      ring[next] = e;
      next = (next + 1) % capacity;
    }
  };
  const unsubscribe = units.map((u) => u.observe({ onVmExit: record }));

  const entries = (): TracedExit[] => {
    const ordered = ring.length < capacity ? ring : [...ring.slice(next), ...ring.slice(0, next)];
    const first = total - ordered.length + 1;
    return ordered.map((e, i) => ({ ...e, index: first + i }));
  };
  const summary = (): ExitReasonCount[] =>
    [...counts]
      .map(([basicReason, { name, count }]) => ({ basicReason, name, count, share: count / total }))
      .sort((a, b) => b.count - a.count || a.basicReason - b.basicReason);

  return {
    get entries() {
      return entries();
    },
    get total() {
      return total;
    },
    summary,
    format: (o = {}) => formatTrace(entries(), total, summary(), o.last),
    stop: () => {
      for (const u of unsubscribe.splice(0)) u();
    },
  };
}

/** The exit table and the summary, as text (a failing test's message, the CLI, a log). */
function formatTrace(all: readonly TracedExit[], total: number, summary: readonly ExitReasonCount[], last?: number): string {
  if (total === 0) return 'VM exits: none.';
  const shown = last === undefined ? all : all.slice(Math.max(0, all.length - last));
  const lines = [
    shown.length === total ? `VM exits (${total}):` : `VM exits: the last ${shown.length} of ${total}:`,
    `  ${'#'.padStart(6)}  cpu  ${'reason'.padEnd(40)}  ${'qualification'.padEnd(18)}  ${'guest RIP'.padEnd(18)}  len  instructions`,
  ];
  for (const e of shown) {
    const reason = `${e.basicReason} ${e.name}${e.entryFailure ? ' (entry failed)' : ''}`;
    const length = e.instructionLength === undefined ? '-' : String(e.instructionLength);
    lines.push(`  ${String(e.index).padStart(6)}  ${String(e.lp).padStart(3)}  ${reason.padEnd(40)}  ${hexPadded(e.qualification, 16)}  ${hexPadded(e.guestRip, 16)}  ${length.padStart(3)}  ${e.instructions}`);
  }
  if (shown.some((e) => e.instructionLength === undefined)) lines.push('  (len -: VM_EXIT_INSTRUCTION_LEN is undefined for that exit)');
  lines.push('Exits per reason:');
  for (const s of summary) {
    lines.push(`  ${`${s.basicReason} ${s.name}`.padEnd(40)}  ${String(s.count).padStart(9)}  ${(100 * s.share).toFixed(1).padStart(5)}%`);
  }
  return lines.join('\n');
}
