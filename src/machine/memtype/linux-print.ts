// Linux's boot-time print of the MTRR state (arch/x86/kernel/cpu/mtrr/generic.c, print_mtrr_state, as in Linux
// 5.10): the default type, the fixed ranges merged into runs of equal type, then one line per variable pair. A
// kernel log of a real machine can then be compared line for line with the emulated MSRs.
import { FIXED_RANGE_MTRRS, FIXED_RANGE_FIELDS } from '../../x86/mtrr.ts';
import { hexDigits } from '../../util/hex.ts';
import { defaultTypeOf, fixedFieldType, fixedRangesEnabled, hasFixedRanges, mtrrsEnabled, pairType, pairValid, type MtrrState } from './mtrr-state.ts';

/** mtrr_attrib_to_str: Linux's names for the MTRR types. */
const LINUX_TYPE_NAMES: readonly string[] = ['uncachable', 'write-combining', '?', '?', 'write-through', 'write-protect', 'write-back'];
const linuxTypeName = (t: number): string => LINUX_TYPE_NAMES[t] ?? '?';

export function printMtrrState(s: MtrrState): string[] {
  const lines = [`MTRR default type: ${linuxTypeName(defaultTypeOf(s))}`];
  if (hasFixedRanges(s.cap)) {
    const fe = fixedRangesEnabled(s);
    lines.push(`MTRR fixed ranges ${fe ? 'en' : 'dis'}abled:`);
    // Runs of adjacent sub-ranges with one type, printed as "  START-END type".
    let run: { start: number; end: number; type: number } | null = null;
    FIXED_RANGE_MTRRS.forEach((r, i) => {
      for (let f = 0; f < FIXED_RANGE_FIELDS; f++) {
        const start = r.base + f * r.step, type = fixedFieldType(s.fixed[i]!, f);
        if (run !== null && run.end === start && run.type === type) run.end = start + r.step;
        else {
          if (run !== null) lines.push(fixedLine(run));
          run = { start, end: start + r.step, type };
        }
      }
    });
    if (run !== null) lines.push(fixedLine(run));
  }
  lines.push(`MTRR variable ranges ${mtrrsEnabled(s) ? 'en' : 'dis'}abled:`);
  // The high part is printed with (phys_bits − PAGE_SHIFT − 20 + 3) / 4 digits, the low part as 5 digits + "000".
  const highWidth = Math.floor((s.maxPhysAddr - 12 - 20 + 3) / 4);
  const address = (v: bigint) => hexDigits(v >> 32n, highWidth) + hexDigits((v & 0xffffffffn) >> 12n, 5) + '000';
  s.variable.forEach((p, i) => {
    lines.push(pairValid(p) ? `  ${i} base ${address(p.base)} mask ${address(p.mask)} ${linuxTypeName(pairType(p))}` : `  ${i} disabled`);
  });
  return lines;
}

function fixedLine(run: { start: number; end: number; type: number }): string {
  return `  ${hexDigits(run.start, 5)}-${hexDigits(run.end - 1, 5)} ${linuxTypeName(run.type)}`;
}
