// "Explain the memory type of this address": every input the processor uses — CR0.CD, each MTRR (default type,
// the fixed-range byte, every variable pair and whether it matches, the SMRR), the PAT entry the leaf selects, the
// EPT memory type and "ignore PAT" — and the rule that decided, as lines of text for the CLI, the playground and
// test messages. See SDM Vol. 3A, "MTRR Precedences", "Selecting a Memory Type from the PAT" and Vol. 3C, "EPT and
// Memory Typing".
import { hex } from '../../util/hex.ts';
import { FIXED_RANGE_MTRRS } from '../../x86/mtrr.ts';
import { memoryTypeName } from '../../x86/memory-types.ts';
import { EFFECTIVE_TABLE_SDM } from './effective.ts';
import { resolveMemoryType, type MemoryTypeDecision, type MemoryTypeInput } from './memory-type.ts';
import { MTRR_RULES, mtrrRuns, type MtrrResolvedType } from './mtrr-type.ts';
import { defaultTypeOf, fixedFieldRange, fixedFieldType, fixedRangesEnabled, mtrrsEnabled, pairMatches, pairType, pairValid, type MtrrState } from './mtrr-state.ts';

const typeText = (t: MtrrResolvedType): string => (t === 'undefined' ? 'undefined' : memoryTypeName(t));

export function explainMemoryType(input: MemoryTypeInput): string[] {
  const d = resolveMemoryType(input);
  const lines = [`memory type of ${input.ept ? 'guest-physical' : 'physical'} ${hex(input.pa)}: ${typeText(d.type)}${d.type === 'undefined' ? ' (the SDM leaves it undefined)' : ''}`];
  lines.push(`  CR0.CD = ${input.cr0Cd ? '1: caching disabled, every access is UC (SDM Vol. 3A, "Cache Control Registers and Bits")' : 0}`);
  if (input.ept !== undefined) {
    lines.push('  MTRRs: ignored under EPT (SDM Vol. 3C, "EPT and Memory Typing")');
    lines.push(`  EPT: memory type ${memoryTypeName(input.ept.memoryType)}, ignore PAT = ${input.ept.ignorePat ? 1 : 0}`);
  } else if (input.mtrrs === null) {
    lines.push('  MTRRs: none on this processor (the page-level type decides, as an MTRR type of WB would)');
  } else {
    lines.push(...mtrrLines(input.mtrrs, input.pa, d));
  }
  lines.push(patLine(input, d));
  lines.push(`  → ${ruleLine(d)}`);
  return lines;
}

/** For a large page: one line saying whether one MTRR type covers it, or the runs it must be split at. */
export function explainPageMtrrTypes(s: MtrrState, base: bigint, size: bigint): string[] {
  const runs = mtrrRuns(s, base, size);
  const head = `page ${hex(base)}–${hex(base + size - 1n)} (${size / 1024n} KiB): `;
  if (runs.length === 1) return [head + `one MTRR type, ${typeText(runs[0]!.result.type)}: a page of this size may map it`];
  return [
    head + `${runs.length} runs of different MTRR types: split it (a large page over several types is undefined behavior; SDM Vol. 3A, "Large Page Size Considerations")`,
    ...runs.map((r) => `  ${hex(r.base)}–${hex(r.end - 1n)} ${typeText(r.result.type)} (${MTRR_RULES[r.result.rule].text})`),
  ];
}

