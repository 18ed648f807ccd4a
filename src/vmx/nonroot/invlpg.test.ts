// INVLPG and INVPCID from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally"
// ("INVLPG exiting"; INVPCID with "enable INVPCID" and "INVLPG exiting"), "Changes to Instruction Behavior in VMX
// Non-Root Operation" (INVPCID is #UD with "enable INVPCID" = 0), "Basic VM-Exit Information" (INVLPG: the
// linear address; INVPCID: the displacement) and "VM-Exit Instruction-Information Field".
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { enableControls, runRecordedGuest } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32, R64, expectedDisplacement, field, fields, memOperand, memoryInfo } from './operand-testkit.ts';

const R = EXIT_REASON;

describe('INVLPG', () => {
  it('with "INVLPG exiting" exits with the linear address as qualification', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }), fc.integer({ min: -128, max: 127 }), (rax, disp) => {
      const run = runRecordedGuest({
        source: `bits 64\nat: invlpg [rax ${disp < 0 ? '-' : '+'} ${Math.abs(disp)}]\nafter: cpuid`,
        setup: (host, cpu) => {
          expect(enableControls(host, cpu, { proc: C.CPU_BASED_INVLPG_EXITING })).toBe(true);
          cpu.writeGpr('rax', rax);
        },
      });
      const e = run.exits[0]!;
      const at = (l: string) => BigInt(run.guest.labels.get(l)!);
      expect(e.reason, run.why()).toBe(BigInt(R.EXIT_REASON_INVLPG));
      expect(e.qualification).toBe(BigInt.asUintN(64, rax + BigInt(disp)));
      expect(e.guestRip).toBe(at('at'));
      expect(e.instructionLength).toBe(at('after') - at('at'));
      expect(e.instructionInfo, 'no instruction information for INVLPG').toBe(BigInt(POISON_32));
    }), { seed: 14, numRuns: 20 });
  });

  it('without it, INVLPG runs natively', () => {
    const run = runRecordedGuest({ source: 'bits 64\ninvlpg [rsp]\ncpuid' });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(R.EXIT_REASON_CPUID));
  });
});

describe('INVPCID', () => {
  const guest = (operand: string, type = 'rcx') => `bits 64\nxor ecx, ecx\nat: invpcid ${type}, ${operand}\nafter: cpuid\nalign 16\ndata: dq 0, 0`;

  it('with "enable INVPCID" and "INVLPG exiting" exits with the displacement and the operands (any operand)', () => {
    fc.assert(fc.property(memOperand, fc.integer({ min: 0, max: 15 }), (m, r2) => {
      const run = runRecordedGuest({
        source: guest(m.text, R64[r2]),
        setup: (host, cpu) => { expect(enableControls(host, cpu, { proc: C.CPU_BASED_INVLPG_EXITING, proc2: C.SECONDARY_EXEC_ENABLE_INVPCID })).toBe(true); },
      });
      const e = run.exits[0]!;
      const at = (l: string) => run.guest.labels.get(l)!;
      expect(e.reason, `${m.text}\n${run.why()}`).toBe(BigInt(R.EXIT_REASON_INVPCID));
      expect(e.instructionLength).toBe(BigInt(at('after') - at('at')));
      const q = expectedDisplacement(m, at('data'));
      expect(e.qualification & q.defined, m.text).toBe(q.value);
      const want = fields(memoryInfo(m), field(r2, 28, 4));
      expect((Number(e.instructionInfo) & want.defined) >>> 0, m.text).toBe(want.value);
    }), { seed: 58, numRuns: 40 });
  });

  it('"enable INVPCID" without "INVLPG exiting": INVPCID runs natively', () => {
    const run = runRecordedGuest({
      source: guest('[rel data]'),
      setup: (host, cpu) => { expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_ENABLE_INVPCID })).toBe(true); },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(R.EXIT_REASON_CPUID));
  });

  it('"enable INVPCID" = 0: #UD even with "INVLPG exiting" (the guest has no IDT: a triple fault)', () => {
    const run = runRecordedGuest({
      source: guest('[rel data]'),
      setup: (host, cpu) => { expect(enableControls(host, cpu, { proc: C.CPU_BASED_INVLPG_EXITING })).toBe(true); },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(R.EXIT_REASON_TRIPLE_FAULT));
    expect(run.exits[0]?.instructionLength).toBe(BigInt(POISON_32));
  });
});
