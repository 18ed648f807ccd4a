import { describe, expect, it } from 'vitest';
import { formatDiagnosis, lastDiagnosis } from './diagnosis.ts';
import { vmwrite } from './instructions/vmread-vmwrite.ts';
import { setupWithVmcs } from './testing/instruction-harness.ts';
import { VMCS } from './fields.ts';

describe('explanation channel', () => {
  it('formats rule, SDM section, field, value and expectation', () => {
    const text = formatDiagnosis({
      rule: 'vmwrite-read-only-field', sdm: 'SDM Vol. 3C, "VMWRITE—Write Field to Virtual-Machine Control Structure"',
      instruction: 'VMWRITE', outcome: 'VMfailValid(13)', field: 'VM_EXIT_REASON', value: 0x4402n, expected: 'a writable field', message: 'read-only', seq: 1,
    });
    expect(text).toBe([
      'VMWRITE: VMfailValid(13) — read-only',
      '  rule: vmwrite-read-only-field',
      '  see: SDM Vol. 3C, "VMWRITE—Write Field to Virtual-Machine Control Structure"',
      '  VM_EXIT_REASON = 0x4402 (expected a writable field)',
    ].join('\n'));
  });
  it('reading the diagnosis changes nothing architectural: same RFLAGS and error field with or without it', () => {
    const run = (read: boolean) => {
      const ctx = setupWithVmcs('nehalem-lynnfield-i7-870');
      const o = vmwrite(ctx, { kind: 'value', value: VMCS.VM_EXIT_REASON }, { kind: 'value', value: 1 });
      if (read) expect(lastDiagnosis(ctx.state)?.rule).toBe('vmwrite-read-only-field');
      return [o, ctx.cpu.rflags, ctx.state.current!.readByName('VM_INSTRUCTION_ERROR')];
    };
    expect(run(true)).toEqual(run(false));
  });
  it('is null before any failure and survives later successes', () => {
    const ctx = setupWithVmcs();
    expect(lastDiagnosis(ctx.state)).toBeNull();
    vmwrite(ctx, { kind: 'value', value: 0x7777 }, { kind: 'value', value: 0 });
    vmwrite(ctx, { kind: 'value', value: VMCS.GUEST_RIP }, { kind: 'value', value: 0 });
    expect(lastDiagnosis(ctx.state)?.outcome).toBe('VMfailValid(12)');
  });
});
