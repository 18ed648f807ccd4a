// RDRAND and RDSEED from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally"
// ("RDRAND exiting", "RDSEED exiting") and "VM-Exit Instruction-Information Field" (the RDRAND/RDSEED table:
// destination register 6:3, operand size 12:11, every other bit undefined).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { enableControls, runRecordedGuest } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32, R16, R32, R64, field, fields } from './operand-testkit.ts';

const SIZES = [{ names: R16, code: 0 }, { names: R32, code: 1 }, { names: R64, code: 2 }] as const;

describe('RDRAND and RDSEED', () => {
  it('exit with their control: the destination register and operand size in the instruction information', () => {
    fc.assert(fc.property(fc.boolean(), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 2 }), (seed, reg, size) => {
      const insn = `${seed ? 'rdseed' : 'rdrand'} ${SIZES[size]!.names[reg]}`;
      const run = runRecordedGuest({
        source: `bits 64\nat: ${insn}\nafter: cpuid`,
        setup: (host, cpu) => {
          expect(enableControls(host, cpu, { proc2: seed ? C.SECONDARY_EXEC_RDSEED_EXITING : C.SECONDARY_EXEC_RDRAND_EXITING })).toBe(true);
        },
      });
      const e = run.exits[0]!;
      const at = (l: string) => BigInt(run.guest.labels.get(l)!);
      expect(e.reason, `${insn}\n${run.why()}`).toBe(BigInt(seed ? EXIT_REASON.EXIT_REASON_RDSEED : EXIT_REASON.EXIT_REASON_RDRAND));
      expect(e.instructionLength).toBe(at('after') - at('at'));
      expect(e.qualification).toBe(0n);
      const want = fields(field(reg, 3, 4), field(SIZES[size]!.code, 11, 2));
      const info = Number(e.instructionInfo);
      expect((info & want.defined) >>> 0, insn).toBe(want.value);
      expect((info & ~want.defined) >>> 0, `${insn}: undefined bits poisoned`).toBe((POISON_32 & ~want.defined) >>> 0);
    }), { seed: 57, numRuns: 30 });
  });

  it('without the control, the guest gets a random number and CF = 1; the other instruction\'s control does not apply', () => {
    const run = runRecordedGuest({
      source: 'bits 64\nrdrand rbx\nsetc dl\nmovzx edx, dl\ncpuid',
      setup: (host, cpu) => { expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_RDSEED_EXITING })).toBe(true); },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(run.exits[0]?.rdx).toBe(1n);
  });

  it('a model without RDSEED (Haswell): #UD before any VM exit (no guest IDT: a triple fault)', () => {
    const run = runRecordedGuest({
      model: 'haswell-i5-4260u',
      source: 'bits 64\nrdseed rax\ncpuid',
      setup: (host, cpu) => { enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_RDRAND_EXITING }); },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT));
  });
});
