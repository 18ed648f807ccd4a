// The explanation channel: after a VMX instruction fails (VMfailInvalid, VMfailValid, #UD, #GP), the rule that
// decided it, with its SDM section, the field and value involved and what was expected. Reading it never changes
// an architectural result; the architectural channel (RFLAGS, VM_INSTRUCTION_ERROR, exceptions) is the same with
// or without it. See DESIGN.md, "Principles" (two channels).
import { hex } from '../util/hex.ts';

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
  /**
   * Which VMX instruction this diagnosis belongs to: the LP's VMX-instruction count when that instruction ran
   * (see `DiagnosisHolder.instructionSeq`). A diagnosis is about the last VMX instruction only if the two match.
   */
  readonly seq: number;
}

/** Something that keeps the last diagnosis (the per-LP VmxState). */
export interface DiagnosisHolder {
  lastDiagnosis: Diagnosis | null;
  /** VMX instructions executed on this LP so far (VMXON … VMFUNC, including those that exit from a guest). */
  instructionSeq: number;
}

/** Record a diagnosis for the VMX instruction now executing. */
export function recordDiagnosis(holder: DiagnosisHolder, d: Omit<Diagnosis, 'seq'>): void {
  holder.lastDiagnosis = { ...d, seq: holder.instructionSeq };
}

/** The diagnosis of the most recent VMX instruction failure on this LP, or null if none failed yet. */
export function lastDiagnosis(holder: DiagnosisHolder): Diagnosis | null {
  return holder.lastDiagnosis;
}

/** The diagnosis of the last VMX instruction executed, or null if that instruction did not fail. */
export function diagnosisOfLastInstruction(holder: DiagnosisHolder): Diagnosis | null {
  const d = holder.lastDiagnosis;
  return d !== null && d.seq === holder.instructionSeq ? d : null;
}

/** Multi-line text for oops reports and test failure messages. */
export function formatDiagnosis(d: Diagnosis): string {
  const lines = [`${d.instruction}: ${d.outcome} — ${d.message}`, `  rule: ${d.rule}`, `  see: ${d.sdm}`];
  if (d.field !== undefined) {
    lines.push(`  ${d.field}${d.value !== undefined ? ` = ${hex(d.value)}` : ''}${d.expected !== undefined ? ` (expected ${d.expected})` : ''}`);
  }
  return lines.join('\n');
}
