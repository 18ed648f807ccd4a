// The explanation channel for EPT: why a guest-physical access ended in an EPT violation or an EPT misconfiguration,
// naming the level, the entry's physical address and value, the bit and the rule, with the SDM section — the shape of
// diagnosis.ts, so the VM-exit path can record it as the last diagnosis. Reading it never changes the architectural
// outcome (the exit reason and qualification come from walk.ts alone). See DESIGN.md, "Principles" (two channels).
import type { Diagnosis } from '../diagnosis.ts';
import { hex } from '../../util/hex.ts';
import { bitOf, EPT_BIT, EPT_LEVEL_NAMES, fieldAt, type EptLevel } from './entry.ts';
import { EPT_MISCONFIG_RULES } from './misconfig.ts';
import { EPT_QUAL_MEANINGS, qualHas } from './qualification.ts';
import { effectiveAccess, formatOf, isPresent, type EptTranslateInput, type EptTranslation, type EptWalkEntry } from './walk.ts';

export interface EptDiagnosis {
  /** Stable kebab-case id: a misconfiguration rule id, or `ept-not-present`, `ept-read-denied`, … */
  readonly rule: string;
  /** The SDM sections that state the rule, by title. */
  readonly sdm: string;
  /** The architectural outcome, as text: 'EPT violation (exit reason 48), exit qualification 0x1A1', … */
  readonly outcome: string;
  /** The entry that decided it. */
  readonly level: (typeof EPT_LEVEL_NAMES)[EptLevel];
  readonly entryAddress: bigint;
  readonly entryValue: bigint;
  /** The bits of that entry involved, named as the SDM's entry table names them: 'bit 1 (W)', 'bits 51:39 (reserved)'. */
  readonly field: string;
  readonly expected: string;
  /** One or two sentences for a learner. */
  readonly message: string;
  /** The walk, one line per entry read. */
  readonly walk: readonly string[];
  /** The exit-qualification bits that are set, decoded (violations only). */
  readonly qualification: readonly string[];
}

const VIOLATION_SDM = 'SDM Vol. 3C, "EPT Violations"; "Exit Qualification for EPT Violations"';

/** The diagnosis of a failed translation, or null if the translation succeeded. */
export function explainEpt(input: EptTranslateInput, result: EptTranslation): EptDiagnosis | null {
  if (result.kind === 'ok') return null;
  const walk = result.entries.map((e) => walkLine(input, e));
  if (result.kind === 'misconfig') {
    const rule = EPT_MISCONFIG_RULES.find((r) => r.id === result.rule)!;
    const broken = rule.check({ value: result.entryValue, level: result.level, format: formatOf(result.entryValue, result.level, input.caps), caps: input.caps, maxPhysAddr: input.maxPhysAddr });
    const name = EPT_LEVEL_NAMES[result.level];
    return {
      rule: rule.id, sdm: rule.sdm, outcome: 'EPT misconfiguration (exit reason 49)',
      level: name, entryAddress: result.entryAddress, entryValue: result.entryValue,
      field: bitsText(input, result.level, result.entryValue, result.bits),
      expected: broken?.expected ?? '',
      message: `translating guest-physical ${hex(input.gpa)}: the EPT ${name} at physical ${hex(result.entryAddress)} (${hex(result.entryValue)}): ${rule.explain}. A misconfiguration repeats on every retry: fix the entry or stop the guest.`,
      walk, qualification: [],
    };
  }

  const q = result.qualification;
  const qualification = EPT_QUAL_MEANINGS.filter((m) => qualHas(q, m.name)).map((m) => `bit ${m.bit}: ${m.meaning}`);
  const outcome = `EPT violation (exit reason 48), exit qualification ${hex(q)}`;
  const last = result.entries[result.entries.length - 1]!;
  const base = { sdm: VIOLATION_SDM, outcome, walk, qualification };
  if (!isPresent(last.value, input.mbec)) {
    const name = EPT_LEVEL_NAMES[last.level];
    return {
      ...base, rule: 'ept-not-present', level: name, entryAddress: last.address, entryValue: last.value,
      field: input.mbec ? 'bits 2:0 (R, W, X) and bit 10 (XU)' : 'bits 2:0 (R, W, X)',
      expected: 'a present entry (some permission bit set)',
      message: `translating guest-physical ${hex(input.gpa)}: the EPT ${name} at physical ${hex(last.address)} is not present, so the walk stops there; the hypervisor has not mapped this guest-physical address.`,
    };
  }

  // The first permission the access needs that some entry withholds, and the first (highest) such entry.
  const access = effectiveAccess(input);
  const needs: { ok: boolean; bit: number; letter: string; what: string; rule: string }[] = [
    { ok: access.read, bit: EPT_BIT.READ, letter: 'R', what: 'reads', rule: 'ept-read-denied' },
    { ok: access.write, bit: EPT_BIT.WRITE, letter: 'W', what: 'writes', rule: 'ept-write-denied' },
    input.mbec && access.user
      ? { ok: access.execute, bit: EPT_BIT.USER_EXECUTE, letter: 'XU', what: 'instruction fetches from user-mode linear addresses', rule: 'ept-user-execute-denied' }
      : { ok: access.execute, bit: EPT_BIT.EXECUTE, letter: 'X', what: input.mbec ? 'instruction fetches from supervisor-mode linear addresses' : 'instruction fetches', rule: 'ept-execute-denied' },
  ];
  for (const need of needs) {
    if (!need.ok) continue;
    const entry = result.entries.find((e) => !bitOf(e.value, need.bit));
    if (entry === undefined) continue;
    const name = EPT_LEVEL_NAMES[entry.level];
    const asWrite = access.pagingAsWrite && need.bit === EPT_BIT.WRITE
      ? ' (this is a guest paging-structure access: with EPT accessed/dirty flags enabled in EPTP bit 6, those count as writes)' : '';
    return {
      ...base, rule: need.rule, level: name, entryAddress: entry.address, entryValue: entry.value,
      field: `bit ${need.bit} (${need.letter})`,
      expected: `bit ${need.bit} set in every EPT entry of the walk`,
      message: `translating guest-physical ${hex(input.gpa)}: the EPT ${name} at physical ${hex(entry.address)} does not allow ${need.what}${asWrite}; a permission must be granted at every level of the walk.`,
    };
  }
  throw new Error('EPT violation with no denying entry'); // unreachable when `result` came from eptTranslate(input)
}