function mtrrLines(s: MtrrState, pa: bigint, d: MemoryTypeDecision): string[] {
  const lines = [`  MTRRs: IA32_MTRR_DEF_TYPE = ${hex(s.defType)} (E = ${mtrrsEnabled(s) ? 1 : 0}, FE = ${(s.defType >> 10n) & 1n}, default ${memoryTypeName(defaultTypeOf(s))}), IA32_MTRRCAP = ${hex(s.cap)}`];
  if (s.smrr !== null) {
    const v = s.smrr;
    lines.push(`    SMRR: ${pairValid(v) ? `base ${hex(v.base)} mask ${hex(v.mask)} ${memoryTypeName(pairType(v))} — ${d.mtrr?.rule === 'smrr' || d.mtrr?.rule === 'smrr-smm' ? 'matches' : 'no match'}` : 'invalid (V = 0)'}`);
  }
  if (pa < 0x100000n) {
    if (fixedRangesEnabled(s)) {
      const f = d.mtrr?.fixed;
      if (f !== undefined) {
        const r = fixedFieldRange(f.index, f.field);
        lines.push(`    fixed: ${FIXED_RANGE_MTRRS[f.index]!.name} = ${hex(s.fixed[f.index]!)}, byte ${f.field} (${hex(r.base)}–${hex(r.end - 1)}) = ${memoryTypeName(fixedFieldType(s.fixed[f.index]!, f.field))}`);
      }
    } else lines.push('    fixed: not used (FE = 0 or E = 0): the first MiB goes by the variable ranges');
  } else lines.push('    fixed: not used (the address is above 1 MiB)');
  s.variable.forEach((p, n) => {
    if (!pairValid(p)) return void lines.push(`    variable ${n}: invalid (V = 0)`);
    const hit = pairMatches(p, s.maxPhysAddr, pa);
    lines.push(`    variable ${n}: base ${hex(p.base)} mask ${hex(p.mask)} ${memoryTypeName(pairType(p))} — ${hit ? 'matches' : 'no match'}`);
  });
  const m = d.mtrr!;
  lines.push(`    MTRR type ${typeText(m.type)}: ${MTRR_RULES[m.rule].text} (${MTRR_RULES[m.rule].sdm})`);
  return lines;
}

function patLine(input: MemoryTypeInput, d: MemoryTypeDecision): string {
  if (d.pat === null || input.paging === null) return '  PAT: paging off, no leaf entry selects a PAT entry (the range type is used alone)';
  const s = d.pat.selection;
  const t = typeof d.pat.type === 'number' ? memoryTypeName(d.pat.type) : `reserved encoding ${d.pat.type.reserved}`;
  const where = input.paging.largePage ? 'PAT bit 12 of the large-page entry' : 'PAT bit 7 of the PTE';
  return `  PAT: leaf ${hex(input.paging.leaf)}: PAT = ${+s.pat} (${where}), PCD = ${+s.pcd}, PWT = ${+s.pwt} → entry ${s.index} of IA32_PAT ${hex(input.paging.pat, 16)} = ${t} (SDM Vol. 3A, "Selecting a Memory Type from the PAT")`;
}

function ruleLine(d: MemoryTypeDecision): string {
  const range = d.mtrr === null ? 'EPT' : 'MTRR';
  switch (d.rule) {
    case 'cr0-cd': return 'UC: CR0.CD = 1 overrides the MTRRs, EPT and the PAT (SDM Vol. 3A, "Precedence of Cache Controls")';
    case 'ept-ignore-pat': return `${typeText(d.type)}: the EPT memory type, "ignore PAT" = 1 (SDM Vol. 3C, "EPT and Memory Typing")`;
    case 'mtrr-undefined': return 'undefined: the MTRR type is undefined, so is the access\'s';
    case 'pat-reserved': return 'undefined: the selected PAT entry holds a reserved encoding';
    case 'ept-and-pat':
    case 'mtrr-and-pat': {
      const e = d.effective!;
      const notes = e.notes === undefined ? '' : `, footnote ${e.notes.join(',')}`;
      const pat = d.pat === null ? 'no PAT type' : `PAT ${typeof d.pat.type === 'number' ? memoryTypeName(d.pat.type) : '?'}`;
      const cite = d.rule === 'ept-and-pat' ? `${EFFECTIVE_TABLE_SDM}, with the EPT type in the MTRR column (SDM Vol. 3C, "EPT and Memory Typing")` : EFFECTIVE_TABLE_SDM;
      return `${typeText(d.type)}: ${range} ${typeText(d.rangeType)} with ${pat}${notes} (${cite})`;
    }
  }
}
