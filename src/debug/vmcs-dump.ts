// The VMCS dump: every field this CPU supports, with its encoding and value, grouped as the SDM appendix groups
// them — what KVM's dump_vmcs() prints when a VM entry fails. VM-exit information fields the SDM leaves undefined
// for the last exit are labelled so instead of showing a number as if it meant something: the emulator fills them
// with a poison value (UNDEFINED_32 / UNDEFINED_64), and a VM-entry failure leaves all but the exit reason and
// qualification as an earlier exit wrote them. See SDM Vol. 3C, "Recording VM-Exit Information and Updating VM-Entry
// Control Fields" and "VM-Entry Failures During or After Loading Guest State".
//
// Reading never changes architectural state: no VMREAD (which would set RFLAGS and could fail), only the
// processor's copy of the current VMCS (src/vmx/vmcs.ts, ActiveVmcs), read through the field table.
import { VMCS_FIELD_GROUPS, type VmcsField, type VmcsType, type VmcsWidth } from '../vmx/fields.ts';
import { exitReasonByNumber, EXIT_REASON_BASIC_MASK, VMX_EXIT_REASONS_FAILED_VMENTRY } from '../vmx/exit-reasons.ts';
import { UNDEFINED_32, UNDEFINED_64, UNDEFINED_INVALID_INFO } from '../vmx/exit/index.ts';
import { ActiveVmcs, SLOT, SLOT_FIELDS, type LaunchState } from '../vmx/vmcs.ts';
import { VmxUnitImpl } from '../vmx/unit.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import type { VmxState } from '../vmx/state.ts';
import { hexPadded } from './hex.ts';

/** A copy of a VMCS at one moment (e.g. a VM exit), to dump later: the module may VMCLEAR it or leave VMX. */
export interface VmcsSnapshot {
  readonly vmcs: ActiveVmcs;
  /** Supported-field flags per slot of the CPU model (src/vmx/vmcs-support.ts). */
  readonly supported: Uint8Array;
}

/** What can be dumped: a VMX unit or a host CPU (their current VMCS), or a snapshot. */
export type VmcsDumpSource = { readonly state: VmxState } | { readonly lp: LogicalProcessor } | VmcsSnapshot;

export interface VmcsDumpRow {
  readonly name: string;
  readonly encoding: number;
  readonly width: VmcsWidth;
  readonly type: VmcsType;
  /** The SDM appendix table the field is listed in, e.g. "32-Bit Read-Only Data Fields". */
  readonly group: string;
  readonly value: bigint;
  /** The value carries no information about the last VM exit (see `why`). */
  readonly undefinedForThisExit: boolean;
  /** Why: the exit poisoned the field, or a VM-entry failure left it as it was. */
  readonly why?: UndefinedWhy;
}

export type UndefinedWhy = 'poisoned' | 'unmodified-by-entry-failure';
/** The SDM's reason for each case, for a legend under a dump. */
export const UNDEFINED_WHY: Readonly<Record<UndefinedWhy, string>> = {
  poisoned: 'the SDM leaves the field undefined for this exit; the emulator filled it with a poison value',
  'unmodified-by-entry-failure': 'a VM-entry failure writes only the exit reason and qualification; the field keeps its old value',
};

export interface VmcsDump {
  /** Physical address of the VMCS region. */
  readonly pointer: bigint;
  readonly launchState: LaunchState;
  /** The full VM_EXIT_REASON value the dump saw. */
  readonly exitReason: number;
  readonly rows: readonly VmcsDumpRow[];
}

