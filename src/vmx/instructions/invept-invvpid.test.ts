import { describe, expect, it } from 'vitest';
import { lastDiagnosis } from '../diagnosis.ts';
import { invept, invvpid } from './invept-invvpid.ts';
import { capsOf, FLAGS_FAIL_INVALID, FLAGS_FAIL_VALID, FLAGS_SUCCEED, setup, setupWithVmcs, VMXON_PA } from '../testing/instruction-harness.ts';
import { vmxon } from './vmxon.ts';

const v = (value: bigint | number) => ({ kind: 'value', value: BigInt(value) }) as const;
const desc = (low: bigint, high = 0n) => ({ kind: 'descriptor', low, high }) as const;
/** A valid EPTP: WB (6), 4-level walk (3 << 3), at 5000H. */
const EPTP = 0x5000n | 6n | (3n << 3n);

describe('INVEPT', () => {
  it('#UD on a CPU without EPT (Penryn), even in VMX operation', () => {
    const ctx = setupWithVmcs('penryn-core2-duo-t9600');
    expect(invept(ctx, v(2), desc(0n))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    expect(lastDiagnosis(ctx.state)?.rule).toBe('invept-unsupported');
  });
  it('#UD outside VMX operation; #GP at CPL 3; VM exit 50 in non-root operation', () => {
    expect(invept(setup(), v(2), desc(0n))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
    const ctx = setupWithVmcs();
    ctx.cpu.cplValue = 3;
    expect(invept(ctx, v(2), desc(0n))).toMatchObject({ kind: 'fault', fault: { vector: 13 } });
    ctx.cpu.cplValue = 0;
    ctx.state.nonRoot = true;
    expect(invept(ctx, v(2), desc(0n))).toEqual({ kind: 'vm-exit', reason: 50 });
  });
  it('all-context succeeds and invalidates everything', () => {
    const ctx = setupWithVmcs();
    expect(invept(ctx, v(2), desc(0n))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
    expect(ctx.cpu.eptInvalidations).toEqual([null]);
  });
  it('single-context with a valid EPTP invalidates that EPTP', () => {
    const ctx = setupWithVmcs();
    expect(invept(ctx, v(1), desc(EPTP))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.eptInvalidations).toEqual([EPTP]);
  });
  it.each([
    ['type 0', 0n], ['type 3', 3n], ['a huge type', 1n << 40n],
  ])('unsupported %s: error 28', (_n, type) => {
    const ctx = setupWithVmcs();
    expect(invept(ctx, v(type), desc(EPTP))).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_VALID);
  });
  it('without a current VMCS the same failure is VMfailInvalid', () => {
    const ctx = setup();
    vmxon(ctx, v(VMXON_PA));
    expect(invept(ctx, v(0), desc(0n))).toEqual({ kind: 'VMfailInvalid' });
    expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
  });
  it.each([
    ['memory type WT (4)', 0x5000n | 4n | (3n << 3n)],
    ['walk length 5 on a 4-level CPU', 0x5000n | 6n | (4n << 3n)],
    ['reserved bit 7', EPTP | 0x80n],
    ['beyond MAXPHYADDR', EPTP | (1n << 40n)],
  ])('single-context with an invalid EPTP (%s): error 28', (_n, eptp) => {
    const ctx = setupWithVmcs();
    expect(invept(ctx, v(1), desc(eptp))).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(ctx.cpu.eptInvalidations).toEqual([]);
  });
  it('EPTP accessed/dirty enable: rejected on Ivy Bridge (EPT_VPID_CAP[21] = 0), accepted on Skylake', () => {
    const ivy = setupWithVmcs('ivybridge-i5-3320m');
    expect(invept(ivy, v(1), desc(EPTP | 0x40n))).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(lastDiagnosis(ivy.state)?.message).toContain('accessed and dirty');
    const sky = setupWithVmcs();
    expect(invept(sky, v(1), desc(EPTP | 0x40n))).toEqual({ kind: 'VMsucceed' });
  });
  it('#PF reading the descriptor comes after the type check', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.faultingPages.add(8n);
    expect(invept(ctx, v(7), { kind: 'memory', linear: 0x8000n })).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(invept(ctx, v(2), { kind: 'memory', linear: 0x8000n })).toMatchObject({ kind: 'fault', fault: { vector: 14 } });
  });
  it('register descriptor operand: #UD', () => {
    expect(invept(setupWithVmcs(), v(2), { kind: 'register', reg: 0 })).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
  });
});

describe('INVVPID', () => {
  it('#UD on a CPU without VPIDs (Penryn)', () => {
    expect(invvpid(setupWithVmcs('penryn-core2-duo-t9600'), v(2), desc(0n))).toMatchObject({ kind: 'fault', fault: { vector: 6 } });
  });
  it('each supported type succeeds with the right invalidation', () => {
    const ctx = setupWithVmcs();
    expect(invvpid(ctx, v(0), desc(5n, 0x7fff_0000_1000n))).toEqual({ kind: 'VMsucceed' });
    expect(invvpid(ctx, v(1), desc(5n))).toEqual({ kind: 'VMsucceed' });
    expect(invvpid(ctx, v(2), desc(0n))).toEqual({ kind: 'VMsucceed' });
    expect(invvpid(ctx, v(3), desc(5n))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.vpidInvalidations).toEqual([
      { vpid: 5, linear: 0x7fff_0000_1000n, keepGlobal: false },
      { vpid: 5, linear: null, keepGlobal: false },
      { vpid: null, linear: null, keepGlobal: false },
      { vpid: 5, linear: null, keepGlobal: true },
    ]);
  });
  it.each([
    ['type 4', 4n, desc(5n)],
    ['descriptor bits 63:16 set', 1n, desc(0x1_0005n)],
    ['VPID 0 for single-context', 1n, desc(0n)],
    ['VPID 0 for individual-address', 0n, desc(0n, 0x1000n)],
    ['non-canonical address', 0n, desc(5n, 0x8000_0000_0000n)],
  ])('%s: error 28', (_n, type, d) => {
    const ctx = setupWithVmcs();
    expect(invvpid(ctx, v(type), d)).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(ctx.cpu.vpidInvalidations).toEqual([]);
  });
  it('a type whose IA32_VMX_EPT_VPID_CAP bit (40 + type) is 0: error 28; the other types still succeed', () => {
    const sky = capsOf('skylake-i5-6300u');
    const descriptors = [desc(5n, 0x1000n), desc(5n), desc(0n), desc(5n)];
    for (let type = 0; type < 4; type++) {
      const ctx = setupWithVmcs({ ...sky, eptVpidCap: sky.eptVpidCap & ~(1n << BigInt(40 + type)) });
      for (let other = 0; other < 4; other++) {
        expect(invvpid(ctx, v(other), descriptors[other]!)).toEqual(other === type ? { kind: 'VMfailValid', error: 28 } : { kind: 'VMsucceed' });
      }
      expect(ctx.cpu.vpidInvalidations.length).toBe(3);
    }
  });
  it('VPID 0 is refused by types 0, 1 and 3 and ignored by all-context (type 2)', () => {
    const ctx = setupWithVmcs();
    expect(invvpid(ctx, v(3), desc(0n))).toEqual({ kind: 'VMfailValid', error: 28 });
    expect(lastDiagnosis(ctx.state)?.rule).toBe('invvpid-vpid-zero');
    expect(invvpid(ctx, v(2), desc(0n, 0x8000_0000_0000n))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.vpidInvalidations).toEqual([{ vpid: null, linear: null, keepGlobal: false }]);
  });
  it('VM exit 53 in non-root operation', () => {
    const ctx = setupWithVmcs();
    ctx.state.nonRoot = true;
    expect(invvpid(ctx, v(2), desc(0n))).toEqual({ kind: 'vm-exit', reason: 53 });
  });
});
