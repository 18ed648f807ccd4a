// VMRESUME after VMRESUME: an exit handler usually changes a few VMCS fields (GUEST_RIP, a register it emulated)
// and resumes. Running every VM-entry check again each time is most of the cost of a VM exit, so this CPU remembers,
// for each VMCS in its cache, what the checks read the last time they all passed: the fields each check read, and
// the value of every field then. The next VM entry of that VMCS runs again only
//  - the checks that read a field whose value is not the one they saw (whoever changed it: VMWRITE, the VM exit
//    that saved guest state, a failed VM entry writing the exit reason — the values are compared, not the writes
//    tracked, so no path that changes the VMCS can be missed), and
//  - the checks that read state outside the VMCS (guest memory, the host's IA-32e mode), every time.
// A check is a pure function of what it reads, so one whose inputs are the same gives the same answer, and the
// first check that fails, in SDM order, is the one a full run finds: same error number or exit reason and
// qualification, same diagnosis. After any failure the memo is dropped and the next entry checks everything.
// The SDM says what VM entry checks, not how a processor avoids re-checking; software cannot tell the difference.
// See SDM Vol. 3C, "Checks on VMX Controls and Host-State Area" and "Checking and Loading Guest State".
import type { CheckFailure, StateCheck } from './rule.ts';
import type { EntryView } from './view.ts';

/** The processor's cached copy of a VMCS, as the memo sees it: field values as lo/hi pairs by slot (src/vmx/vmcs.ts). */
export interface CachedVmcsData {
  readonly data: Uint32Array;
}

/** What one check (or the view's own decoding of the controls) read: VMCS slots, and whether anything else. */
export class ReadRecorder {
  private slots = new Uint16Array(64);
  private count = 0;
  /** A read outside the VMCS (memory, processor state): the reader must run every time. */
  outside = false;

  begin(): void {
    this.count = 0;
    this.outside = false;
  }
  note(slot: number): void {
    if (this.count === this.slots.length) {
      const bigger = new Uint16Array(this.slots.length * 2);
      bigger.set(this.slots);
      this.slots = bigger;
    }
    this.slots[this.count++] = slot;
  }
  /** The slots read since `begin`, or null when something outside the VMCS was read. */
  take(): Uint16Array | null {
    return this.outside ? null : this.slots.slice(0, this.count);
  }
  /** `changed(take(), data, snapshot)` without the copy (true as well when something outside the VMCS was read). */
  changedSince(data: Uint32Array, snapshot: Uint32Array): boolean {
    return this.outside || changed(this.slots.subarray(0, this.count), data, snapshot);
  }
}

interface CheckMemo {
  /** Field values when every check last passed. */
  readonly snapshot: Uint32Array;
  /** Per check (STATE_CHECKS order): the slots it read then; null: it reads outside the VMCS (always re-run). */
  readonly reads: (Uint16Array | null)[];
  /** Per check: bit (slot mod 32) set for each slot in `reads` — a quick "cannot have changed" test. */
  readonly masks: Int32Array;
  /** Indexes of the checks whose `reads` is null (they read outside the VMCS); null: to be recomputed. */
  outside: number[] | null;
  /** Slots the EntryView read to decode the controls and RFLAGS.VM, which every check may depend on. */
  viewReads: Uint16Array | null;
}

const MEMOS = new WeakMap<CachedVmcsData, CheckMemo>();

export type FirstFailure = { readonly check: StateCheck; readonly result: false | CheckFailure } | null;

/**
 * The first of `checks` that fails on `v`, or null when all pass. With `cached` (the VMCS being entered), only
 * the checks whose inputs changed since they last all passed on it are run (see the header); without, all.
 * `v` must have been built with `recorder` when `cached` is given (its constructor reads count as inputs).
 */
export function firstFailingCheck(
  v: EntryView, checks: readonly StateCheck[], cached?: CachedVmcsData, recorder?: ReadRecorder,
): FirstFailure {
  if (cached === undefined || recorder === undefined) {
    for (const check of checks) {
      const r = check.check(v);
      if (r !== true) return { check, result: r };
    }
    return null;
  }
  const data = cached.data;
  let memo = MEMOS.get(cached);
  // The decoded controls are inputs of every check: if they changed, or were read with anything else, check all.
  if (memo !== undefined && (memo.viewReads === null || changed(memo.viewReads, data, memo.snapshot) || recorder.changedSince(data, memo.snapshot))) {
    memo = undefined;
  }
  const fresh = memo === undefined;
  // Which slots changed, folded into 32 bits (slot mod 32): a check none of whose bits is set has nothing to re-read.
  const changedMask = memo === undefined ? -1 : changedSlotsMask(data, memo.snapshot);
  // What the view read, kept only when the memo is (re)written below; the checks reuse the recorder.
  const viewReads = changedMask === 0 ? null : recorder.take();
  const m: CheckMemo = memo ?? {
    snapshot: new Uint32Array(data.length), reads: new Array<Uint16Array | null>(checks.length).fill(null),
    masks: new Int32Array(checks.length), outside: null, viewReads,
  };
  v.recorder = recorder;
  try {
    if (changedMask === 0) {
      // No field holds a value other than the one the checks last saw (an exit handler that changed only registers):
      // only the checks that read outside the VMCS can answer differently.
      m.outside ??= m.reads.flatMap((r, i) => (r === null ? [i] : []));
      for (const i of m.outside) {
        recorder.begin();
        const r = checks[i]!.check(v);
        if (r !== true) {
          MEMOS.delete(cached);
          return { check: checks[i]!, result: r };
        }
        const now = recorder.take();
        if (now !== null) {
          // This time it read only VMCS fields: remember them (and find the outside readers again next time).
          m.reads[i] = now;
          m.masks[i] = maskOf(now);
          m.outside = null;
        }
      }
      return null;
    }
    for (let i = 0; i < checks.length; i++) {
      const reads = m.reads[i]!;
      if (!fresh && reads !== null && ((m.masks[i]! & changedMask) === 0 || !changed(reads, data, m.snapshot))) continue;
      recorder.begin();
      const r = checks[i]!.check(v);
      if (r !== true) {
        MEMOS.delete(cached);
        return { check: checks[i]!, result: r };
      }
      const now = recorder.take();
      m.reads[i] = now;
      m.masks[i] = now === null ? -1 : maskOf(now);
      m.outside = null;
    }
  } finally {
    v.recorder = null;
  }
  m.snapshot.set(data);
  m.viewReads = viewReads;
  MEMOS.set(cached, m);
  return null;
}

/** Bit (slot mod 32) for every slot whose value differs from `snapshot`. */
function changedSlotsMask(data: Uint32Array, snapshot: Uint32Array): number {
  let mask = 0;
  for (let s = 0; s < data.length; s += 2) {
    if (data[s] !== snapshot[s] || data[s + 1] !== snapshot[s + 1]) mask |= 1 << ((s >> 1) & 31);
  }
  return mask;
}

function maskOf(slots: Uint16Array): number {
  let mask = 0;
  for (let i = 0; i < slots.length; i++) mask |= 1 << (slots[i]! & 31);
  return mask;
}

/** Does any of `slots` hold a value other than the one in `snapshot`? */
function changed(slots: Uint16Array, data: Uint32Array, snapshot: Uint32Array): boolean {
  for (let i = 0; i < slots.length; i++) {
    const s = 2 * slots[i]!;
    if (data[s] !== snapshot[s] || data[s + 1] !== snapshot[s + 1]) return true;
  }
  return false;
}
