import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MSR_EFER } from '../../x86/msr.ts';
import { AR } from '../../x86/segments.ts';
import { lastDiagnosis } from '../diagnosis.ts';
import { VMCS, decodeEncoding, fieldByEncoding, fullFieldName } from '../fields.ts';
import { VMCS_SLOT } from '../vmcs.ts';
import { vmread, vmwrite } from './vmread-vmwrite.ts';
import { vmxon } from './vmxon.ts';
import { FIELD_REQUIREMENTS } from '../vmcs-support.ts';
import { FLAGS_BEFORE, FLAGS_FAIL_INVALID, FLAGS_FAIL_VALID, FLAGS_SUCCEED, VMXON_PA, capsOf, setup, setupWithVmcs } from '../testing/instruction-harness.ts';

const v = (value: bigint | number) => ({ kind: 'value', value: BigInt(value) }) as const;
const R = { kind: 'result' } as const;
const ERR = VMCS_SLOT.VM_INSTRUCTION_ERROR!;

describe('VMREAD/VMWRITE outcomes', () => {
  it('no current VMCS: VMfailInvalid (CF = 1, nothing written)', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmread(ctx, v(VMCS.GUEST_RIP), R)).toEqual({ kind: 'VMfailInvalid' });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmwrite(ctx, v(VMCS.GUEST_RIP), v(1))).toEqual({ kind: 'VMfailInvalid' });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
  });
  it('success clears all six status flags', () => {
    const ctx = setupWithVmcs();
    expect(vmwrite(ctx, v(VMCS.GUEST_RIP), v(0x401000))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmread(ctx, v(VMCS.GUEST_RIP), R)).toEqual({ kind: 'VMsucceed', value: 0x401000n });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
  });
  it.each([
    ['an encoding that names no field', 0x1234n],
    ['a reserved bit 12', BigInt(VMCS.GUEST_RIP | 0x1000)],
    ['bits 63:32 set in 64-bit mode', (1n << 32n) | BigInt(VMCS.GUEST_RIP)],
    ['a HIGH access of a natural-width field', BigInt(VMCS.GUEST_RIP + 1)],
    ['a field this CPU lacks (TSC_MULTIPLIER: no TSC scaling on Skylake-U)', BigInt(VMCS.TSC_MULTIPLIER)],
  ])('unsupported component: %s → VMfailValid(12)', (_n, enc) => {
    const ctx = setupWithVmcs();
    expect(vmread(ctx, v(enc), R)).toEqual({ kind: 'VMfailValid', error: 12 });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_VALID);
    expect(ctx.state.current!.readLow(ERR)).toBe(12);
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmwrite(ctx, v(enc), v(0))).toEqual({ kind: 'VMfailValid', error: 12 });
    expect(lastDiagnosis(ctx.state)?.rule).toBe('vmcs-unsupported-component');
  });
  it('feature fields follow the model: EPT_POINTER and the preemption-timer value do not exist on Penryn', () => {
    const penryn = setupWithVmcs('penryn-core2-duo-t9600');
    expect(vmwrite(penryn, v(VMCS.EPT_POINTER), v(0))).toEqual({ kind: 'VMfailValid', error: 12 });
    expect(vmread(penryn, v(VMCS.VMX_PREEMPTION_TIMER_VALUE), R)).toEqual({ kind: 'VMfailValid', error: 12 });
    expect(lastDiagnosis(penryn.state)?.message).toContain('activate VMX-preemption timer');
    const sky = setupWithVmcs();
    expect(vmwrite(sky, v(VMCS.EPT_POINTER), v(0x1e))).toEqual({ kind: 'VMsucceed' });
    expect(vmread(sky, v(VMCS.VMX_PREEMPTION_TIMER_VALUE), R).kind).toBe('VMsucceed');
  });
  it('read-only field: VMfailValid(13) when IA32_VMX_MISC[29] = 0 (Nehalem), allowed when 1 (Skylake)', () => {
    const nehalem = setupWithVmcs('nehalem-lynnfield-i7-870');
    expect(vmwrite(nehalem, v(VMCS.VM_EXIT_REASON), v(1))).toEqual({ kind: 'VMfailValid', error: 13 });
    expect(nehalem.state.current!.readLow(ERR)).toBe(13);
    // VMREAD of the read-only field is fine: it now reads the error just written.
    expect(vmread(nehalem, v(VMCS.VM_INSTRUCTION_ERROR), R)).toEqual({ kind: 'VMsucceed', value: 13n });
    const sky = setupWithVmcs();
    expect(vmwrite(sky, v(VMCS.VM_EXIT_REASON), v(1))).toEqual({ kind: 'VMsucceed' });
  });
  it('12 takes precedence over 13 (an unsupported read-only encoding)', () => {
    const nehalem = setupWithVmcs('nehalem-lynnfield-i7-870');
    expect(vmwrite(nehalem, v(VMCS.GUEST_PHYSICAL_ADDRESS + 0x100), v(1))).toEqual({ kind: 'VMfailValid', error: 12 });
  });
  it('#UD outside VMX operation, #GP at CPL 3, VM exit in non-root operation', () => {
    expect(vmread(setup(), v(VMCS.GUEST_RIP), R)).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    const ctx = setupWithVmcs();
    ctx.cpu.cplValue = 3;
    expect(vmwrite(ctx, v(VMCS.GUEST_RIP), v(0))).toMatchObject({ kind: 'fault', fault: { vector: 13 } });
    expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
    ctx.cpu.cplValue = 0;
    ctx.state.nonRoot = true;
    expect(vmread(ctx, v(VMCS.GUEST_RIP), R)).toEqual({ kind: 'vm-exit', reason: 23 });
    expect(vmwrite(ctx, v(VMCS.GUEST_RIP), v(0))).toEqual({ kind: 'vm-exit', reason: 25 });
  });
});

