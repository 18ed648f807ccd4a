import { describe, expect, it } from 'vitest';
import { Machine } from '../machine.ts';
import { CPU_MODELS, getCpuModel } from '../cpu-model.ts';
import { CpuFault } from '../fault.ts';
import * as MSR from '../../x86/msr.ts';
import { FIXED_RANGE_MTRRS } from '../../x86/mtrr.ts';
import { MtrrRegisters } from './mtrr-registers.ts';
import { MTRRCAP_BY_MODEL } from './mtrrcap.ts';
import { readMtrrState } from './read-mtrrs.ts';

const lpOf = (model = 'skylake-i5-6300u') => new Machine({ model: getCpuModel(model)! }).cpus[0]!;
const gpOn = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof CpuFault && e.vector === 13) return e.explanation;
    throw e;
  }
  throw new Error('no #GP');
};

describe('MTRR MSRs', () => {
  it('every CPU model has an IA32_MTRRCAP, and its LPs have exactly the MSRs it announces', () => {
    for (const model of CPU_MODELS) {
      const cap = MTRRCAP_BY_MODEL[model.name];
      expect(cap, model.name).toBeDefined();
      const lp = new Machine({ model }).cpus[0]!;
      expect(lp.rdmsr(MSR.MSR_IA32_MTRRCAP)).toBe(cap);
      const vcnt = Number(cap! & 0xffn);
      expect(lp.hasMsr(MSR.MTRRphysMask_MSR(vcnt - 1))).toBe(true);
      expect(lp.hasMsr(MSR.MTRRphysBase_MSR(vcnt))).toBe(false);
      expect(lp.hasMsr(MSR.MSR_IA32_SMRR_PHYSBASE)).toBe((cap! & (1n << 11n)) !== 0n);
    }
  });

  it('a machine without a CPU model has no MTRRs (its CPUID does not report them)', () => {
    const lp = new Machine().cpus[0]!;
    expect(readMtrrState(lp)).toBeNull();
    expect(gpOn(() => lp.rdmsr(MSR.MSR_MTRRdefType))).toMatch(/does not implement/);
  });

  it('IA32_MTRRCAP is read-only', () => {
    expect(gpOn(() => lpOf().wrmsr(MSR.MSR_IA32_MTRRCAP, 0n))).toMatch(/read-only/);
  });

  it('IA32_MTRR_DEF_TYPE: reserved bits and invalid types raise #GP, valid values read back', () => {
    const lp = lpOf();
    for (const bad of [1n << 8n, 1n << 9n, 1n << 12n, 1n << 63n]) expect(gpOn(() => lp.wrmsr(MSR.MSR_MTRRdefType, bad))).toMatch(/reserved/);
    for (const type of [2n, 3n, 7n, 8n, 0xffn]) expect(gpOn(() => lp.wrmsr(MSR.MSR_MTRRdefType, 0xc00n | type))).toMatch(/not a memory type/);
    lp.wrmsr(MSR.MSR_MTRRdefType, 0x800n | 4n);
    expect(lp.rdmsr(MSR.MSR_MTRRdefType)).toBe(0x804n);
  });

  it('fixed-range MTRRs: every byte must be a valid type', () => {
    const lp = lpOf();
    for (const r of FIXED_RANGE_MTRRS) {
      expect(gpOn(() => lp.wrmsr(r.msr, 0x0206060606060606n))).toMatch(/byte 7/);
      lp.wrmsr(r.msr, 0x0001040506060606n);
      expect(lp.rdmsr(r.msr)).toBe(0x0001040506060606n);
    }
  });

  it('fixed-range MTRRs do not exist when IA32_MTRRCAP.FIX = 0', () => {
    const regs = new MtrrRegisters(8n, 39);
    expect(regs.msrIndices()).not.toContain(MSR.MSR_MTRRfix64K_00000);
    expect(regs.read(MSR.MSR_MTRRfix4K_F8000)).toBeUndefined();
    expect(regs.write(MSR.MSR_MTRRfix4K_F8000, 0n)?.reason).toMatch(/not an MTRR/);
  });

  it('WC is refused when IA32_MTRRCAP.WC = 0', () => {
    const regs = new MtrrRegisters(0x108n, 39);
    expect(regs.write(MSR.MSR_MTRRdefType, 0x801n)?.reason).toMatch(/WC/);
  });

  it('PHYSBASEn: bits 11:8 and bits at or above MAXPHYADDR are reserved; PHYSMASKn: bits 10:0 and above MAXPHYADDR', () => {
    const lp = lpOf('icelake-i5-1035g1'); // MAXPHYADDR 39
    const base = MSR.MTRRphysBase_MSR(3), mask = MSR.MTRRphysMask_MSR(3);
    for (const bit of [8n, 9n, 10n, 11n, 39n, 40n, 63n]) expect(gpOn(() => lp.wrmsr(base, 1n << bit | 6n)), `bit ${bit}`).toMatch(/reserved/);
    for (const t of [2n, 3n, 7n, 0x80n]) expect(gpOn(() => lp.wrmsr(base, 0x1000n | t))).toMatch(/not a memory type/);
    for (const bit of [0n, 5n, 10n, 39n]) expect(gpOn(() => lp.wrmsr(mask, 1n << bit | 0x800n)), `bit ${bit}`).toMatch(/reserved/);
    lp.wrmsr(base, 0x7f_ffff_f000n | 6n);
    lp.wrmsr(mask, 0x7f_ffff_f800n);
    expect(lp.rdmsr(base)).toBe(0x7f_ffff_f006n);
    expect(lp.rdmsr(mask)).toBe(0x7f_ffff_f800n);
  });

  it('variable pairs at or beyond VCNT raise #GP', () => {
    const lp = lpOf();
    expect(gpOn(() => lp.rdmsr(MSR.MTRRphysBase_MSR(10)))).toMatch(/does not implement/);
    expect(gpOn(() => lp.wrmsr(MSR.MTRRphysMask_MSR(10), 0n))).toMatch(/does not implement/);
  });

  it('SMRR: RDMSR works outside SMM, WRMSR outside SMM raises #GP; in SMM reserved bits are checked', () => {
    const lp = lpOf();
    expect(lp.rdmsr(MSR.MSR_IA32_SMRR_PHYSBASE)).toBe(0n);
    expect(gpOn(() => lp.wrmsr(MSR.MSR_IA32_SMRR_PHYSMASK, 0n))).toMatch(/outside SMM/);
    const regs = new MtrrRegisters(0xd0an, 39);
    expect(regs.write(MSR.MSR_IA32_SMRR_PHYSBASE, 0x1_0000_0000n | 6n, true)?.reason).toMatch(/reserved/);
    expect(regs.write(MSR.MSR_IA32_SMRR_PHYSBASE, 0x7f00_0000n | 6n, true)).toBeNull();
    expect(regs.write(MSR.MSR_IA32_SMRR_PHYSMASK, 0xff00_0000n | 0x800n, true)).toBeNull();
    expect(regs.state().smrr).toEqual({ base: 0x7f00_0006n, mask: 0xff00_0800n });
  });

  it('INIT leaves the MTRRs alone', () => {
    const lp = lpOf();
    lp.wrmsr(MSR.MTRRphysBase_MSR(5), 0x1000_0001n);
    lp.init();
    expect(lp.rdmsr(MSR.MTRRphysBase_MSR(5))).toBe(0x1000_0001n);
    expect(lp.rdmsr(MSR.MSR_MTRRdefType)).toBe(0xc06n);
  });
});
