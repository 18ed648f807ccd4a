// The order of checks in each instruction's "Operation" pseudocode decides which outcome wins when several
// conditions hold at once. One test per pair the SDM orders.
import { describe, expect, it } from 'vitest';
import { CR4 } from '../../x86/control-registers.ts';
import { VMCS } from '../fields.ts';
import type { VmEntryOutcome } from '../entry/index.ts';
import { invept } from './invept-invvpid.ts';
import { vmclear } from './vmclear.ts';
import { vmlaunch, vmresume } from './vmlaunch.ts';
import { vmptrld } from './vmptrld.ts';
import { vmread, vmwrite } from './vmread-vmwrite.ts';
import { vmxon } from './vmxon.ts';
import { VMCS_PA, VMXON_PA, setup, setupWithVmcs } from '../testing/instruction-harness.ts';

const v = (value: bigint | number) => ({ kind: 'value', value }) as const;
const notCalled = (): VmEntryOutcome => { throw new Error('vmEntry must not be reached'); };

describe('check precedence', () => {
  it('VMXON: #UD (CR4.VMXE = 0) before #GP (feature control unlocked)', () => {
    const ctx = setup();
    ctx.cpu.cr4 &= ~BigInt(CR4.VMXE);
    ctx.cpu.featureControlValue = 0n;
    expect(vmxon(ctx, v(VMXON_PA))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
  });
  it('VMXON: #GP (CPL) before the operand is read (#PF) and before VMfailInvalid (bad address)', () => {
    const ctx = setup();
    ctx.cpu.cplValue = 3;
    ctx.cpu.faultingPages.add(5n);
    expect(vmxon(ctx, { kind: 'memory', linear: 0x5000n })).toMatchObject({ kind: 'fault', fault: { vector: 13 } });
  });
  it('VMXON: CR0/CR4 fixed bits (#GP) before IA32_FEATURE_CONTROL (#GP) — both #GP, the diagnosis names the first', () => {
    const ctx = setup();
    ctx.cpu.cr4 |= BigInt(CR4.UMIP);
    ctx.cpu.featureControlValue = 0n;
    vmxon(ctx, v(VMXON_PA));
    expect(ctx.state.lastDiagnosis?.rule).toBe('vmxon-cr4-fixed-bits');
  });
  it('VMPTRLD: VMXON pointer (10) before revision identifier (11)', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.writePhysical32(VMXON_PA, 0xbad);
    expect(vmptrld(ctx, v(VMXON_PA))).toEqual({ kind: 'VMfailValid', error: 10 });
  });
  it('VMPTRLD/VMCLEAR: invalid address (9/2) before VMXON pointer (10/3)', () => {
    const ctx = setupWithVmcs();
    ctx.state.vmxonPointer = VMCS_PA + 1n; // (impossible state, to make both conditions hold)
    expect(vmptrld(ctx, v(VMCS_PA + 1n))).toEqual({ kind: 'VMfailValid', error: 9 });
    expect(vmclear(ctx, v(VMCS_PA + 1n))).toEqual({ kind: 'VMfailValid', error: 2 });
  });
  it('VMLAUNCH: no current VMCS (VMfailInvalid) before MOV-SS blocking (26)', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    ctx.cpu.movSs = true;
    expect(vmlaunch(ctx, notCalled)).toEqual({ kind: 'VMfailInvalid' });
  });
  it('VMLAUNCH/VMRESUME: MOV-SS blocking (26) before launch state (4/5)', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.movSs = true;
    expect(vmresume(ctx, notCalled)).toEqual({ kind: 'VMfailValid', error: 26 });
  });
  it('VMLAUNCH: #GP (CPL 3) before VMfailInvalid (no current VMCS)', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    ctx.cpu.cplValue = 3;
    expect(vmlaunch(ctx, notCalled)).toMatchObject({ kind: 'fault', fault: { vector: 13 } });
  });
  it('VMREAD/VMWRITE: VMfailInvalid (no current VMCS) before unsupported component (12)', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    expect(vmread(ctx, v(0x7777), { kind: 'result' })).toEqual({ kind: 'VMfailInvalid' });
    expect(vmwrite(ctx, v(0x7777), v(0))).toEqual({ kind: 'VMfailInvalid' });
  });
  it('VMWRITE: unsupported (12) before read-only (13)', () => {
    const ctx = setupWithVmcs('nehalem-lynnfield-i7-870');
    // GUEST_PHYSICAL_ADDRESS is read-only *and* exists only with EPT — Nehalem has EPT, so use a read-only
    // encoding that names no field on any CPU instead: 6402H (I/O RCX) exists; 640CH does not.
    expect(vmwrite(ctx, v(0x640c), v(0))).toEqual({ kind: 'VMfailValid', error: 12 });
    expect(vmwrite(ctx, v(VMCS.IO_RCX), v(0))).toEqual({ kind: 'VMfailValid', error: 13 });
  });
  it('INVEPT: unsupported type (28) is decided before the descriptor is read', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.faultingPages.add(8n);
    expect(invept(ctx, v(9), { kind: 'memory', linear: 0x8000n })).toEqual({ kind: 'VMfailValid', error: 28 });
  });
});
