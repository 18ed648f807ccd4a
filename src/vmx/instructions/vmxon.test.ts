import { describe, expect, it } from 'vitest';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { MSR_EFER } from '../../x86/msr.ts';
import { AR } from '../../x86/segments.ts';
import { getCpuModel } from '../../machine/cpu-model.ts';
import { decodeCapabilities } from '../capabilities.ts';
import { lastDiagnosis } from '../diagnosis.ts';
import { fakeVmxContext } from '../testing/fake-vmx-cpu.ts';
import { VMCS_SLOT } from '../vmcs.ts';
import { vmxoff, vmxon } from './vmxon.ts';
import { vmread, vmwrite } from './vmread-vmwrite.ts';
import { vmclear } from './vmclear.ts';
import { vmptrld } from './vmptrld.ts';
import {
  FLAGS_BEFORE, FLAGS_FAIL_INVALID, FLAGS_FAIL_VALID, FLAGS_SUCCEED, VMXON_PA, setup, setupWithVmcs,
} from '../testing/instruction-harness.ts';
import type { VmxOutcome } from './outcome.ts';

const op = (value: bigint) => ({ kind: 'value', value }) as const;
function faultVector(o: VmxOutcome): number | undefined {
  return o.kind === 'fault' ? o.fault.vector : undefined;
}

describe('VMXON', () => {
  it('succeeds with a valid region: enters VMX operation, no current VMCS, all six status flags cleared', () => {
    const ctx = setup();
    expect(vmxon(ctx, op(VMXON_PA))).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
    expect(ctx.state.inVmxOperation).toBe(true);
    expect(ctx.state.vmxonPointer).toBe(VMXON_PA);
    expect(ctx.state.currentPointer()).toBe(0xffffffffffffffffn);
  });

  describe('#UD', () => {
    it('CR4.VMXE = 0', () => {
      const ctx = setup();
      ctx.cpu.cr4 &= ~BigInt(CR4.VMXE);
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(6);
      expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('vmxon-cr4-vmxe');
      expect(ctx.state.inVmxOperation).toBe(false);
    });
    it('real mode (CR0.PE = 0)', () => {
      const ctx = setup();
      ctx.cpu.cr0 &= ~BigInt(CR0.PE);
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(6);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('real-mode');
    });
    it('virtual-8086 mode', () => {
      const ctx = setup();
      ctx.cpu.rflags |= RFLAGS.VM;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(6);
    });
    it('compatibility mode (LMA = 1, CS.L = 0)', () => {
      const ctx = setup();
      ctx.cpu.segments.CS.ar &= ~AR.L;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(6);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('compatibility-mode');
    });
    it('32-bit protected mode is allowed (LMA = 0)', () => {
      const ctx = setup();
      ctx.cpu.segments.CS.ar &= ~AR.L;
      ctx.cpu.msrs.set(MSR_EFER, 0n);
      expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMsucceed');
    });
    it('register operand', () => {
      const ctx = setup();
      expect(faultVector(vmxon(ctx, { kind: 'register', reg: 0 }))).toBe(6);
    });
  });

  describe('#GP(0)', () => {
    it('CPL > 0', () => {
      const ctx = setup();
      ctx.cpu.cplValue = 3;
      const o = vmxon(ctx, op(VMXON_PA));
      expect(faultVector(o)).toBe(13);
      expect(o.kind === 'fault' && o.fault.errorCode).toBe(0);
      expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
    });
    it('a CR0 bit required by FIXED0 is clear (NE)', () => {
      const ctx = setup();
      ctx.cpu.cr0 &= ~BigInt(CR0.NE);
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
      const d = lastDiagnosis(ctx.state)!;
      expect(d.rule).toBe('vmxon-cr0-fixed-bits');
      expect(d.field).toBe('CR0');
    });
    it('a CR4 bit outside FIXED1 is set (UMIP on Skylake-U, FIXED1 = 3767FFH)', () => {
      const ctx = setup();
      expect(ctx.cpu.caps.cr4Fixed1 & BigInt(CR4.UMIP)).toBe(0n);
      ctx.cpu.cr4 |= BigInt(CR4.UMIP);
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('vmxon-cr4-fixed-bits');
    });
    it('IA32_FEATURE_CONTROL not locked', () => {
      const ctx = setup();
      ctx.cpu.featureControlValue = 4n;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('vmxon-feature-control-unlocked');
    });
    it('locked without "enable VMX outside SMX"', () => {
      const ctx = setup();
      ctx.cpu.featureControlValue = 1n | 2n;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
    });
    it('in SMX operation, bit 1 decides instead of bit 2', () => {
      const ctx = setup();
      ctx.cpu.smx = true;
      ctx.cpu.featureControlValue = 1n | 4n;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
      ctx.cpu.featureControlValue = 1n | 2n;
      expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMsucceed');
    });
    it('#UD takes precedence over #GP (CPL 3 and CR4.VMXE = 0)', () => {
      const ctx = setup();
      ctx.cpu.cplValue = 3;
      ctx.cpu.cr4 &= ~BigInt(CR4.VMXE);
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(6);
    });
  });

  it('#PF while reading the m64 operand: no flags change, still outside VMX operation', () => {
    const ctx = setup();
    ctx.cpu.writePhysical64(0x5000n, VMXON_PA);
    ctx.cpu.faultingPages.add(5n);
    const o = vmxon(ctx, { kind: 'memory', linear: 0x5000n });
    expect(faultVector(o)).toBe(14);
    expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
    ctx.cpu.faultingPages.clear();
    expect(vmxon(ctx, { kind: 'memory', linear: 0x5000n }).kind).toBe('VMsucceed');
  });

  describe('VMfailInvalid (CF = 1)', () => {
    it.each([
      ['not 4-KByte aligned', VMXON_PA + 0x10n],
      ['beyond MAXPHYADDR (39 bits)', 1n << 39n],
    ])('address %s', (_n, pa) => {
      const ctx = setup();
      expect(vmxon(ctx, op(pa))).toEqual({ kind: 'VMfailInvalid' });
      expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
      expect(ctx.state.inVmxOperation).toBe(false);
      expect(lastDiagnosis(ctx.state)?.rule).toBe('vmxon-region-address');
    });
    it('wrong revision identifier', () => {
      const ctx = setup();
      ctx.cpu.writePhysical32(VMXON_PA, ctx.cpu.caps.basic.revisionId + 1);
      expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMfailInvalid');
      expect(lastDiagnosis(ctx.state)?.rule).toBe('vmxon-revision-id');
    });
    it('bit 31 of the first dword set', () => {
      const ctx = setup();
      ctx.cpu.writePhysical32(VMXON_PA, (ctx.cpu.caps.basic.revisionId | 2 ** 31) >>> 0);
      expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMfailInvalid');
    });
  });

  describe('VMXON in VMX root operation', () => {
    it('without a current VMCS: VMfailInvalid', () => {
      const ctx = setup();
      vmxon(ctx, op(VMXON_PA));
      ctx.cpu.rflags = FLAGS_BEFORE;
      expect(vmxon(ctx, op(VMXON_PA)).kind).toBe('VMfailInvalid');
      expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_INVALID);
    });
    it('with a current VMCS: VMfailValid(15), error number in VM_INSTRUCTION_ERROR', () => {
      const ctx = setupWithVmcs();
      expect(vmxon(ctx, op(VMXON_PA))).toEqual({ kind: 'VMfailValid', error: 15 });
      expect(ctx.cpu.rflags).toBe(FLAGS_FAIL_VALID);
      expect(ctx.state.current!.readLow(VMCS_SLOT.VM_INSTRUCTION_ERROR!)).toBe(15);
    });
    it('at CPL 3: #GP', () => {
      const ctx = setupWithVmcs();
      ctx.cpu.cplValue = 3;
      expect(faultVector(vmxon(ctx, op(VMXON_PA)))).toBe(13);
    });
    it('in VMX non-root operation: VM exit with reason 27', () => {
      const ctx = setupWithVmcs();
      ctx.state.nonRoot = true;
      expect(vmxon(ctx, op(VMXON_PA))).toEqual({ kind: 'vm-exit', reason: 27 });
    });
  });
});