describe('field widths', () => {
  it('16-bit fields keep bits 15:0; 32-bit fields bits 31:0', () => {
    const ctx = setupWithVmcs();
    vmwrite(ctx, v(VMCS.GUEST_ES_SELECTOR), v(0xffff_1234_5678n));
    expect(vmread(ctx, v(VMCS.GUEST_ES_SELECTOR), R)).toEqual({ kind: 'VMsucceed', value: 0x5678n });
    vmwrite(ctx, v(VMCS.GUEST_ES_LIMIT), v(0x1_2345_6789n));
    expect(vmread(ctx, v(VMCS.GUEST_ES_LIMIT), R)).toEqual({ kind: 'VMsucceed', value: 0x2345_6789n });
  });
  it('64-bit fields: full and HIGH accesses', () => {
    const ctx = setupWithVmcs();
    vmwrite(ctx, v(VMCS.TSC_OFFSET), v(0x1122_3344_5566_7788n));
    expect(vmread(ctx, v(VMCS.TSC_OFFSET_HIGH), R)).toEqual({ kind: 'VMsucceed', value: 0x1122_3344n });
    vmwrite(ctx, v(VMCS.TSC_OFFSET_HIGH), v(0xffff_aabb_ccddn));
    expect(vmread(ctx, v(VMCS.TSC_OFFSET), R)).toEqual({ kind: 'VMsucceed', value: 0xaabb_ccdd_5566_7788n });
  });
  it('VMREAD into a register writes all 64 bits in 64-bit mode; into memory at the operand size', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.gprs[3] = 0xffff_ffff_ffff_ffffn;
    vmwrite(ctx, v(VMCS.GUEST_ES_SELECTOR), v(0x10));
    expect(vmread(ctx, v(VMCS.GUEST_ES_SELECTOR), { kind: 'register', reg: 3 })).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.gprs[3]).toBe(0x10n);
    ctx.cpu.writePhysical64(0x9000n, 0xffff_ffff_ffff_ffffn);
    vmread(ctx, v(VMCS.GUEST_ES_SELECTOR), { kind: 'memory', linear: 0x9000n });
    expect(ctx.cpu.readPhysical64(0x9000n)).toBe(0x10n);
  });
  it('#PF writing the VMREAD destination: no flags change', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.faultingPages.add(9n);
    expect(vmread(ctx, v(VMCS.GUEST_RIP), { kind: 'memory', linear: 0x9000n })).toMatchObject({ kind: 'fault', fault: { vector: 14 } });
    expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
  });
  it('#PF reading the VMWRITE source comes before VMfailInvalid', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    ctx.cpu.faultingPages.add(9n);
    expect(vmwrite(ctx, v(VMCS.GUEST_RIP), { kind: 'memory', linear: 0x9000n })).toMatchObject({ kind: 'fault', fault: { vector: 14 } });
  });
  it('outside 64-bit mode: 32-bit operands; encoding bits 63:32 ignored; long fields read low, written with high bits cleared', () => {
    const ctx = setupWithVmcs();
    vmwrite(ctx, v(VMCS.GUEST_RIP), v(0x1234_5678_9abc_def0n));
    vmwrite(ctx, v(VMCS.TSC_OFFSET), v(0x1111_2222_3333_4444n));
    // 32-bit protected mode: EFER.LMA = 0, CS.L = 0.
    ctx.cpu.msrs.set(MSR_EFER, 0n);
    ctx.cpu.segments.CS.ar &= ~AR.L;
    expect(vmread(ctx, v((1n << 32n) | BigInt(VMCS.GUEST_RIP)), R)).toEqual({ kind: 'VMsucceed', value: 0x9abc_def0n });
    vmwrite(ctx, v(VMCS.TSC_OFFSET), v(0x5555_6666_7777_8888n));
    ctx.cpu.msrs.set(MSR_EFER, 0x500n);
    ctx.cpu.segments.CS.ar |= AR.L;
    expect(vmread(ctx, v(VMCS.TSC_OFFSET), R)).toEqual({ kind: 'VMsucceed', value: 0x7777_8888n });
  });
});

