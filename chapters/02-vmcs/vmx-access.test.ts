import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { describeVmxError, vmread, vmwrite, vmxStatusOf } from '#impl/02-vmcs/vmx-access';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { VMCS_FIELDS, type VmcsFieldName } from '../../src/vmx/fields.ts';
import { explain, hostInVmxOperation, kitCurrentVmcs } from '../lib/vmx-setup.ts';

const CF = 1n, ZF = 1n << 6n;
const WRITABLE = VMCS_FIELDS.filter((f) => !f.readOnly);
const MASK = { '16': 0xffffn, '32': 0xffffffffn, '64': (1n << 64n) - 1n, natural: (1n << 64n) - 1n } as const;

/** Does the emulated CPU support this field? Probe it with the raw instruction. */
function supported(cpu: ReturnType<ReturnType<typeof hostInVmxOperation>['kernel']['cpu']>, encoding: number): boolean {
  cpu.vmread(encoding);
  return (cpu.rflags() & (CF | ZF)) === 0n;
}

describe('vmxStatusOf', () => {
  test('VMsucceed after a good VMWRITE', () => {
    const host = hostInVmxOperation();
    kitCurrentVmcs(host.kernel);
    host.kernel.cpu().vmwrite(0x681e, 0x1000n); // GUEST_RIP
    expect(vmxStatusOf(host.kernel.cpu())).toEqual({ ok: true, value: undefined });
  });
  test('VMfailInvalid when there is no current VMCS: no error number to read', () => {
    const host = hostInVmxOperation();
    host.kernel.cpu().vmread(0x681e);
    expect(vmxStatusOf(host.kernel.cpu())).toEqual({ ok: false, error: { kind: 'VMfailInvalid' } });
  });
  test('VMfailValid(12) for an unsupported field, with the error named from the table', () => {
    const host = hostInVmxOperation();
    kitCurrentVmcs(host.kernel);
    host.kernel.cpu().vmwrite(0x7fff, 0n);
    const r = vmxStatusOf(host.kernel.cpu());
    expect(r).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 12, name: 'VMXERR_UNSUPPORTED_VMCS_COMPONENT' } });
    if (!r.ok) expect(describeVmxError(r.error)).toMatch(/12/);
  });
});

describe('vmread / vmwrite', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: every writable supported field round-trips, typed by width', (name) => {
    const host = hostInVmxOperation({ model: name });
    const cpu = host.kernel.cpu();
    kitCurrentVmcs(host.kernel);
    let checked = 0;
    fc.assert(
      fc.property(fc.constantFrom(...WRITABLE), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (f, raw) => {
        if (!supported(cpu, f.encoding)) return;
        const v = raw & MASK[f.width];
        const name = f.name as VmcsFieldName;
        const wide = (f.width === '64' || f.width === 'natural') && !f.high;
        const value = wide ? v : Number(f.high ? v & 0xffffffffn : v);
        expect(vmwrite(cpu, name, value as never), explain(host)).toEqual({ ok: true, value: undefined });
        const back = vmread(cpu, name);
        expect(back).toEqual({ ok: true, value });
        expect(typeof (back as { value: unknown }).value).toBe(wide ? 'bigint' : 'number');
        checked++;
      }),
      { numRuns: 60 },
    );
    expect(checked).toBeGreaterThan(30);
  });

  test.each(CPU_MODELS.map((m) => [m.name, (m.msrs.get(0x485)! >> 29n) & 1n]))(
    '%s: writing a read-only field is error 13 unless IA32_VMX_MISC[29] = 1',
    (name, vmwriteAny) => {
      const host = hostInVmxOperation({ model: name });
      kitCurrentVmcs(host.kernel);
      const r = vmwrite(host.kernel.cpu(), 'VM_EXIT_REASON', 1);
      if (vmwriteAny === 1n) expect(r.ok).toBe(true);
      else expect(r).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 13 } });
    },
  );

  test('a failed VMREAD reports the error instead of returning a value', () => {
    const host = hostInVmxOperation();
    const r = vmread(host.kernel.cpu(), 'GUEST_RIP'); // no current VMCS
    expect(r).toEqual({ ok: false, error: { kind: 'VMfailInvalid' } });
  });
});
