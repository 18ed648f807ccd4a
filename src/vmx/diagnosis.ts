// The explanation channel: after a VMX instruction fails (VMfailInvalid, VMfailValid, #UD, #GP), the rule that
// decided it, with its SDM section, the field and value involved and what was expected. Reading it never changes
// an architectural result; the architectural channel (RFLAGS, VM_INSTRUCTION_ERROR, exceptions) is the same with
// or without it. See DESIGN.md, "Principles" (two channels).

export interface Diagnosis {
  /** Stable kebab-case rule id, e.g. `vmxon-cr4-vmxe`, `vmwrite-read-only-field`. */
  readonly rule: string;
  /** The SDM section that states the rule, by title. */
  readonly sdm: string;
  /** The instruction that failed (VMXON, VMREAD, …). */
  readonly instruction: string;
  /** The architectural outcome, as text: '#UD', '#GP(0)', 'VMfailInvalid', 'VMfailValid(12)', … */
  readonly outcome: string;
  /** VMCS field (Linux name), MSR or register involved. */
  readonly field?: string;
  readonly value?: bigint;
  readonly expected?: string;
  /** One or two sentences for a learner. */
  readonly message: string;
}

/** Something that keeps the last diagnosis (the per-LP VmxState). */
export interface DiagnosisHolder {
  lastDiagnosis: Diagnosis | null;
}

/** The diagnosis of the most recent VMX instruction failure on this LP, or null if none failed yet. */
export function lastDiagnosis(holder: DiagnosisHolder): Diagnosis | null {
  return holder.lastDiagnosis;
}

/** Multi-line text for oops reports and test failure messages. */
export function formatDiagnosis(d: Diagnosis): string {
  const lines = [`${d.instruction}: ${d.outcome} — ${d.message}`, `  rule: ${d.rule}`, `  see: ${d.sdm}`];
  if (d.field !== undefined) {
    lines.push(`  ${d.field}${d.value !== undefined ? ` = 0x${d.value.toString(16).toUpperCase()}` : ''}${d.expected !== undefined ? ` (expected ${d.expected})` : ''}`);
  }
  return lines.join('\n');
}
