import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getCpuModel } from '../../machine/cpu-model.ts';
import { lastDiagnosis } from '../diagnosis.ts';
import type { EntryContext, VmEntryOutcome } from '../entry/index.ts';
import { buildValidVmcs, vmcsChoices } from '../testing/vmcs-fixture.ts';
import { VMCS_SLOT } from '../vmcs.ts';
import { vmclear } from './vmclear.ts';
import { vmlaunch, vmresume } from './vmlaunch.ts';
import { vmptrld } from './vmptrld.ts';
import { vmxoff, vmxon } from './vmxon.ts';
import { FLAGS_BEFORE, FLAGS_FAIL_INVALID, FLAGS_FAIL_VALID, VMCS2_PA, VMCS_PA, VMXON_PA, setup, setupWithVmcs } from '../testing/instruction-harness.ts';

const v = (value: bigint) => ({ kind: 'value', value }) as const;
const ERR = VMCS_SLOT.VM_INSTRUCTION_ERROR!;
const entered = (): VmEntryOutcome => ({ kind: 'entered' });
const notCalled = (): VmEntryOutcome => { throw new Error('vmEntry must not be reached'); };

describe('VMLAUNCH/VMRESUME before the VM-entry checks', () => {
  it('#UD outside VMX operation, #GP at CPL 3, VM exit 20/24 in non-root operation', () => {
    expect(vmlaunch(setup(), notCalled)).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    const ctx = setupWithVmcs();
    ctx.cpu.cplValue = 3;
    expect(vmresume(ctx, notCalled)).toMatchObject({ kind: 'fault', fault: { vector: 13 } });
    ctx.cpu.cplValue = 0;
    ctx.state.nonRoot = true;
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'vm-exit', reason: 20 });
    expect(vmresume(ctx, notCalled)).toEqual({ kind: 'vm-exit', reason: 24 });
  });
  it('no current VMCS: VMfailInvalid (CF = 1), and no error number anywhere', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    ctx.cpu.rflags = FLAGS_BEFORE;
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailInvalid' });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
    expect(lastDiagnosis(ctx.state)?.rule).toBe('entry-no-current-vmcs');
  });
  it('a shadow VMCS: VMfailInvalid', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.writePhysical32(VMCS2_PA, (ctx.cpu.caps.basic.revisionId | 2 ** 31) >>> 0);
    vmclear(ctx, v(VMCS2_PA));
    vmptrld(ctx, v(VMCS2_PA));
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailInvalid' });
  });
  it('MOV-SS blocking: VMfailValid(26), before the launch-state checks', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.movSs = true;
    expect(vmresume(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 26 });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_VALID);
    expect(ctx.state.current!.readLow(ERR)).toBe(26);
  });
  it('VMRESUME of a clear VMCS: error 5; VMLAUNCH of a launched one: error 4', () => {
    const ctx = setupWithVmcs();
    expect(vmresume(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 5 });
    expect(vmlaunch(ctx, entered)).toEqual({ kind: 'vm-entered', pendingMtf: false });
    expect(ctx.state.nonRoot).toBe(true);
    expect(ctx.state.current!.launchState).toBe('launched');
    ctx.state.nonRoot = false; // (as after a VM exit)
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 4 });
    expect(vmresume(ctx, entered)).toEqual({ kind: 'vm-entered', pendingMtf: false });
  });
  it('VMCLEAR makes a launched VMCS launchable again', () => {
    const ctx = setupWithVmcs();
    vmlaunch(ctx, entered);
    ctx.state.nonRoot = false;
    vmclear(ctx, v(VMCS_PA));
    vmptrld(ctx, v(VMCS_PA));
    expect(vmlaunch(ctx, entered)).toEqual({ kind: 'vm-entered', pendingMtf: false });
  });
  it('VMXOFF/VMXON between VMLAUNCH and VMRESUME: error 6 (and VMLAUNCH says 4)', () => {
    const ctx = setupWithVmcs();
    vmlaunch(ctx, entered);
    ctx.state.nonRoot = false;
    vmxoff(ctx);
    vmxon(ctx, v(VMXON_PA));
    vmptrld(ctx, v(VMCS_PA));
    expect(vmresume(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 6 });
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 4 });
  });
  it('a region VMPTRLDed without VMCLEAR: VMLAUNCH fails with error 4, explained', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    vmptrld(ctx, v(VMCS_PA));
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 4 });
    expect(lastDiagnosis(ctx.state)?.message).toContain('without a VMCLEAR');
  });
  it('passes the current VMCS to vmEntry and reports its VMfailValid(7) with the diagnosis', () => {
    const ctx = setupWithVmcs();
    let seen: EntryContext | undefined;
    const fail7 = (c: EntryContext): VmEntryOutcome => {
      seen = c;
      return { kind: 'VMfailValid', error: 7, diagnosis: { rule: 'pin-allowed-0', sdm: 'SDM Vol. 3C, "VM-Execution Control Fields"', field: 'PIN_BASED_VM_EXEC_CONTROL', value: 0n, expected: 'bits 16H set', message: 'm', explain: 'e' } };
    };
    expect(vmlaunch(ctx, fail7)).toEqual({ kind: 'VMfailValid', error: 7 });
    expect(seen?.vmcsPointer).toBe(VMCS_PA);
    expect(seen?.instruction).toBe('VMLAUNCH');
    expect(ctx.state.current!.readLow(ERR)).toBe(7);
    expect(ctx.state.current!.launchState).toBe('clear');
    expect(lastDiagnosis(ctx.state)).toMatchObject({ rule: 'pin-allowed-0', outcome: 'VMfailValid(7)', field: 'PIN_BASED_VM_EXEC_CONTROL' });
  });
  it('with the real vmEntry: an all-zero VMCS fails with VMfailValid(7) (controls lack their allowed-0 bits)', () => {
    const ctx = setupWithVmcs();
    expect(vmlaunch(ctx)).toEqual({ kind: 'VMfailValid', error: 7 });
    expect(lastDiagnosis(ctx.state)?.sdm).toContain('SDM');
  });
  it('with the real vmEntry: a VMCS built to pass every check is entered', () => {
    const model = getCpuModel('skylake-i5-6300u')!;
    const [choices] = fc.sample(vmcsChoices(), { seed: 7, numRuns: 1 });
    const fixture = buildValidVmcs(model, { ...choices!, cpl: 0 });
    const ctx = setupWithVmcs();
    for (const [pa, byte] of fixture.cpu.memory) if (pa < VMXON_PA || pa >= VMCS2_PA + 0x1000n) ctx.cpu.memory.set(pa, byte);
    for (const [i, val] of fixture.cpu.msrs) ctx.cpu.msrs.set(i, val);
    ctx.state.current!.data.set(fixture.active.data);
    const o = vmlaunch(ctx);
    expect(o, JSON.stringify(lastDiagnosis(ctx.state), (_k, x) => (typeof x === 'bigint' ? x.toString(16) : x))).toEqual({ kind: 'vm-entered', pendingMtf: false });
    expect(ctx.state.nonRoot).toBe(true);
  });
});
