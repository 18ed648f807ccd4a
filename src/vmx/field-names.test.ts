// VMCS field names are typed inside the CPU (the union VmcsFieldName / VmcsFullFieldName derived from the table
// in fields.ts): an unknown name is a compile error, not a silent read of 0. `tsc -p tsconfig.json` checks the
// `@ts-expect-error` lines below; if any of them compiled again, the unused directive would itself be an error.
import { describe, expect, it } from 'vitest';
import type { HostCpu } from '../kernel/host-cpu.ts';
import type { Host } from '../kernel/boot-host.ts';
import { read, write } from '../kernel/testing/reference-vm.ts';
import type { EntryView } from './entry/view.ts';
import type { StateCheck } from './entry/rule.ts';
import type { VmcsFieldName, VmcsFullFieldName } from './fields.ts';
import { VMCS_FIELDS } from './fields.ts';
import type { Fixture } from './testing/vmcs-fixture.ts';
import { vmcsAccessOf } from './transition/vmcs-access.ts';
import { FIELD_REQUIREMENTS } from './vmcs-support.ts';
import { ActiveVmcs } from './vmcs.ts';

/** Never called: it exists to be type-checked. */
function unknownNamesDoNotCompile(v: EntryView, f: Fixture, host: Host, cpu: HostCpu): void {
  const vmcs = vmcsAccessOf(new ActiveVmcs(0x1000n));
  // @ts-expect-error: not a VMCS field
  vmcs.read('GUEST_RIPP');
  // @ts-expect-error: not a VMCS field
  vmcs.write('HOST_RIPP', 0n);
  // @ts-expect-error: not a VMCS field
  vmcs.read32?.('VM_EXIT_REASONS');
  // @ts-expect-error: not a VMCS field
  vmcs.write32?.('VM_EXIT_REASONS', 0);
  // @ts-expect-error: the processor's own accessors take full fields; a HIGH access exists only for VMREAD/VMWRITE
  vmcs.read('EPT_POINTER_HIGH');
  // @ts-expect-error: not a VMCS field
  v.u32('GUEST_ACTIVITY');
  // @ts-expect-error: not a VMCS field
  v.u64('GUEST_CR5');
  // @ts-expect-error: not a VMCS field
  new ActiveVmcs(0x1000n).readByName('GUEST_RFLAG');
  // @ts-expect-error: not a VMCS field
  new ActiveVmcs(0x1000n).writeByName('GUEST_RFLAG', 2n);
  // @ts-expect-error: not a VMCS field
  void FIELD_REQUIREMENTS.EPT_POINTR;
  // @ts-expect-error: not a VMCS field
  write(host, cpu, 'GUEST_RIPP', 0);
  // @ts-expect-error: not a VMCS field
  read(cpu, 'GUEST_RIPP');
  // @ts-expect-error: not a VMCS field
  f.set('GUEST_RIPP', 0);
  // @ts-expect-error: not a VMCS field
  const fields: StateCheck['fields'] = ['GUEST_RIPP'];
  // VMWRITE and VMREAD by encoding do have HIGH accesses.
  write(host, cpu, 'EPT_POINTER_HIGH', 0);
  void fields;
}

describe('VMCS field names', () => {
  it('are exactly the table\'s names (the type and the table agree)', () => {
    const full: VmcsFullFieldName[] = ['GUEST_RIP', 'EPT_POINTER', 'VM_EXIT_REASON'];
    const all: VmcsFieldName[] = [...full, 'EPT_POINTER_HIGH'];
    const names = new Set(VMCS_FIELDS.map((f) => f.name));
    for (const n of all) expect(names.has(n), n).toBe(true);
    expect(typeof unknownNamesDoNotCompile).toBe('function');
  });
  it('a known name reads what was written', () => {
    const vmcs = vmcsAccessOf(new ActiveVmcs(0x1000n));
    vmcs.write('GUEST_RIP', 0xffff800000001000n);
    expect(vmcs.read('GUEST_RIP')).toBe(0xffff800000001000n);
  });
});
