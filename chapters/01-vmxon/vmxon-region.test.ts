import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { allocVmxonRegion, freeVmxRegion, regionSize, revisionId } from '#impl/01-vmxon/vmxon-region';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';

// SDM Vol. 3D, "Basic VMX Information": revision id in bits 30:0 (bit 31 is 0), region size in bits 44:32.
describe('IA32_VMX_BASIC fields', () => {
  test('revisionId is bits 30:0 and regionSize is bits 44:32, for any value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (basic) => {
        expect(revisionId(basic)).toBe(Number(basic % (1n << 31n)));
        expect(regionSize(basic)).toBe(Number((basic / (1n << 32n)) % (1n << 13n)));
      }),
    );
  });
  test('a real Skylake: revision 4, 1024-byte regions', () => {
    expect(revisionId(0xda040000000004n)).toBe(4);
    expect(regionSize(0xda040000000004n)).toBe(1024);
  });
});

describe('allocVmxonRegion', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s: aligned, contiguous, revision id written', (name) => {
    const { kernel } = bootHost({ model: name });
    const basic = kernel.cpu().rdmsr(MSR_IA32_VMX_BASIC);
    const r = allocVmxonRegion(kernel);
    expect(r).not.toBeNull();
    expect(r!.pa % 4096n).toBe(0n);
    expect(kernel.virt_to_phys(r!.va)).toBe(r!.pa); // direct-map memory: virt_to_phys is meaningful
    expect(kernel.dmesg()).not.toMatch(/non-linear address/);
    expect(kernel.read32(r!.va)).toBe(Number(basic & 0x7fffffffn)); // bit 31 clear, nothing else set
  });

  test('bit 31 stays clear whatever garbage the allocator left (different seeds)', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const { kernel } = bootHost({ seed });
      const r = allocVmxonRegion(kernel)!;
      expect(kernel.read32(r.va) >>> 31, `seed ${seed}`).toBe(0);
    }
  });

  test('freeVmxRegion gives every page back', () => {
    const { kernel } = bootHost({});
    const before = kernel.pages.freeCount();
    const r = allocVmxonRegion(kernel)!;
    expect(kernel.pages.freeCount()).toBeLessThan(before);
    freeVmxRegion(kernel, r);
    expect(kernel.pages.freeCount()).toBe(before);
    expect(kernel.dmesg()).not.toMatch(/BUG/);
  });
});
