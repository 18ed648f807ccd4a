// The VM-entry checks on event injection, against a predicate written here from the SDM's own list and independent
// of ./controls.ts: random interruption-information values, error codes and instruction lengths, on every CPU
// model (so IA32_VMX_BASIC[56], IA32_VMX_MISC[30] and monitor-trap-flag support vary). The SDM lists the checks in
// this order, and VM entry reports the first that fails: VMfailValid(7), the rule named in the diagnosis.
// See SDM Vol. 3C, "Checks on VM-Entry Control Fields" (event injection) and, for the one guest-state check that
// reads the field here, "Checks on Guest RIP, RFLAGS, and SSP" (an external interrupt needs RFLAGS.IF = 1).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { vmEntry } from './index.ts';
import { buildValidVmcs, vmcsChoices, type Fixture } from '../testing/vmcs-fixture.ts';
import { VMX_CONTROL as C } from '../controls.ts';

interface Model { mtf: boolean; anyErrorCode: boolean; zeroLength: boolean }

/** The outcome the SDM's list gives: 'entered', or the failing rule's id with its signal. */
function expected(m: Model, raw: number, errorCode: number, length: number, rflagsIf: boolean): string {
  const valid = raw >>> 31 === 1;
  if (!valid) return 'entered';
  const type = (raw >>> 8) & 7, vector = raw & 0xff, deliver = ((raw >>> 11) & 1) === 1;
  const fail = (rule: string): string => `VMfailValid(7) ${rule}`;
  // "The field's interruption type (bits 10:8) is not set to a reserved value. Value 1 is reserved on all logical
  // processors; value 7 (other event) is reserved on logical processors that do not support the 1-setting of the
  // 'monitor trap flag' VM-execution control."
  if (type === 1 || (type === 7 && !m.mtf)) return fail('event-injection-type');
  // "The field's vector (bits 7:0) is consistent with the interruption type: NMI → 2; hardware exception → at most
  // 31; other event → 0."
  if ((type === 2 && vector !== 2) || (type === 3 && vector > 31) || (type === 7 && vector !== 0)) return fail('event-injection-vector');
  // "The field's deliver-error-code bit (bit 11) is 1 if each of the following holds: (1) the interruption type is
  // hardware exception; (2) 'unrestricted guest' is 0 or bit 0 (CR0.PE) is set in the CR0 field; (3)
  // IA32_VMX_BASIC[56] is read as 0; and (4) the vector is #DF, #TS, #NP, #SS, #GP, #PF or #AC. It is 0 if any of
  // the following holds: (1) the type is not hardware exception; (2) 'unrestricted guest' is 1 and CR0.PE is clear;
  // or (3) IA32_VMX_BASIC[56] is 0 and the vector is in 0–7, 9, 15, 16, or 18–31." These guests are in IA-32e mode
  // (CR0.PE = 1), so (2) always holds; the real-mode case is tested in ./variants.test.ts.
  const pushes = [8, 10, 11, 12, 13, 14, 17].includes(vector);
  if (type === 3 && !m.anyErrorCode && deliver !== pushes) return fail('event-injection-deliver-error-code');
  if (type !== 3 && deliver) return fail('event-injection-deliver-error-code');
  // "Reserved bits in the field (30:12) are 0."
  if ((raw & 0x7ffff000) !== 0) return fail('event-injection-reserved');
  // "If the deliver-error-code bit (bit 11) is 1, bits 31:16 of the VM-entry exception error-code field are 0."
  if (deliver && errorCode >>> 16 !== 0) return fail('event-injection-error-code');
  // "If the interruption type is software interrupt, software exception, or privileged software exception, the
  // VM-entry instruction-length field is in the range 0–15. A VM-entry instruction length of 0 is allowed only if
  // IA32_VMX_MISC[30] is read as 1."
  if ((type === 4 || type === 5 || type === 6) && (length > 15 || (length === 0 && !m.zeroLength))) return fail('event-injection-instruction-length');
  // Guest state: "If the VM-entry interruption-information field is valid and the interruption type is external
  // interrupt, RFLAGS.IF must be 1" — an invalid-guest-state exit (33), after all control checks.
  if (type === 0 && !rflagsIf) return 'exit 33/0 guest-rflags-if-for-external-interrupt';
  return 'entered';
}

