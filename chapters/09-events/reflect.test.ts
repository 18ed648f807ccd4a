// Exercise 9.2 — reflecting the exceptions the exception bitmap caught, on every model (the exception bitmap is part
// of every VMX processor). The guest raises #UD, #GP(0), #PF and #BP itself; with their bitmap bits set each one
// exits (reason 0) first, and your part must give it back so the guest's handlers see exactly what they would have
// seen without a hypervisor: same vector, error code, pushed RIP and CR2.
import { describe, expect, test } from 'vitest';
import { reflectPart } from '#impl/09-events/reflect';
import { ALL_MODELS, INJECTION_RULE, describeSeen, eventGuest, hex, installIdt, runPart, seen } from './support.ts';

const VECTORS = [3, 6, 13, 14];
const GUEST = eventGuest(`
        lea r14, [a1]
u1:     ud2                             ; #UD (fault, no error code)
a1:     lea r14, [a2]
        mov rbx, 0x8000000000000000
g1:     mov rax, [rbx]                  ; non-canonical address: #GP(0)
a2:     lea r14, [a3]
        mov rbx, 0x80000040
p1:     mov qword [rbx], 1              ; above the guest's 1-GByte map: #PF, error code 2 (write, not present)
a3:     xor r14d, r14d
b1:     int3                            ; #BP (trap: a software exception, length 1)
a4:     hlt
`, VECTORS);

const BITMAP_RULE = 'SDM Vol. 3C, "Exception Bitmap" and "Information for VM Exits Due to Vectored Events": an exception whose bit is set exits with VM_EXIT_INTR_INFO (vector, type, bit 11 error code valid), VM_EXIT_INTR_ERROR_CODE, ' +
  'VM_EXIT_INSTRUCTION_LEN for software exceptions, and for #PF the linear address in the exit qualification — CR2 is not loaded by such an exit';

describe('reflectPart', () => {
  test.each(ALL_MODELS.map((m) => [m]))('%s: #UD, #GP(0), #PF, #BP caught by the bitmap and delivered to the guest unchanged', (model) => {
    const part = reflectPart(VECTORS);
    const run = runPart({ model, part, source: GUEST, before: (h, c, g) => installIdt(h, c, g, VECTORS) });
    const at = (l: string): bigint => BigInt(run.guest.labels.get(l)!);
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    const exits = run.exits.filter((e) => e.reason === 0).map((e) => hex(e.rip));
    expect(exits, run.why(`the part must set EXCEPTION_BITMAP bits 3, 6, 13 and 14: one exit 0 per exception, at the instruction that raised it. ${BITMAP_RULE}`)).toEqual(['u1', 'g1', 'p1', 'b1'].map((l) => hex(at(l))));
    const got = seen(run);
    const row = (vector: number, errorCode: bigint, rip: bigint): string => `vector ${vector}, error code ${errorCode < 0n ? 'none' : hex(errorCode)}, pushed RIP ${hex(rip)}`;
    expect(got.map((e) => row(e.vector, e.errorCode, e.rip)), run.why(`the guest's handlers saw: ${describeSeen(got)}. Re-inject each event as it came: the faults with RIP unchanged (RESUME), #GP with its error code 0 and #PF with 2, #BP as a software exception with VM_EXIT_INSTRUCTION_LEN (1) so it returns after the INT3. ${INJECTION_RULE}`))
      .toEqual([row(6, -1n, at('u1')), row(13, 0n, at('g1')), row(14, 2n, at('p1')), row(3, -1n, at('a4'))]);
    expect(hex(got.find((e) => e.vector === 14)?.cr2 ?? -1n), run.why(`CR2 in the guest's #PF handler: the exit did not load CR2, the address is in EXIT_QUALIFICATION; write it to CR2 before re-injecting. ${BITMAP_RULE}`)).toBe('0x80000040');
    expect(part.caught.map((c) => c.vector), run.why('the part logs each exception it reflected')).toEqual([6, 13, 14, 3]);
  });
});
