import { describe, expect, it } from 'vitest';
import { writeFeatureControl } from './feature-control.ts';

const noSmx = { vmx: true, smx: false };
describe('WRMSR IA32_FEATURE_CONTROL', () => {
  it('accepts lock + enable-outside-SMX while unlocked', () => {
    expect(writeFeatureControl(0n, 5n, noSmx)).toEqual({ ok: true, value: 5n });
  });
  it('#GP once locked, whatever the value', () => {
    for (const v of [0n, 5n, 7n]) expect(writeFeatureControl(1n, v, noSmx)).toMatchObject({ ok: false, rule: 'feature-control-locked' });
  });
  it('#GP for bit 1 (VMX inside SMX) without SMX, allowed with it', () => {
    expect(writeFeatureControl(0n, 3n, noSmx)).toMatchObject({ ok: false, rule: 'feature-control-reserved' });
    expect(writeFeatureControl(0n, 3n, { vmx: true, smx: true })).toEqual({ ok: true, value: 3n });
  });
  it('#GP for reserved bits 3–7 and 63:21', () => {
    expect(writeFeatureControl(0n, 1n << 3n, noSmx).ok).toBe(false);
    expect(writeFeatureControl(0n, 1n << 40n, noSmx).ok).toBe(false);
  });
  it('bit 2 is not writable on a processor without VMX', () => {
    expect(writeFeatureControl(0n, 4n, { vmx: false, smx: false }).ok).toBe(false);
  });
});
