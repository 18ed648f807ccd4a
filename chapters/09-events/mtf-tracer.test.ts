// Exercise 9.5 — the MTF single-step tracer, on every model that allows "monitor trap flag"; models without it must
// refuse the part (the kit reports the impossible control). The expected trace is the guest program's own control
// flow: the RIP of each next instruction, a 3-iteration loop unrolled.
import { describe, expect, test } from 'vitest';
import { mtfTracerPart } from '#impl/09-events/mtf-tracer';
import { MTF_MODELS, NO_MTF_MODELS, hex, runPart } from './support.ts';

const MTF_RULE = 'SDM Vol. 3C, "Monitor Trap Flag": with the control set, an MTF VM exit (reason 37) occurs at the instruction boundary after each guest instruction; ' +
  'GUEST_RIP is the next instruction and the exit is not caused by an instruction (VM_EXIT_INSTRUCTION_LEN undefined): RESUME, never SKIP';

const GUEST = `
bits 64
default rel
i0:     mov ecx, 3
i1:     xor eax, eax
i2:     add eax, ecx
i3:     dec ecx
i4:     jnz i2
i5:     mov [result], rax
i6:     hlt
align 8
result: dq -1
`;

describe('mtfTracerPart', () => {
  test.each(MTF_MODELS.map((m) => [m]))('%s: one MTF exit per instruction, RIP logged, never advanced', (model) => {
    const part = mtfTracerPart();
    const run = runPart({ model, part, source: GUEST });
    const at = (l: string): string => hex(BigInt(run.guest.labels.get(l)!));
    expect(run.outcome.kind, run.why(`the guest should reach its HLT. ${MTF_RULE}`)).toBe('halted');
    const want = ['i1', 'i2', 'i3', 'i4', 'i2', 'i3', 'i4', 'i2', 'i3', 'i4', 'i5', 'i6'].map(at);
    expect(part.rips.map(hex), run.why(`the RIPs your tracer logged, one per MTF exit: after i0 the next instruction i1, then the loop three times, then i5 and the HLT at i6. ${MTF_RULE}`)).toEqual(want);
    expect(run.qword('result'), run.why('the guest computed 3 + 2 + 1 = 6: every instruction ran exactly once per iteration (an MTF handler that moves RIP skips guest instructions)')).toBe(6n);
  });
  test.each(NO_MTF_MODELS.map((m) => [m]))('%s: no monitor trap flag — the part\'s control request is refused', (model) => {
    const run = runPart({ model, part: mtfTracerPart(), source: GUEST });
    expect(run.outcome.kind, run.why('this model\'s IA32_VMX_(TRUE_)PROCBASED_CTLS has allowed-1 bit 27 = 0: the part must ask for the control (controls.proc.want) so the kit refuses it')).toBe('controls');
  });
});
