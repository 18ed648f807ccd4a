// Exercise 9.1 — the injector. The interruption-information field for every exception vector (fast-check, fixed
// seed) against the SDM's type table and error-code list; then your injector part on every model (event injection
// is part of every VMX processor): a guest asks with VMCALL for #GP(0), #UD, #PF with CR2 and #BP, and its own IDT
// handlers log what the processor pushed.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { exceptionEvent, exceptionType, injectorPart, interruptionInfo, pushesErrorCode } from '#impl/09-events/inject';
import { ALL_MODELS, ERROR_CODE_VECTORS, INJECTION_RULE, describeSeen, eventGuest, hex, installIdt, runPart, seen } from './support.ts';

const EXCEPTIONS = [0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21];
const TYPE_RULE = 'SDM Vol. 3C, "VM-Entry Controls for Event Injection": a VMM uses "hardware exception" (3) for every exception except #BP and #OF ("software exception", 6) and the #DB of INT1 ("privileged software exception", 5)';

describe('the type table and the interruption-information field', () => {
  test('type, deliver-error-code, vector and valid for every exception vector', () => {
    fc.assert(fc.property(fc.constantFrom(...EXCEPTIONS), fc.boolean(), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 15 }), (vector, int1, code, len) => {
      const fromInt1 = int1 && vector === 1;
      const wantType = vector === 3 || vector === 4 ? 6 : fromInt1 ? 5 : 3;
      const what = `exception vector ${vector}${fromInt1 ? ' raised by INT1' : ''}`;
      expect(exceptionType(vector, { fromInt1 }), `${what}: its interruption type. ${TYPE_RULE}`).toBe(wantType);
      expect(pushesErrorCode(vector), `${what}: does it push an error code? Only #DF(8), #TS(10), #NP(11), #SS(12), #GP(13), #PF(14), #AC(17), #CP(21) do (SDM Vol. 3A, "Exception and Interrupt Reference")`).toBe(ERROR_CODE_VECTORS.includes(vector));
      const ev = exceptionEvent(vector, { errorCode: code, instructionLength: len, fromInt1 });
      const withCode = wantType === 3 && ERROR_CODE_VECTORS.includes(vector);
      const wantInfo = ((1 << 31) | (withCode ? 1 << 11 : 0) | (wantType << 8) | vector) >>> 0;
      expect(hex(interruptionInfo(ev)), `${what}: VM_ENTRY_INTR_INFO_FIELD = valid (31) | deliver error code (11) only if it pushes one | type << 8 | vector. ${INJECTION_RULE}`).toBe(hex(wantInfo));
      expect(ev.errorCode, `${what}: the error code travels in VM_ENTRY_EXCEPTION_ERROR_CODE only when bit 11 is set`).toBe(withCode ? code : undefined);
      expect(ev.instructionLength, `${what}: an instruction length only for software and privileged software exceptions (types 6 and 5), where the processor pushes RIP + length`).toBe(wantType === 3 ? undefined : len);
    }));
  });
});

const VECTORS = [3, 6, 13, 14];
const GUEST = eventGuest(`
        lea r14, [after_gp]
        mov eax, 1
v_gp:   vmcall                          ; please inject #GP(0)
after_gp:
        lea r14, [after_ud]
        mov eax, 2
v_ud:   vmcall                          ; #UD
after_ud:
        lea r14, [after_pf]
        mov eax, 3
        mov rbx, 0x80001234
        mov ecx, 6
v_pf:   vmcall                          ; #PF at RBX, error code 6 (user, write, not present)
after_pf:
        xor r14d, r14d
        mov eax, 4
v_bp:   vmcall                          ; #BP, as if this VMCALL had been an INT3
after_bp:
        hlt
`, VECTORS);

describe('injectorPart', () => {
  test.each(ALL_MODELS.map((m) => [m]))('%s: #GP(0), #UD, #PF with CR2, #BP as a software exception', (model) => {
    const run = runPart({ model, part: injectorPart(), source: GUEST, before: (h, c, g) => installIdt(h, c, g, VECTORS) });
    const at = (l: string): bigint => BigInt(run.guest.labels.get(l)!);
    expect(run.outcome.kind, run.why('the guest should reach its HLT after four injected events')).toBe('halted');
    const got = seen(run);
    const row = (vector: number, errorCode: bigint, rip: bigint): string => `vector ${vector}, error code ${errorCode < 0n ? 'none' : hex(errorCode)}, pushed RIP ${hex(rip)}`;
    const want = [row(13, 0n, at('v_gp')), row(6, -1n, at('v_ud')), row(14, 6n, at('v_pf')), row(3, -1n, at('after_bp'))];
    expect(got.map((e) => row(e.vector, e.errorCode, e.rip)), run.why(`what the guest's handlers saw: ${describeSeen(got)}. A fault (#GP, #UD, #PF) pushes the RIP of the instruction (the VMCALL: RESUME, not SKIP); #GP and #PF push their error code; #BP is a software exception (type 6) with VM_ENTRY_INSTRUCTION_LEN = the VMCALL's length (3), so its handler returns after it. ${INJECTION_RULE}`)).toEqual(want);
    const pf = got.find((e) => e.vector === 14);
    expect(hex(pf?.cr2 ?? -1n), run.why('CR2 in the #PF handler: the faulting address (RBX). CR2 is not in the VMCS: the hypervisor writes it (cpu.writeCr2) before the VM entry that injects the #PF')).toBe('0x80001234');
  });
});