describe('VMXOFF', () => {
  it('outside VMX operation: #UD', () => {
    const ctx = setup();
    expect(faultVector(vmxoff(ctx))).toBe(6);
  });
  it('CPL > 0: #GP', () => {
    const ctx = setupWithVmcs();
    ctx.cpu.cplValue = 1;
    expect(faultVector(vmxoff(ctx))).toBe(13);
  });
  it('succeeds: leaves VMX operation, forgets the current VMCS; VMREAD afterwards is #UD', () => {
    const ctx = setupWithVmcs();
    expect(vmxoff(ctx)).toEqual({ kind: 'VMsucceed' });
    expect(ctx.cpu.rflags).toBe(FLAGS_SUCCEED);
    expect(ctx.state.inVmxOperation).toBe(false);
    expect(ctx.state.current).toBeNull();
    expect(faultVector(vmread(ctx, op(0x4400n), { kind: 'result' }))).toBe(6);
  });
  it('in VMX non-root operation: VM exit with reason 26', () => {
    const ctx = setupWithVmcs();
    ctx.state.nonRoot = true;
    expect(vmxoff(ctx)).toEqual({ kind: 'vm-exit', reason: 26 });
  });
  it('does not write back an active VMCS (VMCLEAR first, or the data is lost)', () => {
    const ctx = setupWithVmcs();
    vmwrite(ctx, op(0x681en), op(0x1234n)); // GUEST_RIP
    vmxoff(ctx);
    vmxon(ctx, op(VMXON_PA));
    vmptrld(ctx, op(0x20000n));
    expect(vmread(ctx, op(0x681en), { kind: 'result' })).toEqual({ kind: 'VMsucceed', value: 0n });
    // With VMCLEAR before VMXOFF, it survives.
    vmwrite(ctx, op(0x681en), op(0x5678n));
    vmclear(ctx, op(0x20000n));
    vmxoff(ctx);
    vmxon(ctx, op(VMXON_PA));
    vmptrld(ctx, op(0x20000n));
    expect(vmread(ctx, op(0x681en), { kind: 'result' })).toEqual({ kind: 'VMsucceed', value: 0x5678n });
  });
});

describe('IA32_VMX_BASIC[48]: VMX structures limited to 32-bit physical addresses', () => {
  it('a VMXON region above 4 GBytes: VMfailInvalid with BASIC[48] = 1, VMsucceed without', () => {
    const msrs = new Map(getCpuModel('skylake-i5-6300u')!.msrs);
    for (const limited of [true, false]) {
      if (limited) msrs.set(0x480, msrs.get(0x480)! | (1n << 48n));
      else msrs.set(0x480, msrs.get(0x480)! & ~(1n << 48n));
      const caps = decodeCapabilities(msrs);
      expect(caps.basic.physAddr32).toBe(limited);
      const ctx = fakeVmxContext(caps);
      ctx.cpu.writePhysical32(0x1_0000_0000n, caps.basic.revisionId);
      expect(vmxon(ctx, op(0x1_0000_0000n)).kind).toBe(limited ? 'VMfailInvalid' : 'VMsucceed');
    }
  });
});