/** The exit-information fields a VM-entry failure writes (VM_INSTRUCTION_ERROR belongs to VMfailValid). */
const WRITTEN_BY_ENTRY_FAILURE = new Set(['VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'VM_INSTRUCTION_ERROR']);
/** The appendix table of each slot's field. */
const SLOT_GROUP = SLOT_FIELDS.map((f) => VMCS_FIELD_GROUPS.find((g) => g.width === f.width && g.type === f.type)!.appendix);

/** Copy the current VMCS of a unit or host CPU; null if it has none. */
export function snapshotVmcs(source: VmcsDumpSource): VmcsSnapshot | null {
  const s = resolve(source);
  if (s === null) return null;
  const copy = new ActiveVmcs(s.vmcs.pa);
  copy.data.set(s.vmcs.data);
  copy.launchState = s.vmcs.launchState;
  copy.shadow = s.vmcs.shadow;
  return { vmcs: copy, supported: s.supported };
}

/** Every field the CPU supports, in SDM appendix order; null if there is no current VMCS to dump. */
export function dumpVmcs(source: VmcsDumpSource): VmcsDump | null {
  const s = resolve(source);
  if (s === null) return null;
  const { vmcs, supported } = s;
  const exitReason = vmcs.readLow(SLOT.VM_EXIT_REASON) >>> 0;
  const entryFailure = (exitReason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0;
  const rows: VmcsDumpRow[] = [];
  SLOT_FIELDS.forEach((f, slot) => {
    if (supported[slot] !== 1) return;
    const value = vmcs.read(slot);
    const why = undefinedWhy(f, value, entryFailure);
    rows.push({
      name: f.name, encoding: f.encoding, width: f.width, type: f.type, group: SLOT_GROUP[slot]!, value,
      undefinedForThisExit: why !== undefined, ...(why !== undefined ? { why } : {}),
    });
  });
  return { pointer: vmcs.pa, launchState: vmcs.launchState, exitReason, rows };
}

/** A field's value as the dump shows it: hex at the field's width, or what makes it undefined for this exit. */
export function formatVmcsValue(row: VmcsDumpRow): string {
  const hex = hexPadded(row.value, row.width === '16' ? 4 : row.width === '32' ? 8 : 16);
  if (!row.undefinedForThisExit) return hex;
  return row.why === 'unmodified-by-entry-failure' ? `not written by this VM-entry failure (still ${hex})` : `undefined for this exit (poison ${hex})`;
}

/** The dump as text, one SDM appendix group after another; `filter` keeps only the fields whose name contains it. */
export function formatVmcsDump(dump: VmcsDump, opts: { filter?: string } = {}): string {
  const filter = opts.filter?.toUpperCase();
  const rows = filter === undefined ? dump.rows : dump.rows.filter((r) => r.name.includes(filter));
  const lines = [`VMCS at ${hexPadded(dump.pointer, 8)} (launch state ${dump.launchState}), last VM_EXIT_REASON ${describeReason(dump.exitReason)}:`];
  let group = '';
  for (const r of rows) {
    if (r.group !== group) lines.push(`  ${(group = r.group)}`);
    lines.push(`    ${r.name.padEnd(34)} ${hexPadded(r.encoding, 4)}  ${formatVmcsValue(r)}`);
  }
  return lines.join('\n');
}

/** A field that differs between two dumps (or exists in only one of them). */
export interface VmcsDiffRow {
  readonly name: string;
  readonly before: VmcsDumpRow | undefined;
  readonly after: VmcsDumpRow | undefined;
}

/** The fields whose value or definedness changed from `before` to `after`, in SDM appendix order. */
export function diffVmcs(before: VmcsDump, after: VmcsDump): VmcsDiffRow[] {
  const old = new Map(before.rows.map((r) => [r.name, r]));
  const out: VmcsDiffRow[] = [];
  for (const a of after.rows) {
    const b = old.get(a.name);
    old.delete(a.name);
    if (b === undefined || b.value !== a.value || b.undefinedForThisExit !== a.undefinedForThisExit) out.push({ name: a.name, before: b, after: a });
  }
  for (const b of old.values()) out.push({ name: b.name, before: b, after: undefined });
  return out;
}

export function formatVmcsDiff(diff: readonly VmcsDiffRow[]): string {
  if (diff.length === 0) return 'VMCS: no field changed.';
  const cell = (r: VmcsDumpRow | undefined): string => (r === undefined ? '(not in this dump)' : formatVmcsValue(r));
  return [`VMCS: ${diff.length} field${diff.length === 1 ? '' : 's'} changed:`, ...diff.map((d) => `    ${d.name.padEnd(34)} ${cell(d.before)} -> ${cell(d.after)}`)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------

function resolve(source: VmcsDumpSource): VmcsSnapshot | null {
  if ('vmcs' in source) return source;
  const state = 'state' in source ? source.state : source.lp.vmx instanceof VmxUnitImpl ? source.lp.vmx.state : null;
  if (state === null || state.current === null) return null;
  return { vmcs: state.current, supported: state.supportedSlots };
}

/**
 * Why an exit-information field means nothing for the last exit, or undefined if it does. A VM-entry failure
 * leaves every field but the reason and qualification unmodified; an ordinary exit poisons the fields the SDM
 * does not define for it (interruption information keeps bit 31 clear: "invalid, remainder undefined").
 */
function undefinedWhy(f: VmcsField, value: bigint, entryFailure: boolean): UndefinedWhy | undefined {
  if (f.type !== 'exit-info') return undefined;
  if (entryFailure) return WRITTEN_BY_ENTRY_FAILURE.has(f.name) ? undefined : 'unmodified-by-entry-failure';
  const poison = f.width === '32' ? value === BigInt(UNDEFINED_32) || value === BigInt(UNDEFINED_INVALID_INFO) : f.width !== '16' && value === UNDEFINED_64;
  return poison ? 'poisoned' : undefined;
}

function describeReason(reason: number): string {
  const basic = reason & EXIT_REASON_BASIC_MASK;
  const failed = (reason & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0 ? ', VM-entry failure (bit 31)' : '';
  return `${hexPadded(reason, 8)} (${exitReasonByNumber(basic)?.name ?? `unknown reason ${basic}`}${failed})`;
}