function outcome(f: Fixture): string {
  const o = vmEntry(f.ctx);
  if (o.kind === 'entered') return 'entered';
  return o.kind === 'VMfailValid' ? `VMfailValid(${o.error}) ${o.diagnosis.rule}` : `exit ${o.reason}/${o.qualification} ${o.diagnosis.rule}`;
}

/** Interruption information biased to the interesting values: each part drawn separately, reserved bits rarely. */
const interruptionInfo = fc.record({
  valid: fc.boolean(), type: fc.integer({ min: 0, max: 7 }), deliver: fc.boolean(),
  vector: fc.oneof(fc.integer({ min: 0, max: 31 }), fc.constantFrom(0, 2, 32, 0x80, 0xff), fc.integer({ min: 0, max: 255 })),
  reserved: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0x7ffff }) }),
}).map((p) => ((p.valid ? 2 ** 31 : 0) + (p.reserved << 12) + (p.deliver ? 1 << 11 : 0) + (p.type << 8) + p.vector) >>> 0);
const errorCode = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0x10000, 0xffff0000), fc.nat());
const length = fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 0xffffffff }));

describe('event-injection entry checks against the SDM list', () => {
  it('random interruption information, error code and length: the outcome and the rule the SDM list gives', () => {
    fc.assert(fc.property(fc.constantFrom(...CPU_MODELS), vmcsChoices(), interruptionInfo, errorCode, length, (model, c, raw, code, len) => {
      const f = buildValidVmcs(model, c);
      f.set('VM_ENTRY_INTR_INFO_FIELD', raw);
      f.set('VM_ENTRY_EXCEPTION_ERROR_CODE', code >>> 0);
      f.set('VM_ENTRY_INSTRUCTION_LEN', len >>> 0);
      const m: Model = { mtf: f.canSet('proc', C.CPU_BASED_MONITOR_TRAP_FLAG), anyErrorCode: f.caps.basic.noHwErrcodeCheck, zeroLength: f.caps.misc.zeroLengthInjection };
      const want = expected(m, raw, code >>> 0, len >>> 0, c.interruptsEnabled);
      expect(outcome(f), `${model.name}: info ${raw.toString(16)}H, error code ${(code >>> 0).toString(16)}H, length ${len >>> 0}`).toBe(want);
    }), { numRuns: 600 });
  });

  it('the generator reaches every outcome (so the property cannot pass by never failing)', () => {
    const seen = new Set<string>();
    fc.assert(fc.property(fc.constantFrom(...CPU_MODELS), interruptionInfo, errorCode, length, fc.boolean(), (model, raw, code, len, ifl) => {
      const f = buildValidVmcs(model, fc.sample(vmcsChoices(), { seed: 7, numRuns: 1 })[0]!);
      const m: Model = { mtf: f.canSet('proc', C.CPU_BASED_MONITOR_TRAP_FLAG), anyErrorCode: f.caps.basic.noHwErrcodeCheck, zeroLength: f.caps.misc.zeroLengthInjection };
      seen.add(expected(m, raw, code >>> 0, len >>> 0, ifl).split(' ').pop()!);
    }), { numRuns: 2000 });
    expect([...seen].sort()).toEqual([
      'entered', 'event-injection-deliver-error-code', 'event-injection-error-code', 'event-injection-instruction-length',
      'event-injection-reserved', 'event-injection-type', 'event-injection-vector', 'guest-rflags-if-for-external-interrupt',
    ]);
  });

  it('the models differ where the SDM lets them: BASIC[56] and MISC[30] are each 1 on some model and 0 on another', () => {
    const fixtures = CPU_MODELS.map((model) => buildValidVmcs(model, fc.sample(vmcsChoices(), { seed: 3, numRuns: 1 })[0]!));
    expect(new Set(fixtures.map((f) => f.caps.basic.noHwErrcodeCheck)).size).toBe(2);
    expect(new Set(fixtures.map((f) => f.caps.misc.zeroLengthInjection)).size).toBe(2);
  });
});
