// Descriptor-table exiting from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits
// Conditionally" (LGDT LIDT LLDT LTR SGDT SIDT SLDT STR), "Basic VM-Exit Information" (the displacement as exit
// qualification) and "VM-Exit Instruction-Information Field" (the LGDT… and LLDT… tables). Expected values come
// from ./operand-testkit.ts.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { enableControls, runRecordedGuest } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32, R16, R64, expectedDisplacement, field, fields, memOperand, memoryInfo, registerInfo, type Expected } from './operand-testkit.ts';

const GDTR_IDTR = BigInt(EXIT_REASON.EXIT_REASON_GDTR_IDTR), LDTR_TR = BigInt(EXIT_REASON.EXIT_REASON_LDTR_TR);
/** Instruction identity, bits 29:28, per table. */
const GDT_IDT = { sgdt: 0, sidt: 1, lgdt: 2, lidt: 3 } as const;
const LDT_TR = { sldt: 0, str: 1, lldt: 2, ltr: 3 } as const;

function run(insn: string, exiting = true) {
  const r = runRecordedGuest({
    source: `bits 64\nat: ${insn}\nafter: cpuid\nalign 16\ndata: dq 0, 0`,
    setup: (host, cpu) => { if (exiting) expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_DESC })).toBe(true); },
  });
  const at = (l: string) => r.guest.labels.get(l)!;
  return { ...r, e: r.exits[0], at, length: at('after') - at('at') };
}

function expectInfo(actual: bigint, want: Expected, what: string): void {
  const info = Number(actual);
  expect((info & want.defined) >>> 0, `${what}: defined bits`).toBe(want.value >>> 0);
  expect((info & ~want.defined) >>> 0, `${what}: undefined bits are poisoned`).toBe((POISON_32 & ~want.defined) >>> 0);
}

describe('"descriptor-table exiting"', () => {
  it('LGDT/LIDT/SGDT/SIDT exit (46) with the displacement and the operand, identity in 29:28; operand size undefined in 64-bit mode', () => {
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(GDT_IDT) as (keyof typeof GDT_IDT)[])), memOperand, (insn, m) => {
      const r = run(`${insn} ${m.text}`);
      expect(r.e?.reason, `${insn} ${m.text}\n${r.why()}`).toBe(GDTR_IDTR);
      expect(r.e!.instructionLength).toBe(BigInt(r.length));
      expect(r.e!.guestRip).toBe(BigInt(r.at('at')));
      const q = expectedDisplacement(m, r.at('data'));
      expect(r.e!.qualification & q.defined).toBe(q.value);
      // Bit 11 (operand size) is undefined for VM exits from 64-bit mode: it is not among the defined bits.
      expectInfo(r.e!.instructionInfo, fields(memoryInfo(m), field(GDT_IDT[insn], 28, 2)), `${insn} ${m.text}`);
    }), { seed: 46, numRuns: 60 });
  });

  it('LLDT/LTR/SLDT/STR with a memory operand exit (47) with the displacement, the operand and the identity', () => {
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(LDT_TR) as (keyof typeof LDT_TR)[])), memOperand, (insn, m) => {
      const r = run(`${insn} word ${m.text}`);
      expect(r.e?.reason, `${insn} ${m.text}\n${r.why()}`).toBe(LDTR_TR);
      const q = expectedDisplacement(m, r.at('data'));
      expect(r.e!.qualification & q.defined).toBe(q.value);
      expectInfo(r.e!.instructionInfo, fields(memoryInfo(m), field(LDT_TR[insn], 28, 2)), `${insn} ${m.text}`);
    }), { seed: 47, numRuns: 40 });
  });

  it('LLDT/LTR/SLDT/STR with a register operand: Reg1, bit 10 = 1, the memory fields undefined, qualification 0', () => {
    fc.assert(fc.property(fc.constantFrom(...(Object.keys(LDT_TR) as (keyof typeof LDT_TR)[])), fc.integer({ min: 0, max: 15 }), (insn, reg) => {
      const operand = insn === 'lldt' || insn === 'ltr' ? R16[reg] : R64[reg];
      const r = run(`${insn} ${operand}`);
      expect(r.e?.reason, r.why()).toBe(LDTR_TR);
      expect(r.e!.qualification).toBe(0n);
      expect(r.e!.instructionLength).toBe(BigInt(r.length));
      expectInfo(r.e!.instructionInfo, fields(registerInfo(reg), field(LDT_TR[insn], 28, 2)), `${insn} ${operand}`);
    }), { seed: 470, numRuns: 30 });
  });

  it('the exit comes before the operand is accessed (a non-canonical address exits, not #GP)', () => {
    const r = run('mov rax, 0x0000800000000000\nsgdt [rax]');
    expect(r.e?.reason, r.why()).toBe(GDTR_IDTR);
  });

  it('without it, the instructions run natively', () => {
    const r = run('sgdt [rel data]\nmov rax, [rel data + 2]\nstr bx', false);
    expect(r.e?.reason, r.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(r.e!.rax, 'SGDT stored the guest GDTR base').toBe(r.guest.gdtBase);
    expect(r.e!.rbx & 0xffffn, 'STR read the guest TR selector').toBe(0x18n);
  });
});
