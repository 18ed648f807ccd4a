// Reference pages generated from the project's own tables (src/vmx/*.ts, src/machine/cpu-model.ts,
// src/vmx/entry/), with the tables' own types: the site can never drift from what the CPU implements. Each row
// carries an anchor (field-NAME, exit-N, error-N, check-ID, model-NAME, ni-ID) that pages link to and that the tests use
// to compare the rendered set with the table.
import type { CpuModel } from '../../src/machine/cpu-model.ts';
import type { AllowedSettings, VmxCapabilities } from '../../src/vmx/capabilities.ts';
import type { ControlBit } from '../../src/vmx/controls.ts';
import type { MsrAdjustment } from '../../src/vmx/emulated-msrs.ts';
import type { EntryCheck } from '../../src/vmx/entry/rule.ts';
import type { EntryFailureQualification, VmInstructionError } from '../../src/vmx/errors.ts';
import type { ExitReason } from '../../src/vmx/exit-reasons.ts';
import type { VmcsField, VmcsFieldGroup } from '../../src/vmx/fields.ts';
import type { ModeNotImplemented, NotImplementedRow } from '../../src/machine/not-implemented.ts';
import { hex } from '../../src/util/hex.ts';
import { escapeCell, type Page } from './chapter-pages.ts';
import { LAYOUTS, type Layout } from './layouts.ts';

/** One decoded view of capability MSRs, as rows of text. */
export interface DecodedMsr {
  title: string;
  rows: { label: string; value: string }[];
}

/**
 * A CPU model as the emulated processor presents it: the capability MSRs RDMSR returns (`vmxMsrsOf`), decoded
 * (`capabilitiesOf`), and how they differ from the measured values (`msrAdjustmentsOf`); see src/vmx/emulated-msrs.ts.
 */
export interface EmulatedModel {
  readonly model: CpuModel;
  readonly msrs: ReadonlyMap<number, bigint>;
  readonly caps: VmxCapabilities;
  readonly adjustments: readonly MsrAdjustment[];
}

const CONTROL_TITLES: Record<string, string> = {
  pin: 'Pin-based VM-execution controls',
  proc: 'Primary processor-based VM-execution controls',
  proc2: 'Secondary processor-based VM-execution controls',
  proc3: 'Tertiary processor-based VM-execution controls',
  exit: 'VM-exit controls',
  entry: 'VM-entry controls',
};

/**
 * A control bit is fixed to 1 when its allowed-0 bit is 1 (default1), fixed to 0 when its allowed-1 bit is 0, and
 * flexible otherwise. See SDM Vol. 3D, "VMX Capability Reporting Facility".
 */
export function controlSetting(a: AllowedSettings, bit: number): 'must be 1' | 'must be 0' | 'flexible' {
  const mask = 2 ** bit;
  if (((a.allowed0 >>> 0) & mask) >>> 0 !== 0) return 'must be 1';
  if (((a.allowed1 >>> 0) & mask) >>> 0 === 0) return 'must be 0';
  return 'flexible';
}

