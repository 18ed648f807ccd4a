// `vmxlab explain-gpa` in-process: the arguments it accepts and refuses, and what it says for a mapped address, an
// address past the map, a misconfigured entry, EPT left off, and code that throws or is not finished. The part is
// chapter 6's reference (solutions/) or a variation of it; the spawned command is tested in cli.test.ts.
import { describe, expect, test } from 'vitest';
import { eptIdentityPart } from '../../solutions/06-ept/identity-map.ts';
import { NO_EPT_MODELS } from '../../chapters/06-ept/support.ts';
import { DEFAULT_EXPLAIN_MODEL, explainGpas, parseAddress, parseExplainGpaArgs, type EptIdentityPart, type ExplainGpaReport } from './explain-gpa.ts';

const FILE = 'solutions/06-ept/identity-map.ts';
const explain = (part: EptIdentityPart, ...gpas: bigint[]): ExplainGpaReport => explainGpas(part, { model: DEFAULT_EXPLAIN_MODEL, gpas, file: FILE });
const textOf = (r: ExplainGpaReport): string => (r.ok ? r.text : `(failed) ${r.error}`);
const errorOf = (r: ExplainGpaReport): string => (r.ok ? `(explained) ${r.text}` : r.error);

describe('parseExplainGpaArgs', () => {
  test('addresses in hex (0x…, …h) or decimal, several at once; model and --solutions', () => {
    expect(parseExplainGpaArgs(['0x1000', '2000h', '4096', '--model', 'ivybridge-i5-3320m', '--solutions']))
      .toEqual({ gpas: [0x1000n, 0x2000n, 4096n], model: 'ivybridge-i5-3320m', solutions: true, help: false });
    expect(parseAddress('0xffff_ffff_ffff_ffff')).toBe((1n << 64n) - 1n);
  });
  test('refuses what is not a 64-bit address, an unknown model, a model without EPT, and no address at all', () => {
    expect(parseExplainGpaArgs(['zz'])).toMatch(/'zz' is not a guest-physical address/);
    expect(parseExplainGpaArgs(['-0x10'])).toMatch(/is not a guest-physical address|Unknown option/);
    expect(parseExplainGpaArgs(['0x10000000000000000'])).toMatch(/below 2\^64/);
    expect(parseExplainGpaArgs(['0x1000', '--model', 'pentium-pro'])).toMatch(/no CPU model 'pentium-pro'\. Models with EPT: .*skylake-i5-6300u/);
    expect(parseExplainGpaArgs([])).toMatch(/which guest-physical address/);
    expect(parseExplainGpaArgs(['0x1000', '--bogus'])).toMatch(/bogus/);
    for (const model of NO_EPT_MODELS) expect(parseExplainGpaArgs(['0x1000', '--model', model])).toMatch(/has no EPT/);
  });
});

describe('explainGpas', () => {
  test('a mapped address: the EPTP from the VMCS, each entry, RWX, WB, the page size', () => {
    const r = explain(eptIdentityPart(), 0x1000n);
    const text = textOf(r);
    expect(r.ok, text).toBe(true);
    expect(text).toMatch(/the guest ran to its HLT/);
    expect(text).toMatch(/EPT_POINTER 0x[0-9A-F]+ \(read from the VMCS after the run\): tables read as WB, 4-level walk/);
    expect(text).toMatch(/guest-physical 0x1000 → host-physical 0x1000: RWX, WB, 1 GiB page/);
    expect(text).toMatch(/PML4E at 0x[0-9A-F]+ = 0x[0-9A-F]+: R W X \(pml4e\)/);
    expect(text).toMatch(/PDPTE at 0x[0-9A-F]+ = 0x[0-9A-F]+: R W X \(pdpte-1g\)/);
  });

  test('the EPT memory type beside the MTRR type of the same address: chapter 6\'s all-WB map is wrong in the VGA hole', () => {
    const ok = textOf(explain(eptIdentityPart(), 0x1000n));
    expect(ok).toMatch(/MTRR type of host-physical 0x1000: WB \(.*fixed-range type\); the EPT type matches/);
    const hole = textOf(explain(eptIdentityPart(), 0xa0000n));
    expect(hole).toMatch(/MTRR type of host-physical 0xA0000: UC \(.*\); the EPT entry says WB: under EPT the MTRRs are ignored, so the access is not UC as it would be on bare metal/);
  });

  test('an address past the map (RAM is far below 1 TiB): not mapped, and the entry that stops the walk', () => {
    const r = explain(eptIdentityPart(), 1n << 40n);
    const text = textOf(r);
    expect(r.ok, text).toBe(true);
    expect(text).toMatch(/guest-physical 0x10000000000: not mapped \(an access would be an EPT violation\)/);
    expect(text).toMatch(/PML4E at 0x[0-9A-F]+ = 0x0: not present/);
  });

  test('a misconfigured entry (memory type 2, reserved, in the leaf): the walk says EPT misconfiguration', () => {
    const good = eptIdentityPart();
    const bad: EptIdentityPart = {
      ...good,
      setup(v) {
        const r = good.setup!(v);
        // Leaf PDPTE 0 (1-GByte page on this model): bits 5:3 = 2 is a reserved memory type.
        const pml4 = v.k.phys_to_virt(good.state.eptp! & ~0xfffn);
        const pdpt = v.k.phys_to_virt(v.k.read64(pml4) & 0x000ffffffffff000n);
        v.k.write64(pdpt, (v.k.read64(pdpt) & ~(7n << 3n)) | (2n << 3n));
        return r;
      },
    };
    const r = explain(bad, 0x1000n);
    const text = textOf(r);
    expect(r.ok, text).toBe(true);
    expect(text).toMatch(/guest-physical 0x1000: EPT misconfiguration/);
    expect(text, 'the guest fetched its code through that entry').toMatch(/EXIT_REASON_EPT_MISCONFIG \(49\)/);
  });

  test('"enable EPT" left off: said so, not a walk of an EPTP the processor ignores', () => {
    const r = explain({ ...eptIdentityPart(), controls: {} }, 0x1000n);
    expect(r.ok).toBe(false);
    expect(errorOf(r)).toMatch(/"enable EPT" \(SECONDARY_VM_EXEC_CONTROL bit 1\) is 0 after your setup/);
  });

  test('a stub not done yet: the TODO it threw, where, and what to do', () => {
    const r = explain({ ...eptIdentityPart(), setup: () => { throw new Error('TODO: buildIdentityMap'); } }, 0x1000n);
    expect(errorOf(r)).toMatch(/^your chapter 6 code is not finished yet: it threw "TODO: buildIdentityMap"/);
    expect(errorOf(r)).toMatch(/vmxlab watch identity-map/);
  });

  test('code that throws: the oops report, no stack frames of the kit', () => {
    const setupThrows = explain({ ...eptIdentityPart(), setup: () => { throw new RangeError('my table index is off'); } }, 0x1000n);
    expect(errorOf(setupThrows)).toMatch(/your code raised an exception[\s\S]*RangeError: my table index is off/);
    const part = eptIdentityPart();
    const releaseThrows = explain({ ...part, release: () => { throw new Error('double free'); } }, 0x1000n);
    expect(errorOf(releaseThrows)).toMatch(/release\(\) threw: Error: double free/);
    for (const r of [setupThrows, releaseThrows]) expect(errorOf(r)).not.toMatch(/^\s+at .*(src|chapters)\//m);
  });
});
