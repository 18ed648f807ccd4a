import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { allocVmxonRegion, freeVmxRegion, regionSize, revisionId } from '#impl/01-vmxon/vmxon-region';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';
import { hex } from '../lib/show.ts';

// SDM Vol. 3D, "Basic VMX Information": revision id in bits 30:0 (bit 31 is 0), region size in bits 44:32.
describe('IA32_VMX_BASIC fields', () => {
  test('revisionId is bits 30:0 and regionSize is bits 44:32, for any value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (basic) => {
        const id = revisionId(basic), size = regionSize(basic);
        const wantId = Number(basic % (1n << 31n)), wantSize = Number((basic / (1n << 32n)) % (1n << 13n));
        expect(id, `IA32_VMX_BASIC = ${hex(basic)}: revisionId ${hex(id)}, expected bits 30:0 = ${hex(wantId)} (a number)`).toBe(wantId);
        expect(size, `IA32_VMX_BASIC = ${hex(basic)}: regionSize ${hex(size)}, expected bits 44:32 = ${hex(wantSize)} (a number of bytes)`).toBe(wantSize);
      }),
    );
  });
  test('a real Skylake: revision 4, 1024-byte regions', () => {
    expect(revisionId(0xda040000000004n), 'IA32_VMX_BASIC = 0xda040000000004: bits 30:0 are 4').toBe(4);
    expect(regionSize(0xda040000000004n), 'IA32_VMX_BASIC = 0xda040000000004: bits 44:32 are 0x400 = 1024 bytes').toBe(1024);
  });
});

describe('allocVmxonRegion', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s: aligned, contiguous, revision id written', (name) => {
    const { kernel } = bootHost({ model: name });
    const basic = kernel.cpu().rdmsr(MSR_IA32_VMX_BASIC);
    const r = allocVmxonRegion(kernel);
    expect(r, `${name}: allocVmxonRegion returned null (out of memory?)`).not.toBeNull();
    expect(r!.pa % 4096n, `${name}: VMXON region at physical ${hex(r!.pa)}: it must be 4-KByte aligned (bits 11:0 zero)`).toBe(0n);
    // Direct-map memory (kmalloc, the page allocator): virt_to_phys is meaningful. vmalloc memory is not.
    const pa = kernel.virt_to_phys(r!.va);
    expect(pa, `${name}: region va ${hex(r!.va)}, pa ${hex(r!.pa)}, but virt_to_phys(va) = ${hex(pa)}: use physically contiguous memory and its virt_to_phys`).toBe(r!.pa);
    expect(kernel.dmesg(), `${name}: virt_to_phys was used on vmalloc memory, which is not physically contiguous`).not.toMatch(/non-linear address/);
    const first = kernel.read32(r!.va);
    expect(hex(first), `${name}: the first dword must be the revision id, IA32_VMX_BASIC[30:0] = ${hex(basic & 0x7fffffffn)}, with bit 31 clear`).toBe(hex(Number(basic & 0x7fffffffn)));
  });

  test('bit 31 stays clear whatever garbage the allocator left (different seeds)', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const { kernel } = bootHost({ seed });
      const r = allocVmxonRegion(kernel)!;
      const first = kernel.read32(r.va);
      expect(first >>> 31, `seed ${seed}: first dword ${hex(first)} has bit 31 set (stale memory?): write the whole dword, do not OR into it`).toBe(0);
    }
  });

  test('freeVmxRegion gives every page back', () => {
    const { kernel } = bootHost({});
    const before = kernel.pages.freeCount();
    const r = allocVmxonRegion(kernel)!;
    expect(kernel.pages.freeCount(), 'the free page count did not drop: did allocVmxonRegion allocate anything?').toBeLessThan(before);
    freeVmxRegion(kernel, r);
    expect(kernel.pages.freeCount(), 'free pages before allocVmxonRegion and after freeVmxRegion: free what you allocated, with the matching call').toBe(before);
    expect(kernel.dmesg(), 'dmesg shows a BUG: freed with the wrong function, or twice?').not.toMatch(/BUG/);
  });
});