/** Rows of text for one model's decoded capabilities. */
export function describeCapabilities(c: VmxCapabilities, bits: readonly ControlBit[]): DecodedMsr[] {
  const out: DecodedMsr[] = [];
  const show = (v: number | boolean | bigint): string =>
    typeof v === 'boolean' ? (v ? 'yes' : 'no') : typeof v === 'bigint' ? hex(v) : String(v);
  out.push({ title: 'IA32_VMX_BASIC (480H)', rows: Object.entries(c.basic).map(([k, v]) => ({ label: k, value: show(v) })) });
  const fields: ('pin' | 'proc' | 'proc2' | 'exit' | 'entry')[] = ['pin', 'proc', 'proc2', 'exit', 'entry'];
  for (const f of fields) {
    if (f === 'proc2' && c.procbased2 === null) continue;
    const a = c.effective[f];
    const rows = bits
      .filter((b) => b.field === f)
      .map((b) => ({ label: `${b.name} (bit ${b.bit})`, value: controlSetting(a, b.bit) }));
    const source = c.truePinbased !== null && f !== 'proc2' ? 'TRUE_* MSR' : 'capability MSR';
    out.push({ title: `${CONTROL_TITLES[f]} — from the ${source}`, rows });
  }
  if (c.procbased3 !== null) {
    const p3 = c.procbased3;
    const rows = bits
      .filter((b) => b.field === 'proc3')
      .map((b) => ({ label: `${b.name} (bit ${b.bit})`, value: ((p3 >> BigInt(b.bit)) & 1n) === 1n ? 'flexible' : 'must be 0' }));
    out.push({ title: `${CONTROL_TITLES.proc3} — IA32_VMX_PROCBASED_CTLS3 (492H)`, rows });
  }
  out.push({ title: 'IA32_VMX_MISC (485H)', rows: Object.entries(c.misc).map(([k, v]) => ({ label: k, value: show(v) })) });
  out.push({
    title: 'Fixed bits, VMCS enumeration, EPT/VPID, VM functions',
    rows: [
      { label: 'IA32_VMX_CR0_FIXED0 (486H)', value: hex(c.cr0Fixed0) },
      { label: 'IA32_VMX_CR0_FIXED1 (487H)', value: hex(c.cr0Fixed1) },
      { label: 'IA32_VMX_CR4_FIXED0 (488H)', value: hex(c.cr4Fixed0) },
      { label: 'IA32_VMX_CR4_FIXED1 (489H)', value: hex(c.cr4Fixed1) },
      { label: 'highest VMCS field index (IA32_VMX_VMCS_ENUM[9:1])', value: String(c.vmcsEnumMaxIndex) },
      { label: 'IA32_VMX_EPT_VPID_CAP (48CH)', value: hex(c.eptVpidCap) },
      { label: 'IA32_VMX_VMFUNC (491H)', value: hex(c.vmfunc) },
      ...c.notes.map((n) => ({ label: 'note', value: n })),
    ],
  });
  return out;
}

// ---- Helpers ----

/** The anchor of one table row; the site tests read these back to compare pages with tables. */
export const anchor = (id: string): string => `<span class="vmx-anchor" id="${id}"></span>`;

/** `SDM Vol. 3C, "Title"` (the tables' form) → `[[SDM 3C: Title]]` (the notes' form). Throws on anything else. */
export function sdmMarkup(ref: string): string {
  const m = /^\s*(?:SDM\s+)?(?:Vol(?:ume)?\.?\s*)?([1-4][A-D]?)\s*[,:]\s*[“"]?(.+?)[”"]?\s*$/.exec(ref);
  if (m === null) throw new Error(`site: cannot read the SDM citation "${ref}" (expected SDM Vol. 3C, "Title")`);
  return `[[SDM ${m[1]}: ${m[2]}]]`;
}

/** The part of a citation after the volume: the section title. */
export function sdmTitle(ref: string): string {
  return sdmMarkup(ref).replace(/^\[\[SDM [^:]+: /, '').replace(/\]\]$/, '');
}

