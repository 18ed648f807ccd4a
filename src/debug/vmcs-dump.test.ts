// The VMCS dump on real exits: values agree with VMREAD, fields the SDM leaves undefined for the exit are labelled
// (not shown as numbers), a model without a feature has no rows for its fields, and dumping changes nothing.
import { describe, expect, test } from 'vitest';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs } from '../kernel/testing/reference-vm.ts';
import { CPU_MODELS } from '../machine/cpu-model.ts';
import { VMCS_FIELDS } from '../vmx/fields.ts';
import { UNDEFINED_32, UNDEFINED_64, UNDEFINED_INVALID_INFO } from '../vmx/exit/index.ts';
import { diffVmcs, dumpVmcs, formatVmcsDiff, formatVmcsDump, snapshotVmcs, type VmcsDump, type VmcsDumpRow } from './vmcs-dump.ts';
import { prepareCpuidLoop } from './testing/cpuid-loop.ts';

const CF_ZF = 1n | (1n << 6n);
const row = (d: VmcsDump, name: string): VmcsDumpRow | undefined => d.rows.find((r) => r.name === name);

/** The CPUID loop run to its HLT exit, with a snapshot taken at the first CPUID exit. */
function cpuidThenHlt(model?: string) {
  const loop = prepareCpuidLoop(2, model === undefined ? {} : { model });
  const unit = loop.host.vmx[0]!;
  let atCpuid: ReturnType<typeof snapshotVmcs> = null;
  const stop = unit.observe({ onVmExit: () => (atCpuid ??= snapshotVmcs(unit)) });
  loop.host.kernel.cpu().vmlaunch();
  runGuests(loop.host);
  stop();
  return { ...loop, unit, atCpuid: dumpVmcs(atCpuid!)!, atHlt: dumpVmcs(unit)! };
}

