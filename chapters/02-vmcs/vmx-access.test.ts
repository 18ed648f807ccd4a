import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { describeVmxError, vmread, vmwrite, vmxStatusOf } from '#impl/02-vmcs/vmx-access';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { VMCS_FIELDS, type VmcsFieldName } from '../../src/vmx/fields.ts';
import { explain, hostInVmxOperation, kitCurrentVmcs } from '../lib/vmx-setup.ts';
import { hex, showRflags } from '../lib/show.ts';

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
    const rflags = host.kernel.cpu().rflags();
    expect(vmxStatusOf(host.kernel.cpu()), `RFLAGS = ${showRflags(rflags)}: CF = ZF = 0 is VMsucceed`).toEqual({ ok: true, value: undefined });
  });
  test('VMfailInvalid when there is no current VMCS: no error number to read', () => {
    const host = hostInVmxOperation();
    host.kernel.cpu().vmread(0x681e);
    const rflags = host.kernel.cpu().rflags();
    expect(vmxStatusOf(host.kernel.cpu()), `RFLAGS = ${showRflags(rflags)}: CF = 1 is VMfailInvalid, and there is no error number to read`).toEqual({ ok: false, error: { kind: 'VMfailInvalid' } });
  });
  test('VMfailValid(12) for an unsupported field, with the error named from the table', () => {
    const host = hostInVmxOperation();
    kitCurrentVmcs(host.kernel);
    host.kernel.cpu().vmwrite(0x7fff, 0n);
    const rflags = host.kernel.cpu().rflags();
    const r = vmxStatusOf(host.kernel.cpu());
    expect(r, `VMWRITE to field 7FFFH: RFLAGS = ${showRflags(rflags)} (ZF: VMfailValid); VM_INSTRUCTION_ERROR (4400H) holds 12, VMXERR_UNSUPPORTED_VMCS_COMPONENT`).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 12, name: 'VMXERR_UNSUPPORTED_VMCS_COMPONENT' } });
    if (!r.ok) expect(describeVmxError(r.error), 'describeVmxError should include the error number').toMatch(/12/);
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
        const shown = `${name} (${hex(f.encoding)}, ${f.width === 'natural' ? 'natural-width' : `${f.width}-bit`}${f.high ? ', high half' : ''})`;
        expect(vmwrite(cpu, name, value as never), `vmwrite ${shown} = ${hex(value)} should succeed\n${explain(host)}`).toEqual({ ok: true, value: undefined });
        const back = vmread(cpu, name);
        const got = (back as { value?: unknown }).value;
        expect(back, `vmread ${shown}: wrote ${hex(value)}, read back ${hex(got)}`).toEqual({ ok: true, value });
        expect(typeof got, `vmread ${shown}: ${wide ? '64-bit and natural-width fields are bigint' : '16-bit, 32-bit and high-half fields are number'}`).toBe(wide ? 'bigint' : 'number');
        checked++;
      }),
      { numRuns: 60 },
    );
    expect(checked, `${name}: only ${checked} supported fields were tried (the kit's test is broken if this fails)`).toBeGreaterThan(30);
  });

  test.each(CPU_MODELS.map((m) => [m.name, (m.msrs.get(0x485)! >> 29n) & 1n]))(
    '%s: writing a read-only field is error 13 unless IA32_VMX_MISC[29] = 1',
    (name, vmwriteAny) => {
      const host = hostInVmxOperation({ model: name });
      kitCurrentVmcs(host.kernel);
      const r = vmwrite(host.kernel.cpu(), 'VM_EXIT_REASON', 1);
      if (vmwriteAny === 1n) expect(r.ok, `${name}: IA32_VMX_MISC[29] = 1, so VMWRITE may write VM-exit information fields like VM_EXIT_REASON`).toBe(true);
      else expect(r, `${name}: IA32_VMX_MISC[29] = 0: VMWRITE to a read-only field is VMfailValid(13), "VMWRITE to read-only VMCS component"`).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 13 } });
    },
  );

  test('a failed VMREAD reports the error instead of returning a value', () => {
    const host = hostInVmxOperation();
    const r = vmread(host.kernel.cpu(), 'GUEST_RIP'); // no current VMCS
    expect(r, 'no current VMCS: VMREAD fails with VMfailInvalid (CF = 1); return the error, not a value').toEqual({ ok: false, error: { kind: 'VMfailInvalid' } });
  });
});
