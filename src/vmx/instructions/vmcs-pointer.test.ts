// VMCLEAR, VMPTRLD, VMPTRST: the VMCS state machine (clear/active/current/launched) and every error path.
import { describe, expect, it } from 'vitest';
import { lastDiagnosis } from '../diagnosis.ts';
import { VMCS_FORMAT_MARKER, VMCS_FORMAT_OFFSET, VMCS_LAUNCH_STATE_OFFSET, VMCS_SLOT } from '../vmcs.ts';
import { vmclear } from './vmclear.ts';
import { vmptrld, vmptrst } from './vmptrld.ts';
import { vmread, vmwrite } from './vmread-vmwrite.ts';
import { vmxon } from './vmxon.ts';
import {
  FLAGS_BEFORE, FLAGS_FAIL_INVALID, FLAGS_FAIL_VALID, FLAGS_SUCCEED, VMCS2_PA, VMCS_PA, VMXON_PA, setup, setupWithVmcs,
} from '../testing/instruction-harness.ts';

const op = (value: bigint) => ({ kind: 'value', value }) as const;
const ERR = VMCS_SLOT.VM_INSTRUCTION_ERROR!;

function inVmx(model?: string) {
  const ctx = setup(model);
  expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMsucceed');
  ctx.cpu.rflags = FLAGS_BEFORE;
  return ctx;
}

