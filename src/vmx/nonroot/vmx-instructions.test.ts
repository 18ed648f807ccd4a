// VMX instructions executed by a real guest exit unconditionally, against SDM Vol. 3C, "Instructions That Cause
// VM Exits Unconditionally", "Basic VM-Exit Information" (the displacement as exit qualification, instruction
// length) and "VM-Exit Instruction-Information Field" (the operand tables). Expected values come from
// ./operand-testkit.ts, written from the SDM tables.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runRecordedGuest } from '../../kernel/testing/reference-vm.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32, R64, expectedDisplacement, field, fields, memOperand, memoryInfo, registerInfo, type Expected } from './operand-testkit.ts';

const R = EXIT_REASON;
const reg = fc.integer({ min: 0, max: 15 });

/** Run `insn` as the guest's first instruction; the exit it causes, the label addresses. */
function runOne(insn: string) {
  const run = runRecordedGuest({ source: `bits 64\nat_insn: ${insn}\nafter: cpuid\nalign 16\ndata: dq 0, 0` });
  const e = run.exits[0];
  const at = (l: string) => run.guest.labels.get(l)!;
  return { run, e, at, length: at('after') - at('at_insn') };
}

function expectInfo(actual: bigint, want: Expected, what: string): void {
  const info = Number(actual);
  expect((info & want.defined) >>> 0, `${what}: defined bits`).toBe(want.value >>> 0);
  expect((info & ~want.defined) >>> 0, `${what}: the bits the SDM leaves undefined carry the poison`).toBe((POISON_32 & ~want.defined) >>> 0);
}

describe('VMX instructions with a memory operand', () => {
  const FORMS = [
    { mnemonic: 'vmptrld', reason: R.EXIT_REASON_VMPTRLD, reg2: false },
    { mnemonic: 'vmclear', reason: R.EXIT_REASON_VMCLEAR, reg2: false },
    { mnemonic: 'vmptrst', reason: R.EXIT_REASON_VMPTRST, reg2: false },
    { mnemonic: 'vmxon', reason: R.EXIT_REASON_VMON, reg2: false },
    { mnemonic: 'invept', reason: R.EXIT_REASON_INVEPT, reg2: true },
    { mnemonic: 'invvpid', reason: R.EXIT_REASON_INVVPID, reg2: true },
    { mnemonic: 'vmread', reason: R.EXIT_REASON_VMREAD, reg2: true },
    { mnemonic: 'vmwrite', reason: R.EXIT_REASON_VMWRITE, reg2: true },
  ] as const;

  it('exit with the displacement as qualification and the operand in the instruction information (any operand)', () => {
    fc.assert(fc.property(fc.constantFrom(...FORMS), memOperand, reg, (form, m, r2) => {
      const text = form.mnemonic === 'vmread' ? `vmread ${m.text}, ${R64[r2]}`
        : form.reg2 ? `${form.mnemonic} ${R64[r2]}, ${m.text}` : `${form.mnemonic} qword ${m.text}`;
      const { run, e, at, length } = runOne(text);
      expect(e?.reason, `${text}\n${run.why()}`).toBe(BigInt(form.reason));
      expect(e!.instructionLength, text).toBe(BigInt(length));
      expect(e!.guestRip, `${text}: the RIP of the instruction`).toBe(BigInt(at('at_insn')));
      const q = expectedDisplacement(m, at('data'));
      expect(e!.qualification & q.defined, `${text}: displacement`).toBe(q.value);
      // Reg2 (31:28) is the register operand for INVEPT/INVVPID/VMREAD/VMWRITE; undefined for the other four.
      expectInfo(e!.instructionInfo, form.reg2 ? fields(memoryInfo(m), field(r2, 28, 4)) : memoryInfo(m), text);
    }), { seed: 1952, numRuns: 80 });
  });

  it('a non-canonical operand address still exits: the VM exit comes before the operand is accessed', () => {
    const { run, e } = runOne('mov rax, 0x0000800000000000\nvmptrld [rax]');
    expect(e?.reason, run.why()).toBe(BigInt(R.EXIT_REASON_VMPTRLD));
  });
});

describe('VMREAD and VMWRITE with register operands', () => {
  it('report Reg1 (the r/m register), bit 10 = 1 and Reg2; the qualification is 0', () => {
    fc.assert(fc.property(fc.boolean(), reg, reg, (isRead, r1, r2) => {
      const text = isRead ? `vmread ${R64[r1]}, ${R64[r2]}` : `vmwrite ${R64[r2]}, ${R64[r1]}`;
      const { run, e, length } = runOne(text);
      expect(e?.reason, run.why()).toBe(BigInt(isRead ? R.EXIT_REASON_VMREAD : R.EXIT_REASON_VMWRITE));
      expect(e!.qualification, 'no displacement').toBe(0n);
      expect(e!.instructionLength).toBe(BigInt(length));
      expectInfo(e!.instructionInfo, fields(registerInfo(r1), field(r2, 28, 4)), text);
    }), { seed: 23, numRuns: 40 });
  });
});

describe('VMX instructions without operands', () => {
  for (const [insn, reason] of [['vmlaunch', R.EXIT_REASON_VMLAUNCH], ['vmresume', R.EXIT_REASON_VMRESUME], ['vmxoff', R.EXIT_REASON_VMOFF], ['vmcall', R.EXIT_REASON_VMCALL]] as const) {
    it(`${insn}: reason ${reason}, the length, a cleared qualification and undefined instruction information`, () => {
      const { run, e, at, length } = runOne(insn);
      expect(e?.reason, run.why()).toBe(BigInt(reason));
      expect(e!.instructionLength).toBe(BigInt(length));
      expect(e!.guestRip).toBe(BigInt(at('at_insn')));
      expect(e!.qualification).toBe(0n);
      expect(e!.instructionInfo, 'VMX_INSTRUCTION_INFO is undefined for this exit').toBe(BigInt(POISON_32));
    });
  }
});