const cell = (s: string): string => escapeCell(s).replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\{\{/g, '{ {');

/** Front matter of a reference page: compact tables (pageClass), and optionally no outline column. */
const front = (title: string, description: string, aside = true): string =>
  `---\ntitle: ${JSON.stringify(title)}\ndescription: ${JSON.stringify(description)}\noutline: [2, 3]\n` +
  `pageClass: vmx-reference\n${aside ? '' : 'aside: false\n'}---\n\n`;

const TYPE_TITLES: Readonly<Record<VmcsField['type'], string>> = {
  control: 'Control fields',
  'exit-info': 'VM-exit information fields (read-only)',
  guest: 'Guest-state fields',
  host: 'Host-state fields',
};
const WIDTH_TITLES: Readonly<Record<VmcsField['width'], string>> = { '16': '16-bit', '32': '32-bit', '64': '64-bit', natural: 'Natural-width' };

// ---- VMCS fields ----

export function vmcsFieldsPage(fields: readonly VmcsField[], groups: readonly VmcsFieldGroup[]): Page {
  let md = front('VMCS fields', 'Every VMCS field with its encoding, width, type, access and SDM section.');
  md += `# VMCS fields\n\n`;
  md +=
    `All ${fields.length} field encodings the emulated CPU accepts in VMREAD and VMWRITE, generated from ` +
    '`src/vmx/fields.ts` and grouped as the SDM appendix groups them (width, then type). A 64-bit field has a second ' +
    'encoding, `NAME_HIGH` (access type 1), for its upper 32 bits. VMWRITE to a read-only field gives ' +
    'VM-instruction error 13 unless IA32_VMX_MISC[29] is 1. See [[SDM 3D: Field Encoding in VMCS]] and ' +
    '[[SDM 3C: Component Encoding]].\n\n';
  for (const g of groups) {
    const rows = fields.filter((f) => f.width === g.width && f.type === g.type);
    if (rows.length === 0) continue;
    md += `## ${cell(g.appendix)}\n\n`;
    md += `Width: ${WIDTH_TITLES[g.width]}. Type: ${TYPE_TITLES[g.type]}.\n\n`;
    md += fieldTable(rows);
  }
  return { path: 'reference/vmcs-fields.md', content: md };
}

function fieldTable(rows: readonly VmcsField[]): string {
  // The width is in the section heading; a HIGH access reads bits 63:32 as a 32-bit value.
  let md = `| Field | Encoding | Access | Description | SDM |\n|---|---|---|---|---|\n`;
  for (const f of rows) {
    const access = (f.readOnly ? 'read-only' : 'read/write') + (f.high ? ', 32-bit (high half)' : '');
    md +=
      `| ${anchor(`field-${f.name}`)}\`${f.name}\` | \`${hex(f.encoding, 4)}\` | ${access} | ` +
      `${cell(f.description)} | ${sdmMarkup(f.sdm)} |\n`;
  }
  return md + '\n';
}

// ---- Exit reasons ----

/** The layout (if any) that draws the qualification format an exit reason cites. */
export function qualificationLayout(reason: ExitReason, layouts: readonly Layout[] = LAYOUTS): Layout | undefined {
  if (reason.qualificationSdm === undefined) return undefined;
  const title = sdmTitle(reason.qualificationSdm);
  return layouts.find((l) => l.qualificationFor === title);
}

export function exitReasonsPage(reasons: readonly ExitReason[]): Page {
  let md = front('Exit reasons', 'Every basic VM-exit reason, what causes it and what the exit qualification holds.', false);
  md += `# Exit reasons\n\n`;
  md +=
    'Bits 15:0 of `VM_EXIT_REASON` hold the basic exit reason below; bit 31 is set when the "exit" reports a failed ' +
    'VM entry (reasons 33, 34 and 41), so compare `reason & 0xFFFF`, and check bit 31 first. Generated from ' +
    '`src/vmx/exit-reasons.ts`. Where a qualification has a bit layout, the name of the format links to its figure. ' +
    'See [[SDM 3D: VMX Basic Exit Reasons]] and [[SDM 3C: Basic VM-Exit Information]].\n\n';
  md += `| # | Name | Cause | Exit qualification |\n|---|---|---|---|\n`;
  for (const r of reasons) {
    const layout = qualificationLayout(r);
    let qual = cell(r.qualification);
    if (r.qualificationSdm !== undefined) {
      qual += layout !== undefined ? ` — [layout](./layouts#${layout.id}), ${sdmMarkup(r.qualificationSdm)}` : ` — ${sdmMarkup(r.qualificationSdm)}`;
    }
    // Failed VM entries are explained check by check on the entry-checks page.
    if (r.number === 33 || r.number === 34) qual += ' — which check failed: [VM-entry checks](./entry-checks)';
    md += `| ${anchor(`exit-${r.number}`)}${r.number} | \`${r.name}\` | ${cell(r.description)} | ${qual} |\n`;
  }
  return { path: 'reference/exit-reasons.md', content: md + '\n' };
}

// ---- What VMX Lab does not implement ----

/** The not-implemented table (src/machine/not-implemented.ts): instruction groups (anchor ni-ID) and modes (mode-ID). */
export function notImplementedPage(rows: readonly NotImplementedRow[], modes: readonly ModeNotImplemented[]): Page {
  let md = front('Not implemented', 'The x86 instructions and modes VMX Lab does not emulate, and what it raises instead.');
  md += `# Not implemented\n\n`;
  md +=
    'When a program runs an instruction on this page, VMX Lab raises **#UD** with an explanation ending in ' +
    '"valid x86 but not implemented by VMX Lab" and naming the row. That is not a bug in the program: the ' +
    'instruction is real x86 (a real processor with the CPUID feature listed would run it), but VMX Lab does not emulate ' +
    'it yet. A program meant for VMX Lab should use the replacement given, or be compiled without the feature ' +
    '(for C, `-mno-sse -mno-mmx -mno-avx -mno-bmi -mno-bmi2`). Byte sequences that are not x86 at all raise #UD ' +
    'with "invalid opcode" instead. Generated from `src/machine/not-implemented.ts`; the decoder reads the same table.\n\n';
  md += `## Instructions\n\n| Group | Mnemonics | Encoding | CPUID feature | Notes | Instead |\n|---|---|---|---|---|---|\n`;
  for (const r of rows) {
    md += `| ${anchor(`ni-${r.id}`)}**${cell(r.name)}** | ${cell(r.mnemonics)} | ${cell(r.encoding)} | ${cell(r.cpuid ?? '—')} | ` +
      `${cell(r.note)} Example: \`${r.example.bytes}\`${r.example.bits === 32 ? ' (32-bit code)' : ''}. | ${cell(r.instead ?? '—')} |\n`;
  }
  md += `\n## Modes and mechanisms not implemented\n\n` +
    'These are not instructions: the machine refuses them when software enters them, with the fault below and an explanation saying so.\n\n' +
    `| Mode or mechanism | What the machine raises | Notes |\n|---|---|---|\n`;
  for (const m of modes) md += `| ${anchor(`mode-${m.id}`)}**${cell(m.name)}** | ${cell(m.fault)} | ${cell(m.note)} |\n`;
  return { path: 'reference/not-implemented.md', content: md + '\n' };
}

// ---- VM-instruction errors ----

export function errorsPage(errors: readonly VmInstructionError[], entryFailures: readonly EntryFailureQualification[]): Page {
  let md = front('VM-instruction errors', 'The VM-instruction error numbers VMfailValid stores, and VM-entry failure qualifications.', false);
  md += `# VM-instruction errors\n\n`;
  md +=
    'After **VMfailValid** (ZF = 1) the error number is in the read-only field `VM_INSTRUCTION_ERROR` ' +
    '([`0x4400`](./vmcs-fields#field-VM_INSTRUCTION_ERROR)). After **VMfailInvalid** (CF = 1) there is no current VMCS ' +
    'and no error number. Read it with VMREAD *before* VMXOFF: VMREAD outside VMX operation raises #UD. ' +
    'Generated from `src/vmx/errors.ts`. See [[SDM 3C: VM Instruction Error Numbers]].\n\n';
  md += `| # | Name | Meaning |\n|---|---|---|\n`;
  for (const e of errors) {
    const more = e.number === 7 || e.number === 8 ? ' — the checks: [VM-entry checks](./entry-checks)' : '';
    md += `| ${anchor(`error-${e.number}`)}${e.number} | \`${e.name}\` | ${cell(e.description)}${more} |\n`;
  }
  if (entryFailures.length > 0) {
    md +=
      `\n## VM-entry failure qualifications\n\nA VM entry that fails while checking or loading guest state is reported as ` +
      `a VM exit with reason 33 and bit 31 set; the exit qualification says why. See ` +
      `[[SDM 3C: VM-Entry Failures During or After Loading Guest State]].\n\n| Qualification | Name | Meaning |\n|---|---|---|\n`;
    for (const q of entryFailures) md += `| ${q.value} | \`${q.name}\` | ${cell(q.description)} |\n`;
  }
  return { path: 'reference/vm-instruction-errors.md', content: md + '\n' };
}

// ---- VM-entry checks ----

const GROUP_TITLES: Readonly<Record<EntryCheck['group'], string>> = {
  controls: 'Checks on VMX controls',
  'host-state': 'Checks on the host-state area',
  'guest-state': 'Checks on the guest-state area',
  'msr-load': 'Loading MSRs',
};

export function outcomeText(o: EntryCheck['outcome']): string {
  if (o.kind === 'VMfailValid') return `[VMfailValid(${o.error})](./vm-instruction-errors#error-${o.error})`;
  const q =
    o.qualification === 'entry-index'
      ? ', qualification = index of the failing entry'
      : o.qualification !== 0
        ? `, qualification ${o.qualification}`
        : '';
  return `VM exit [${o.reason}](./exit-reasons#exit-${o.reason}) (bit 31 set${q})`;
}

export function entryChecksPage(checks: readonly EntryCheck[]): Page {
  let md = front('VM-entry checks', 'Every VM-entry check the emulated CPU runs, in order, by SDM section.');
  md += `# VM-entry checks\n\n`;
  md +=
    `The ${checks.length} checks VMLAUNCH and VMRESUME run after the basic checks, in the order the CPU runs them, ` +
    'grouped by SDM section. When one fails, the architectural result is in the *Outcome* column; the emulator ' +
    'also names the check (its id below), the field and the value. Generated from `src/vmx/entry/`.\n\n';
  md += '```diagram entry-sequence\n```\n\n';
  const groups: EntryCheck['group'][] = [];
  for (const c of checks) if (!groups.includes(c.group)) groups.push(c.group);
  for (const g of groups) {
    const inGroup = checks.filter((c) => c.group === g);
    md += `## ${GROUP_TITLES[g]}\n\n`;
    const sections: string[] = [];
    for (const c of inGroup) if (!sections.includes(c.section)) sections.push(c.section);
    for (const s of sections) {
      // A check's section is a title in SDM Vol. 3C.
      md += `### ${cell(s)}\n\n[[SDM 3C: ${s}]]\n\n`;
      // A list, not a table: the explanations are sentences, and read better at full width.
      for (const c of inGroup.filter((x) => x.section === s)) {
        // Every name is a VMCS field (the type says so), so each links to its row.
        const fields = c.fields.map((f) => `[\`${f}\`](./vmcs-fields#field-${f})`).join(', ');
        md +=
          `- ${anchor(`check-${c.id}`)}**\`${c.id}\`** — ${oneLine(c.explain)}  \n` +
          `  <span class="vmx-check-meta">Fields: ${fields.length > 0 ? fields : '—'}. Outcome: ${outcomeText(c.outcome)}.</span>\n`;
      }
      md += '\n';
    }
  }
  return { path: 'reference/entry-checks.md', content: md };
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').replace(/</g, '&lt;').replace(/\{\{/g, '{ {');

// ---- Capability MSRs per CPU model ----

export function capabilityPage(models: readonly EmulatedModel[], msrName: (msr: number) => string | undefined, bits: readonly ControlBit[]): Page {
  let md = front('Capability MSRs by CPU model', 'The VMX capability MSRs every emulated CPU model reports, decoded.');
  md += `# Capability MSRs by CPU model\n\n`;
  md +=
    `The emulator ships ${models.length} CPU models. Each table shows what RDMSR returns on the emulated processor: ` +
    'the values read on real hardware (unless the model is marked *modeled*), made consistent with what VMX Lab ' +
    'implements. Where a value differs from the measured one, the model lists the measured value, the emulated one ' +
    'and why (a control whose VMCS fields are not modelled is reported allowed-0; IA32_VMX_VMCS_ENUM[9:1] is the ' +
    'highest index of the fields the processor supports). Generated from `src/machine/cpu-model.ts` and ' +
    '`src/vmx/emulated-msrs.ts`, decoded by `src/vmx/capabilities.ts`. The layout of IA32_VMX_BASIC is drawn on the ' +
    '[bit layouts](./layouts#ia32-vmx-basic) page. See [[SDM 3D: VMX Capability Reporting Facility]].\n\n';
  md += `| Model | Processor | Source | Adjusted MSRs |\n|---|---|---|---|\n`;
  for (const { model: m, adjustments } of models) {
    md += `| [${m.name}](#model-${m.name}) | ${cell(m.description)} | ${m.measured ? 'measured' : 'modeled'} | ${adjustments.length} |\n`;
  }
  md += '\n';
  for (const { model: m, msrs, caps, adjustments } of models) {
    md += `## ${m.name}\n\n${anchor(`model-${m.name}`)}${cell(m.description)}${m.measured ? '' : ' (modeled, not measured)'}.\n\n`;
    const adjusted = new Set(adjustments.map((a) => a.msr));
    md += `| MSR | Name | Value |\n|---|---|---|\n`;
    for (const [msr, value] of [...msrs.entries()].sort((a, b) => a[0] - b[0])) {
      md += `| \`${hex(msr)}\` | ${msrName(msr) ?? ''} | \`${hex(value, 16)}\`${adjusted.has(msr) ? ' (adjusted)' : ''} |\n`;
    }
    md += '\n';
    if (adjustments.length > 0) {
      md += `::: details Adjusted from the measured values (${adjustments.length})\n| MSR | Measured | Emulated | Why |\n|---|---|---|---|\n`;
      for (const a of adjustments) {
        const measured = a.measured === null ? 'not in the source log' : `\`${hex(a.measured, 16)}\``;
        md += `| ${msrName(a.msr) ?? `\`${hex(a.msr)}\``} | ${measured} | \`${hex(a.emulated, 16)}\` | ${cell(a.why)} |\n`;
      }
      md += `:::\n\n`;
    }
    for (const d of describeCapabilities(caps, bits)) {
      md += `::: details ${d.title}\n| Field | Value |\n|---|---|\n`;
      for (const r of d.rows) md += `| ${cell(r.label)} | ${cell(r.value)} |\n`;
      md += `:::\n\n`;
    }
  }
  return { path: 'reference/capability-msrs.md', content: md };
}

// ---- Bit layouts, and the VMX-operation diagrams ----

export function layoutsPage(layouts: readonly Layout[] = LAYOUTS): Page {
  let md = front('Bit layouts', 'Bit layouts of IA32_VMX_BASIC, the interruption-information field, the EPTP and exit qualifications.');
  md += `# Bit layouts\n\nThe registers and fields whose bits a hypervisor builds or takes apart most often. Bits not shown are reserved.\n\n`;
  for (const l of layouts) {
    md += `## ${l.title} {#${l.id}}\n\n\`\`\`bits ${l.width} ${l.caption}\n${l.rows.trim()}\n\`\`\`\n\n${l.sdm}${l.notes !== undefined ? ' ' + l.notes : ''}\n\n`;
  }
  return { path: 'reference/layouts.md', content: md };
}

export function vmxOperationPage(): Page {
  return {
    path: 'reference/vmx-operation.md',
    content:
      front('Diagrams', 'VMX root and non-root operation, the states of a VMCS, the VM-entry sequence and MTRR precedence.') +
      `# Diagrams\n\n## VMX operation\n\n\`\`\`diagram vmx-operation\n\`\`\`\n\n` +
      `## States of a VMCS\n\nThe state a VMCS is in decides which VMX instruction may use it: VMREAD, VMWRITE, VMLAUNCH ` +
      `and VMRESUME work on the *current* VMCS; VMLAUNCH needs launch state *clear*, VMRESUME needs *launched*.\n\n` +
      `\`\`\`diagram vmcs-states\n\`\`\`\n\n## VM entry\n\n\`\`\`diagram entry-sequence\n\`\`\`\n\n` +
      `Every check of the last three stages is listed on the [VM-entry checks](./entry-checks) page.\n\n` +
      `## Memory types: MTRR precedence\n\n\`\`\`diagram mtrr-precedence\n\`\`\`\n`,
  };
}
