import { describe, expect, test } from 'vitest';
import { vmxOff, vmxOn } from '#impl/01-vmxon/vmxon';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { EIO } from '../../src/kernel/errno.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { explain } from '../lib/vmx-setup.ts';
import { showCr4, showLoad, showRflags } from '../lib/show.ts';

const CR4_VMXE = 1n << 13n;
const CR0_NE = 1n << 5n;
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

/** insmod a module whose init is vmxOn and whose exit is vmxOff, then rmmod it, checking each step. */
function loadAndUnload(host: ReturnType<typeof bootHost>, where: string): void {
  const { kernel } = host;
  let region: { va: bigint; pa: bigint } | undefined;
  let initError: string | undefined;
  const loaded = kernel.insmod({
    name: 'vmxon',
    init: (k) => {
      const r = vmxOn(k);
      if (!r.ok) {
        initError = r.error;
        return -EIO;
      }
      region = r.region;
      return 0;
    },
    exit: (k) => vmxOff(k, region!),
  });
  const why = `${where}: insmod: ${showLoad(loaded)}${initError !== undefined ? `\nvmxOn returned the error: ${initError}` : ''}\n${explain(host)}`;
  expect(loaded.ok, why).toBe(true);
  expect(inVmxOperation(kernel), `${where}: after a successful vmxOn the CPU must be in VMX operation (VMPTRST works)`).toBe(true);
  const free = kernel.pages.freeCount();
  const unloaded = kernel.rmmod('vmxon');
  expect(unloaded.ok, `${where}: rmmod: ${showLoad(unloaded)}\n${explain(host)}`).toBe(true);
  expect(inVmxOperation(kernel), `${where}: after vmxOff the CPU must have left VMX operation (VMXOFF)`).toBe(false);
  const cr4 = kernel.cpu().readCr4();
  expect(showCr4(cr4 & CR4_VMXE), `${where}: CR4 = ${showCr4(cr4)} after vmxOff: clear CR4.VMXE after VMXOFF`).toBe(showCr4(0));
  expect(kernel.pages.freeCount(), `${where}: vmxOff must free the VMXON region (one page)`).toBe(free + 1);
}

describe('vmxOn / vmxOff as a kernel module', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: loads, enters VMX operation, and unloads cleanly', (name) => {
    loadAndUnload(bootHost({ model: name }), name);
  });

  // See the mistake box "Setting only CR4.VMXE": a host whose OS left CR0.NE clear needs the CR0 rule too.
  test('a host with CR0.NE = 0: vmxOn applies the CR0 fixed bits too, and VMXON succeeds', () => {
    const host = bootHost({});
    const cpu = host.kernel.cpu();
    cpu.writeCr0(cpu.readCr0() & ~CR0_NE);
    loadAndUnload(host, 'host CR0.NE = 0 (IA32_VMX_CR0_FIXED0 requires it to be 1)');
  });

  test('VMX disabled by the firmware: an error, no oops, nothing left behind', () => {
    const { kernel } = bootHost({ featureControl: 'locked-disabled' });
    const free = kernel.pages.freeCount();
    const r = vmxOn(kernel);
    expect(r.ok, 'IA32_FEATURE_CONTROL is locked with bit 2 clear: vmxOn must fail').toBe(false);
    const cr4 = kernel.cpu().readCr4();
    expect(showCr4(cr4 & CR4_VMXE), `CR4 = ${showCr4(cr4)}: on the failure path, put CR4.VMXE back as it was`).toBe(showCr4(0));
    expect(kernel.pages.freeCount(), 'free pages before and after a failed vmxOn: free the VMXON region on the failure path').toBe(free);
  });

  test('a CPU without VMX: an error before touching CR4', () => {
    const { kernel } = bootHost({ hideVmx: true });
    expect(vmxOn(kernel).ok, 'CPUID.1:ECX[5] = 0: vmxOn must fail').toBe(false);
    const cr4 = kernel.cpu().readCr4();
    expect(showCr4(cr4 & CR4_VMXE), `CR4 = ${showCr4(cr4)}: without VMX, stop before touching CR4`).toBe(showCr4(0));
  });

  test('VMXON twice on one CPU fails (VMfailInvalid) and the second call cleans up after itself', () => {
    const host = bootHost({});
    const { kernel } = host;
    const first = vmxOn(kernel);
    expect(first.ok, `the first vmxOn failed: ${first.ok ? '' : first.error}\n${explain(host)}`).toBe(true);
    const free = kernel.pages.freeCount();
    const second = vmxOn(kernel);
    expect(second.ok, 'a second VMXON in VMX root operation with no current VMCS fails with VMfailInvalid: vmxOn must report it').toBe(false);
    const rflags = kernel.cpu().rflags();
    expect(showRflags(rflags & RFLAGS_CF), `RFLAGS = ${showRflags(rflags)} after the second VMXON: VMfailInvalid sets CF`).toBe(showRflags(RFLAGS_CF));
    expect(kernel.pages.freeCount(), 'free pages before and after the failed second vmxOn: free its region').toBe(free);
    expect(inVmxOperation(kernel), 'the first VMXON still stands: do not VMXOFF or clear CR4.VMXE on this failure path').toBe(true);
  });
});