describe('dumpVmcs', () => {
  test('an HLT exit: defined fields show their values; the fields the SDM leaves undefined are labelled, not numbers', () => {
    const { host, atHlt, hltRip } = cpuidThenHlt();
    const why = explain(host, formatVmcsDump(atHlt));
    expect(row(atHlt, 'GUEST_RIP')?.value, why).toBe(hltRip);
    expect(row(atHlt, 'VM_EXIT_REASON'), why).toMatchObject({ value: 12n, undefinedForThisExit: false, group: '32-Bit Read-Only Data Fields', type: 'exit-info' });
    expect(row(atHlt, 'VM_EXIT_INSTRUCTION_LEN'), why).toMatchObject({ value: 1n, undefinedForThisExit: false });
    expect(row(atHlt, 'EXIT_QUALIFICATION'), why).toMatchObject({ value: 0n, undefinedForThisExit: false });
    // HLT defines neither interruption information, IDT-vectoring information nor instruction information.
    // See SDM Vol. 3C, "Recording VM-Exit Information and Updating VM-Entry Control Fields".
    for (const [name, poison] of [['VM_EXIT_INTR_INFO', UNDEFINED_INVALID_INFO], ['VM_EXIT_INTR_ERROR_CODE', UNDEFINED_32],
      ['IDT_VECTORING_INFO_FIELD', UNDEFINED_INVALID_INFO], ['VMX_INSTRUCTION_INFO', UNDEFINED_32]] as const) {
      expect(row(atHlt, name), `${name}\n${why}`).toMatchObject({ value: BigInt(poison), undefinedForThisExit: true, why: 'poisoned' });
    }
    expect(row(atHlt, 'GUEST_LINEAR_ADDRESS'), why).toMatchObject({ value: UNDEFINED_64, undefinedForThisExit: true });
    // Outside the exit-information area nothing is labelled undefined.
    expect(atHlt.rows.filter((r) => r.undefinedForThisExit && r.type !== 'exit-info'), why).toEqual([]);
    const text = formatVmcsDump(atHlt);
    expect(text).toMatch(/VM_EXIT_INTR_INFO\s+0x4404\s+undefined for this exit \(poison 0x5EADBEEF\)/);
    expect(text).toMatch(/VM_EXIT_INSTRUCTION_LEN\s+0x440C\s+0x00000001$/m);
    expect(text).toMatch(/^ {2}Natural-Width Guest-State Fields$/m);
  });

  test('a triple fault is not caused by an instruction: VM_EXIT_INSTRUCTION_LEN is labelled undefined', () => {
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    writeReferenceVmcs(host, cpu, k.hostEntry('stop', () => undefined), 'bits 64\n ud2\n'); // no IDT: #UD → #DF → triple fault
    cpu.vmlaunch();
    runGuests(host);
    const d = dumpVmcs(cpu)!;
    const why = explain(host, formatVmcsDump(d));
    expect(row(d, 'VM_EXIT_REASON')?.value, why).toBe(2n);
    expect(row(d, 'VM_EXIT_INSTRUCTION_LEN'), why).toMatchObject({ value: BigInt(UNDEFINED_32), undefinedForThisExit: true, why: 'poisoned' });
  });

  test('a VM-entry failure writes only the reason and qualification: every other exit field is labelled unmodified', () => {
    const { host, atHlt } = cpuidThenHlt();
    const cpu = host.kernel.cpu();
    write(host, cpu, 'VMCS_LINK_POINTER', cpu.vmptrst()); // exit 33, qualification 4
    cpu.vmresume();
    const d = dumpVmcs(cpu)!;
    const why = explain(host, formatVmcsDump(d));
    expect(d.exitReason, why).toBe((33 | 2 ** 31) >>> 0);
    expect(row(d, 'EXIT_QUALIFICATION'), why).toMatchObject({ value: 4n, undefinedForThisExit: false });
    // The HLT exit's instruction length is still there, and is not about this failure.
    expect(row(d, 'VM_EXIT_INSTRUCTION_LEN'), why).toMatchObject({ value: 1n, undefinedForThisExit: true, why: 'unmodified-by-entry-failure' });
    expect(row(d, 'VM_INSTRUCTION_ERROR')?.undefinedForThisExit, why).toBe(false);
    expect(formatVmcsDump(d, { filter: 'instruction_len' })).toContain('not written by this VM-entry failure (still 0x00000001)');
    expect(diffVmcs(atHlt, d).map((r) => r.name), why).toEqual(expect.arrayContaining(['VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'VMCS_LINK_POINTER']));
  });

  test('every value is what VMREAD returns, and reading the dump changes no architectural state', () => {
    const { host, unit } = cpuidThenHlt();
    const cpu = host.kernel.cpu();
    const before = { lp: cpu.lp.snapshot(), vmcs: unit.state.current!.data.slice(), seq: unit.state.instructionSeq };
    const d = dumpVmcs(unit)!;
    expect({ lp: cpu.lp.snapshot(), vmcs: unit.state.current!.data.slice(), seq: unit.state.instructionSeq }).toEqual(before);
    const mismatches = d.rows.filter((r) => read(cpu, r.name) !== r.value || (cpu.rflags() & CF_ZF) !== 0n).map((r) => r.name);
    expect(mismatches).toEqual([]);
  });

  test.each(CPU_MODELS.map((m) => [m.name]))('%s: the rows are exactly the fields VMREAD accepts (unsupported ones are absent)', (model) => {
    const { host, atHlt } = cpuidThenHlt(model);
    const cpu = host.kernel.cpu();
    const readable = VMCS_FIELDS.filter((f) => !f.high).filter((f) => {
      cpu.vmread(f.encoding);
      return (cpu.rflags() & CF_ZF) === 0n;
    }).map((f) => f.name);
    expect(atHlt.rows.map((r) => r.name)).toEqual(readable);
  });

  test('penryn-core2-duo-t9600 has no EPT: no EPT_POINTER, GUEST_PHYSICAL_ADDRESS or PDPTE rows; a model with EPT has them', () => {
    const EPT_FIELDS = ['EPT_POINTER', 'GUEST_PHYSICAL_ADDRESS', 'GUEST_PDPTR0'];
    const penryn = cpuidThenHlt('penryn-core2-duo-t9600').atHlt.rows.map((r) => r.name);
    expect(penryn.filter((n) => EPT_FIELDS.includes(n))).toEqual([]);
    expect(penryn).toContain('GUEST_RIP');
    const skylake = cpuidThenHlt('skylake-i5-6300u').atHlt.rows.map((r) => r.name);
    expect(skylake).toEqual(expect.arrayContaining(EPT_FIELDS));
  });

  test('no current VMCS, or no VMX: nothing to dump', () => {
    expect(dumpVmcs(bootHost().kernel.cpu())).toBeNull();
    expect(dumpVmcs(bootHost({ hideVmx: true }).kernel.cpu())).toBeNull();
    expect(snapshotVmcs(bootHost().vmx[0]!)).toBeNull();
  });
});

describe('diffVmcs', () => {
  test('first CPUID exit → HLT exit: the exit fields and guest state that changed, no host or control field', () => {
    const { atCpuid, atHlt, cpuidRip, hltRip } = cpuidThenHlt();
    const diff = diffVmcs(atCpuid, atHlt);
    const byName = new Map(diff.map((d) => [d.name, d]));
    expect(byName.get('GUEST_RIP')).toMatchObject({ before: { value: cpuidRip }, after: { value: hltRip } });
    expect(byName.get('VM_EXIT_REASON')).toMatchObject({ before: { value: 10n }, after: { value: 12n } });
    expect(byName.get('VM_EXIT_INSTRUCTION_LEN')).toMatchObject({ before: { value: 2n }, after: { value: 1n } });
    expect(diff.filter((d) => d.after!.type === 'host' || d.after!.type === 'control')).toEqual([]);
    expect(formatVmcsDiff(diff)).toMatch(/VM_EXIT_REASON\s+0x0000000A -> 0x0000000C/);
    expect(formatVmcsDiff(diffVmcs(atHlt, atHlt))).toBe('VMCS: no field changed.');
  });
});
