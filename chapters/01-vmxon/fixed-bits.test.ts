import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { X86_CR4_VMXE, adjustForVmx, enterVmxCrState } from '#impl/01-vmxon/fixed-bits';
import { bootHost } from '../../src/kernel/boot-host.ts';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { hex, showCr0, showCr4 } from '../lib/show.ts';

// SDM Vol. 3D, "VMX-Fixed Bits in CR0": if bit X is 1 in FIXED0 it is fixed to 1; if bit X is 0 in FIXED1
// it is fixed to 0. (FIXED0 ⊆ FIXED1 on every real CPU, so the two rules never conflict.)
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const CR0_NE = 1n << 5n;

describe('adjustForVmx', () => {
  test('forces FIXED0 bits to 1 and bits clear in FIXED1 to 0, leaving the others alone', () => {
    fc.assert(
      fc.property(u64, u64, u64, (value, a, b) => {
        const fixed0 = a & b; // a consistent pair: FIXED0 ⊆ FIXED1
        const fixed1 = b;
        const r = adjustForVmx(value, fixed0, fixed1);
        const call = `adjustForVmx(${hex(value)}, FIXED0 ${hex(fixed0)}, FIXED1 ${hex(fixed1)}) = ${hex(r)}`;
        expect(hex(r & fixed0), `${call}: every bit that is 1 in FIXED0 must be 1`).toBe(hex(fixed0));
        expect(hex(r & ~fixed1 & ((1n << 64n) - 1n)), `${call}: every bit that is 0 in FIXED1 must be 0`).toBe('0x0');
        const free = fixed1 & ~fixed0;
        expect(hex(r & free), `${call}: the flexible bits (1 in FIXED1, 0 in FIXED0) must keep the value's setting`).toBe(hex(value & free));
      }),
    );
  });
  test('a real Skylake CR0: PE, NE and PG are forced on', () => {
    const r = adjustForVmx(0n, 0x80000021n, 0xffffffffn);
    expect(r, `adjustForVmx(0, FIXED0 0x80000021, FIXED1 0xffffffff) = ${showCr0(r)}; expected 0x80000021 (PE NE PG)`).toBe(0x80000021n);
  });
});

/** Read the four FIXED MSRs, call the learner's enterVmxCrState, and check CR0 and CR4 against them. */
function expectLegalAfterEnter(cpu: HostCpu, where: string): { cr0: bigint; cr4: bigint } {
  const before = { cr0: cpu.readCr0(), cr4: cpu.readCr4() };
  enterVmxCrState(cpu);
  const [f0, f1, g0, g1] = [0x486, 0x487, 0x488, 0x489].map((m) => cpu.rdmsr(m)) as [bigint, bigint, bigint, bigint];
  const cr0 = cpu.readCr0();
  const cr4 = cpu.readCr4();
  const seen = `${where}: CR0 ${showCr0(before.cr0)} → ${showCr0(cr0)}, CR4 ${showCr4(before.cr4)} → ${showCr4(cr4)}`;
  expect(hex(cr4 & X86_CR4_VMXE), `CR4.VMXE (bit 13) must be 1, or VMXON raises #UD. ${seen}`).toBe(hex(X86_CR4_VMXE));
  expect(showCr0(f0 & ~cr0), `CR0 bits that are 1 in IA32_VMX_CR0_FIXED0 (486H) = ${hex(f0)} must be 1, or VMXON raises #GP. ${seen}`).toBe(showCr0(0));
  expect(showCr0(cr0 & ~f1), `CR0 bits that are 0 in IA32_VMX_CR0_FIXED1 (487H) = ${hex(f1)} must be 0. ${seen}`).toBe(showCr0(0));
  expect(showCr4(g0 & ~cr4), `CR4 bits that are 1 in IA32_VMX_CR4_FIXED0 (488H) = ${hex(g0)} must be 1. ${seen}`).toBe(showCr4(0));
  expect(showCr4(cr4 & ~g1 & 0xffffffffn), `CR4 bits that are 0 in IA32_VMX_CR4_FIXED1 (489H) = ${hex(g1)} must be 0. ${seen}`).toBe(showCr4(0));
  return { cr0, cr4 };
}

describe('enterVmxCrState', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s, CR0 and CR4 satisfy the fixed bits and CR4.VMXE = 1', (name) => {
    const { kernel } = bootHost({ model: name });
    const cpu = kernel.cpu();
    const cr0Before = cpu.readCr0();
    const { cr0 } = expectLegalAfterEnter(cpu, name);
    // Linux already runs with PE, NE, PG: a correct adjustment changes nothing in CR0.
    expect(showCr0(cr0), `${name}: CR0 was already legal (${showCr0(cr0Before)}), so it must not change`).toBe(showCr0(cr0Before));
  });

  // The mistake box "Setting only CR4.VMXE": that works only because the host OS already set PE, NE and PG.
  // A host whose kernel left CR0.NE (bit 5, FIXED0 on every real CPU) clear shows the difference.
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s with CR0.NE = 0 (a host OS that never set it), CR0.NE is set too', (name) => {
    const { kernel } = bootHost({ model: name });
    const cpu = kernel.cpu();
    cpu.writeCr0(cpu.readCr0() & ~CR0_NE);
    const cr0Before = cpu.readCr0();
    const where = `${name}, host CR0 ${showCr0(cr0Before)} with NE clear`;
    const { cr0 } = expectLegalAfterEnter(cpu, where);
    expect(showCr0(cr0), `${where}: only NE needed to change in CR0`).toBe(showCr0(cr0Before | CR0_NE));
  });
});
