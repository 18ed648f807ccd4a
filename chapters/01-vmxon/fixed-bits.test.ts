import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { X86_CR4_VMXE, adjustForVmx, enterVmxCrState } from '#impl/01-vmxon/fixed-bits';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';

// SDM Vol. 3D, "VMX-Fixed Bits in CR0": if bit X is 1 in FIXED0 it is fixed to 1; if bit X is 0 in FIXED1
// it is fixed to 0. (FIXED0 ⊆ FIXED1 on every real CPU, so the two rules never conflict.)
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe('adjustForVmx', () => {
  test('forces FIXED0 bits to 1 and bits clear in FIXED1 to 0, leaving the others alone', () => {
    fc.assert(
      fc.property(u64, u64, u64, (value, a, b) => {
        const fixed0 = a & b; // a consistent pair: FIXED0 ⊆ FIXED1
        const fixed1 = b;
        const r = adjustForVmx(value, fixed0, fixed1);
        expect(r & fixed0).toBe(fixed0);
        expect(r & ~fixed1 & ((1n << 64n) - 1n)).toBe(0n);
        const free = fixed1 & ~fixed0;
        expect(r & free).toBe(value & free);
      }),
    );
  });
  test('a real Skylake CR0: PE, NE and PG are forced on', () => {
    expect(adjustForVmx(0n, 0x80000021n, 0xffffffffn)).toBe(0x80000021n);
  });
});

describe('enterVmxCrState', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s, CR0 and CR4 satisfy the fixed bits and CR4.VMXE = 1', (name) => {
    const { kernel } = bootHost({ model: name });
    const cpu = kernel.cpu();
    const cr0Before = cpu.readCr0();
    enterVmxCrState(cpu);
    const [f0, f1, g0, g1] = [0x486, 0x487, 0x488, 0x489].map((m) => cpu.rdmsr(m));
    const cr0 = cpu.readCr0();
    const cr4 = cpu.readCr4();
    expect(cr4 & X86_CR4_VMXE).toBe(X86_CR4_VMXE);
    expect(cr0 & f0!).toBe(f0);
    expect(cr0 & ~f1!).toBe(0n);
    expect(cr4 & g0!).toBe(g0);
    expect(cr4 & ~g1! & 0xffffffffn).toBe(0n);
    // Linux already runs with PE, NE, PG: a correct adjustment changes nothing in CR0.
    expect(cr0).toBe(cr0Before);
  });
});