describe('property: any encoding and value end in an architectural outcome, never a throw', () => {
  /** Width of a field from its encoding alone (independent of the VMCS slot tables). */
  function expectedStored(enc: number, value: bigint): bigint {
    const d = decodeEncoding(enc);
    if (d.accessType === 'high') return value & 0xffff_ffffn;
    return d.width === '16' ? value & 0xffffn : d.width === '32' ? value & 0xffff_ffffn : value;
  }
  for (const model of ['skylake-i5-6300u', 'nehalem-lynnfield-i7-870', 'penryn-core2-duo-t9600']) {
    it(model, () => {
      const ctx = setupWithVmcs(model);
      const vmwriteAny = ctx.cpu.caps.misc.vmwriteAnyField;
      const known = fc.constantFrom(...[0, 1, 0x800, 0x2000, 0x2001, 0x4400, 0x4402, 0x6400, 0x681e, 0x6c16, 0x482e, 0x201a, 0x2032]);
      fc.assert(
        fc.property(fc.oneof(known, fc.integer({ min: 0, max: 0xffff }), fc.nat()), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (enc, value) => {
          const w = vmwrite(ctx, v(enc), v(value));
          const field = fieldByEncoding(enc);
          if (field === undefined) {
            expect(w).toEqual({ kind: 'VMfailValid', error: 12 });
            expect(vmread(ctx, v(enc), R)).toEqual({ kind: 'VMfailValid', error: 12 });
            return;
          }
          if (w.kind === 'VMfailValid' && w.error === 12) {
            // The field exists in the SDM but not on this CPU: VMREAD agrees.
            expect(vmread(ctx, v(enc), R)).toEqual({ kind: 'VMfailValid', error: 12 });
            return;
          }
          if (field.readOnly && !vmwriteAny) {
            expect(w).toEqual({ kind: 'VMfailValid', error: 13 });
            return;
          }
          expect(w).toEqual({ kind: 'VMsucceed' });
          expect(ctx.cpu.rflags & 0x8d5).toBe(0);
          expect(vmread(ctx, v(enc), R)).toEqual({ kind: 'VMsucceed', value: expectedStored(enc, value) });
        }),
        { numRuns: 600, seed: 4242 },
      );
    });
  }
});

describe('number operands (the host API\'s fast path) behave like bigints and never throw', () => {
  it('any JS number as encoding or value', () => {
    const ctx = setupWithVmcs();
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constantFrom(VMCS.GUEST_RIP, VMCS.GUEST_ES_SELECTOR, VMCS.TSC_OFFSET_HIGH, VMCS.EPTP_IDX, VMCS.POSTED_INTR_NV, VMCS.TSC_MULTIPLIER)), fc.oneof(fc.double(), fc.integer({ min: 0, max: 0xffffffff })), (enc, value) => {
        const w = vmwrite(ctx, { kind: 'value', value: enc }, { kind: 'value', value });
        const r = vmread(ctx, { kind: 'value', value: enc }, R);
        // A field exists on this processor (Skylake) when the table has it and the model supports its feature.
        const field = Number.isInteger(enc) ? fieldByEncoding(enc) : undefined;
        const valid = field !== undefined && FIELD_REQUIREMENTS[fullFieldName(field)]?.test(capsOf('skylake-i5-6300u')) !== false;
        expect(w.kind).toBe(valid ? 'VMsucceed' : 'VMfailValid');
        expect(r.kind).toBe(valid ? 'VMsucceed' : 'VMfailValid');
        if (valid && Number.isInteger(value) && value >= 0) {
          const wide = decodeEncoding(enc).width;
          const expected = decodeEncoding(enc).accessType === 'high' || wide === '32' ? BigInt(value) & 0xffffffffn : wide === '16' ? BigInt(value) & 0xffffn : BigInt.asUintN(64, BigInt(value));
          expect(r).toEqual({ kind: 'VMsucceed', value: expected });
        }
      }),
      { numRuns: 500, seed: 11 },
    );
  });
  it('a number value equals the same bigint value', () => {
    const a = setupWithVmcs();
    vmwrite(a, v(VMCS.TSC_OFFSET), v(0xffff_ffff_0000_0000n));
    vmwrite(a, { kind: 'value', value: VMCS.TSC_OFFSET }, { kind: 'value', value: 7 });
    expect(vmread(a, v(VMCS.TSC_OFFSET), R)).toEqual({ kind: 'VMsucceed', value: 7n });
  });
});
