import { describe, expect, test } from 'vitest';
import { vmxOff, vmxOn } from '#impl/01-vmxon/vmxon';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { EIO } from '../../src/kernel/errno.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { explain } from '../lib/vmx-setup.ts';

const CR4_VMXE = 1n << 13n;
const RFLAGS_CF = 1n;

/** In VMX operation, VMPTRST succeeds (and stores all ones: no current VMCS); outside it raises #UD. */
function inVmxOperation(k: Kernel): boolean {
  try {
    const p = k.cpu().vmptrst();
    return p === 0xffffffffffffffffn;
  } catch {
    return false;
  }
}

describe('vmxOn / vmxOff as a kernel module', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: loads, enters VMX operation, and unloads cleanly', (name) => {
    const host = bootHost({ model: name });
    const { kernel } = host;
    let region: { va: bigint; pa: bigint } | undefined;
    const loaded = kernel.insmod({
      name: 'vmxon',
      init: (k) => {
        const r = vmxOn(k);
        if (!r.ok) return -EIO;
        region = r.region;
        return 0;
      },
      exit: (k) => vmxOff(k, region!),
    });
    expect(loaded, explain(host)).toEqual({ ok: true });
    expect(inVmxOperation(kernel)).toBe(true);
    const free = kernel.pages.freeCount();
    expect(kernel.rmmod('vmxon')).toEqual({ ok: true });
    expect(inVmxOperation(kernel)).toBe(false);
    expect(kernel.cpu().readCr4() & CR4_VMXE).toBe(0n);
    expect(kernel.pages.freeCount()).toBe(free + 1);
  });

  test('VMX disabled by the firmware: an error, no oops, nothing left behind', () => {
    const { kernel } = bootHost({ featureControl: 'locked-disabled' });
    const free = kernel.pages.freeCount();
    const r = vmxOn(kernel);
    expect(r.ok).toBe(false);
    expect(kernel.cpu().readCr4() & CR4_VMXE).toBe(0n);
    expect(kernel.pages.freeCount()).toBe(free);
  });

  test('a CPU without VMX: an error before touching CR4', () => {
    const { kernel } = bootHost({ hideVmx: true });
    expect(vmxOn(kernel).ok).toBe(false);
    expect(kernel.cpu().readCr4() & CR4_VMXE).toBe(0n);
  });

  test('VMXON twice on one CPU fails (VMfailInvalid) and the second call cleans up after itself', () => {
    const host = bootHost({});
    const { kernel } = host;
    const first = vmxOn(kernel);
    expect(first.ok, explain(host)).toBe(true);
    const free = kernel.pages.freeCount();
    const second = vmxOn(kernel);
    expect(second.ok).toBe(false);
    expect(kernel.cpu().rflags() & RFLAGS_CF).toBe(RFLAGS_CF);
    expect(kernel.pages.freeCount()).toBe(free);
    expect(inVmxOperation(kernel)).toBe(true); // the first VMXON still stands
  });
});