describe('VMCLEAR', () => {
  it('outside VMX operation: #UD; register operand: #UD; CPL 3: #GP', () => {
    const ctx = setup();
    expect(vmclear(ctx, op(VMCS_PA))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    const c2 = inVmx();
    expect(vmclear(c2, { kind: 'register', reg: 1 })).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    c2.cpu.cplValue = 3;
    expect(vmclear(c2, op(VMCS_PA))).toMatchObject({ kind: 'fault', fault: { vector: 13, errorCode: 0 } });
  });
  it('initialises a region and succeeds', () => {
    const ctx = inVmx();
    expect(vmclear(ctx, op(VMCS_PA))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
    expect(ctx.cpu.readPhysical32(VMCS_PA + BigInt(VMCS_FORMAT_OFFSET))).toBe(VMCS_FORMAT_MARKER);
    expect(ctx.cpu.readPhysical32(VMCS_PA + BigInt(VMCS_LAUNCH_STATE_OFFSET))).toBe(0);
    // The revision identifier is software's: VMCLEAR leaves it alone.
    expect(ctx.cpu.readPhysical32(VMCS_PA)).toBe(ctx.cpu.caps.basic.revisionId);
  });
  it('invalid address without a current VMCS: VMfailInvalid (VMfail has no VMCS to write error 2 into)', () => {
    const ctx = inVmx();
    expect(vmclear(ctx, op(VMCS_PA + 8n))).toEqual({ kind: 'VMfailInvalid' });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
  });
  it('invalid address with a current VMCS: VMfailValid(2)', () => {
    const ctx = setupWithVmcs();
    expect(vmclear(ctx, op(1n << 45n))).toEqual({ kind: 'VMfailValid', error: 2 });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_VALID);
    expect(ctx.state.current!.readLow(ERR)).toBe(2);
    expect(lastDiagnosis(ctx.state)).toMatchObject({ rule: 'vmclear-invalid-address', outcome: 'VMfailValid(2)', value: 1n << 45n });
  });
  it('the VMXON pointer: VMfailValid(3)', () => {
    const ctx = setupWithVmcs();
    expect(vmclear(ctx, op(VMXON_PA))).toEqual({ kind: 'VMfailValid', error: 3 });
  });
  it('of the current VMCS: writes it back, makes it clear and not current', () => {
    const ctx = setupWithVmcs();
    vmwrite(ctx, op(0x681en), op(0xabcdn)); // GUEST_RIP
    expect(vmclear(ctx, op(VMCS_PA)).kind).toBe('VMsucceed');
    expect(ctx.state.current).toBeNull();
    expect(ctx.state.active.length).toBe(0);
    expect(vmread(ctx, op(0x681en), { kind: 'result' }).kind).toBe('VMfailInvalid');
    vmptrld(ctx, op(VMCS_PA));
    expect(vmread(ctx, op(0x681en), { kind: 'result' })).toEqual({ kind: 'VMsucceed', value: 0xabcdn });
  });
  it('of another active VMCS leaves the current one current', () => {
    const ctx = setupWithVmcs();
    vmclear(ctx, op(VMCS2_PA));
    vmptrld(ctx, op(VMCS2_PA));
    vmptrld(ctx, op(VMCS_PA));
    expect(vmclear(ctx, op(VMCS2_PA)).kind).toBe('VMsucceed');
    expect(ctx.state.currentPointer()).toBe(VMCS_PA);
  });
});

describe('VMPTRLD', () => {
  it('makes a VMCS active and current; several can be active', () => {
    const ctx = inVmx();
    vmclear(ctx, op(VMCS_PA));
    vmclear(ctx, op(VMCS2_PA));
    expect(vmptrld(ctx, op(VMCS_PA))).toEqual({ kind: 'VMsucceed' });
    vmwrite(ctx, op(0x681en), op(1n));
    vmptrld(ctx, op(VMCS2_PA));
    vmwrite(ctx, op(0x681en), op(2n));
    expect(ctx.state.active.length).toBe(2);
    vmptrld(ctx, op(VMCS_PA));
    expect(vmread(ctx, op(0x681en), { kind: 'result' })).toEqual({ kind: 'VMsucceed', value: 1n });
  });
  it('invalid address: VMfailInvalid without a current VMCS, VMfailValid(9) with one', () => {
    const ctx = inVmx();
    expect(vmptrld(ctx, op(VMCS_PA | 0x800n)).kind).toBe('VMfailInvalid');
    const c2 = setupWithVmcs();
    expect(vmptrld(c2, op(VMCS_PA | 0x800n))).toEqual({ kind: 'VMfailValid', error: 9 });
    expect(c2.state.currentPointer()).toBe(VMCS_PA);
  });
  it('the VMXON pointer: error 10', () => {
    const ctx = setupWithVmcs();
    expect(vmptrld(ctx, op(VMXON_PA))).toEqual({ kind: 'VMfailValid', error: 10 });
  });
  it('wrong revision identifier: error 11', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.writePhysical32(VMCS2_PA, 0x12345);
    expect(vmptrld(ctx, op(VMCS2_PA))).toEqual({ kind: 'VMfailValid', error: 11 });
    expect(lastDiagnosis(ctx.state)?.value).toBe(0x12345n);
  });
  it('shadow-VMCS indicator: error 11 without VMCS shadowing (Nehalem), accepted with it (Skylake)', () => {
    for (const [model, expected] of [['nehalem-lynnfield-i7-870', 'VMfailValid'], ['skylake-i5-6300u', 'VMsucceed']] as const) {
      const ctx = setupWithVmcs(model);
      ctx.cpu.writePhysical32(VMCS2_PA, (ctx.cpu.caps.basic.revisionId | 2 ** 31) >>> 0);
      vmclear(ctx, op(VMCS2_PA));
      expect(vmptrld(ctx, op(VMCS2_PA)).kind, model).toBe(expected);
    }
  });
  it('outside VMX operation: #UD; in non-root operation: VM exit 21', () => {
    expect(vmptrld(setup(), op(VMCS_PA))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    const ctx = setupWithVmcs();
    ctx.state.nonRoot = true;
    expect(vmptrld(ctx, op(VMCS_PA))).toEqual({ kind: 'vm-exit', reason: 21 });
  });
  it('a region never VMCLEARed loads with an unknown launch state (VMLAUNCH will fail with error 4)', () => {
    const ctx = inVmx();
    expect(vmptrld(ctx, op(VMCS2_PA)).kind).toBe('VMsucceed');
    expect(ctx.state.current!.launchState).toBe('uninitialised');
  });
});

describe('VMPTRST', () => {
  it('stores FFFFFFFF_FFFFFFFFH without a current VMCS, else the current-VMCS pointer', () => {
    const ctx = inVmx();
    expect(vmptrst(ctx, { kind: 'result' })).toEqual({ kind: 'VMsucceed', value: 0xffffffffffffffffn });
    vmclear(ctx, op(VMCS_PA));
    vmptrld(ctx, op(VMCS_PA));
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmptrst(ctx, { kind: 'memory', linear: 0x7000n })).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.readPhysical64(0x7000n)).toBe(VMCS_PA);
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
  });
  it('#PF on the destination: no flags change', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.faultingPages.add(7n);
    expect(vmptrst(ctx, { kind: 'memory', linear: 0x7000n })).toMatchObject({ kind: 'fault', fault: { vector: 14 } });
    expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
  });
  it('register operand: #UD', () => {
    expect(vmptrst(setupWithVmcs(), { kind: 'register', reg: 0 })).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
  });
});
