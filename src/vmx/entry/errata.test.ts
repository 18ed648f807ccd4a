// The chapter-4 "common mistakes" of shared/ERRATA.md, replayed against VM entry: each gives the architectural
// signal real hardware gives, and the diagnosis names the rule.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getCpuModel } from '../../machine/cpu-model.ts';
import { vmEntry } from './index.ts';
import { buildValidVmcs, validEptp, vmcsChoices, type Fixture } from '../testing/vmcs-fixture.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';

const fixture = (model = 'skylake-i5-6300u', seed = 1): Fixture =>
  buildValidVmcs(getCpuModel(model)!, { ...fc.sample(vmcsChoices(), { seed, numRuns: 1 })[0]!, loadEfer: true });
const outcome = (f: Fixture): string => {
  const o = vmEntry(f.ctx);
  if (o.kind === 'entered') return 'entered';
  return o.kind === 'VMfailValid' ? `VMfailValid(${o.error}) ${o.diagnosis.rule}` : `exit ${o.reason}/${o.qualification} ${o.diagnosis.rule}`;
};

describe('common mistakes (ERRATA, chapter 4)', () => {
  it('a host selector masked with & 0xF8 is wrong for selectors ≥ 100H; masked with ~7 it is right', () => {
    const f = fixture();
    const sel = 0x1234 | 3; // a GDT selector with RPL 3, index ≥ 32
    f.set('HOST_TR_SELECTOR', sel & 0xf8);
    expect(f.get('HOST_TR_SELECTOR')).toBe(0x30n); // silently another descriptor: not an entry failure, a wrong TSS
    f.set('HOST_TR_SELECTOR', sel & ~7);
    expect(outcome(f)).toBe('entered');
    f.set('HOST_TR_SELECTOR', sel); // RPL left in place
    expect(outcome(f)).toBe('VMfailValid(8) host-tr-selector-rpl-ti');
  });

  it('a missing host TR gives error 8', () => {
    const f = fixture();
    f.set('HOST_TR_SELECTOR', 0);
    expect(outcome(f)).toBe('VMfailValid(8) host-tr-selector-not-null');
  });

  it('"load IA32_EFER" with a host EFER that does not match the host address-space size gives error 8', () => {
    const f = fixture();
    f.set('HOST_IA32_EFER', EFER.SCE | EFER.NXE); // LMA/LME forgotten
    expect(outcome(f)).toBe('VMfailValid(8) host-efer-lma-lme');
  });

  it('EPTP accessed/dirty enable without IA32_VMX_EPT_VPID_CAP[21] gives error 7', () => {
    const f = fixture('ivybridge-i5-3320m');
    f.or('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_ENABLE_EPT);
    f.set('EPT_POINTER', validEptp(f.caps, f.page(3)) | (1n << 6n));
    expect(outcome(f)).toBe('VMfailValid(7) eptp-accessed-dirty');
  });

  it('guest CR0/CR4 not matching the fixed bits gives exit 33', () => {
    const f = fixture();
    f.clear('GUEST_CR4', CR4.VMXE);
    expect(outcome(f)).toBe('exit 33/0 guest-cr4-fixed-bits');
    const g = fixture();
    g.clear('GUEST_CR0', CR0.NE);
    expect(outcome(g)).toBe('exit 33/0 guest-cr0-fixed-bits');
  });

  it('injecting an external interrupt while RFLAGS.IF = 0, or under STI blocking, gives exit 33', () => {
    const f = fixture();
    f.clear('GUEST_RFLAGS', RFLAGS.IF);
    f.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | 0x20) >>> 0);
    expect(outcome(f)).toBe('exit 33/0 guest-rflags-if-for-external-interrupt');
    const g = fixture();
    g.or('GUEST_RFLAGS', RFLAGS.IF);
    g.set('GUEST_INTERRUPTIBILITY_INFO', 1);
    g.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | 0x20) >>> 0);
    expect(outcome(g)).toBe('exit 33/0 guest-interruptibility-external-interrupt');
  });

  it('a segment marked usable with reserved access-rights bits, or the unusable bit on TR, gives exit 33', () => {
    const f = fixture();
    f.or('GUEST_CS_AR_BYTES', 1 << 8);
    expect(outcome(f)).toBe('exit 33/0 guest-cs-ar-reserved-11-8');
    const g = fixture();
    g.or('GUEST_TR_AR_BYTES', 1 << 16);
    expect(outcome(g)).toBe('exit 33/0 guest-tr-ar-usable');
  });

  it('a VMCS link pointer left at 0 instead of ~0 gives exit 33 with qualification 4', () => {
    const f = fixture();
    f.set('VMCS_LINK_POINTER', 0);
    expect(outcome(f)).toBe('exit 33/4 guest-vmcs-link-pointer-revision');
  });

  it('a VMCS link pointer set to the current VMCS (a VMCS as its own shadow) gives exit 33 with qualification 4', () => {
    const f = fixture();
    f.set('VMCS_LINK_POINTER', f.ctx.vmcsPointer); // right revision id, not a shadow VMCS: only this rule breaks
    expect(outcome(f)).toBe('exit 33/4 guest-vmcs-link-pointer-current');
  });
});
