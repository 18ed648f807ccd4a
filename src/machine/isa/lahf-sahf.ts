// LAHF (9FH) and SAHF (9EH): move SF ZF AF PF CF between AH and the low byte of RFLAGS. In 64-bit mode both are
// valid only when CPUID.80000001H:ECX.LAHF-SAHF[bit 0] = 1 (else #UD).
// See SDM Vol. 2A, "LAHF—Load Status Flags Into AH Register" and Vol. 2B, "SAHF—Store AH Into Flags".

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { AF, CF, PF, SF, ZF } from '../lazy-flags.ts';
import { ud } from '../fault.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { RAX } from '../../x86/registers.ts';

const LOW_STATUS = SF | ZF | AF | PF | CF;
/** RFLAGS bit 1 is always 1, so LAHF loads it into AH[1] as well. */
const RESERVED_1 = 2;

/** Execute SAHF (op 9EH) or LAHF (op 9FH). */
export function lahfSahf(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const name = d.op === 0x9e ? 'SAHF' : 'LAHF';
  if (lp.bits === 64) {
    const f = CPUID_FEATURE.LAHF_LM;
    if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) {
      throw ud(`${name} in 64-bit mode with CPUID.80000001H:ECX.LAHF-SAHF[bit 0] = 0`, d.op === 0x9e ? 'SDM Vol. 2B, "SAHF—Store AH Into Flags"' : 'SDM Vol. 2A, "LAHF—Load Status Flags Into AH Register"');
    }
  }
  lp.materializeFlags();
  if (d.op === 0x9e) { // SAHF: EFLAGS(SF:ZF:0:AF:0:PF:1:CF) ← AH; OF is unchanged
    const ah = (lp.regLo[RAX]! >>> 8) & 0xff;
    lp.rflagsRaw = (lp.rflagsRaw & ~LOW_STATUS) | (ah & LOW_STATUS);
  } else { // LAHF: AH ← EFLAGS(SF:ZF:0:AF:0:PF:1:CF)
    const ah = (lp.rflagsRaw & LOW_STATUS) | RESERVED_1;
    lp.regLo[RAX] = (lp.regLo[RAX]! & ~0xff00) | (ah << 8);
  }
  lp.rip = next;
  return false;
}