/** Multi-line text for oops reports, the CLI and test failure messages. */
export function formatEptDiagnosis(d: EptDiagnosis): string {
  return [
    `${d.outcome} — ${d.message}`,
    `  rule: ${d.rule}`,
    `  see: ${d.sdm}`,
    `  ${d.level} at ${hex(d.entryAddress)} = ${hex(d.entryValue)}: ${d.field} (expected ${d.expected})`,
    ...d.walk.map((w) => `    ${w}`),
    ...d.qualification.map((q) => `  qualification ${q}`),
  ].join('\n');
}

/** The same facts in the shape of the VMX explanation channel (recordDiagnosis in diagnosis.ts). */
export function asDiagnosis(d: EptDiagnosis, instruction: string): Omit<Diagnosis, 'seq'> {
  return { rule: d.rule, sdm: d.sdm, instruction, outcome: d.outcome, field: `EPT ${d.level} at ${hex(d.entryAddress)}`, value: d.entryValue, expected: `${d.field}: ${d.expected}`, message: d.message };
}

/** 'PML4E at 0x1000 = 0x2007: R W X → table 0x2000' */
function walkLine(input: EptTranslateInput, e: EptWalkEntry): string {
  const head = `${EPT_LEVEL_NAMES[e.level]} at ${hex(e.address)} = ${hex(e.value)}`;
  if (!isPresent(e.value, input.mbec)) return `${head}: not present`;
  const perms = [bitOf(e.value, EPT_BIT.READ) ? 'R' : '-', bitOf(e.value, EPT_BIT.WRITE) ? 'W' : '-', bitOf(e.value, EPT_BIT.EXECUTE) ? 'X' : '-'];
  if (input.mbec) perms.push(bitOf(e.value, EPT_BIT.USER_EXECUTE) ? 'XU' : '--');
  const format = formatOf(e.value, e.level, input.caps);
  return `${head}: ${perms.join(' ')} (${format.id})`;
}

/** The offending bits as ranges, each with the name its field has in the entry's format. */
function bitsText(input: EptTranslateInput, level: EptLevel, value: bigint, bits: bigint): string {
  const format = formatOf(value, level, input.caps);
  const parts: string[] = [];
  for (let b = 0; b < 64; b++) {
    if (!bitOf(bits, b)) continue;
    const field = fieldAt(format, b, input.maxPhysAddr);
    let hi = b;
    while (hi + 1 < 64 && bitOf(bits, hi + 1) && fieldAt(format, hi + 1, input.maxPhysAddr) === field) hi++;
    parts.push(`${hi === b ? `bit ${b}` : `bits ${hi}:${b}`} (${field.name})`);
    b = hi;
  }
  return parts.join(', ');
}
