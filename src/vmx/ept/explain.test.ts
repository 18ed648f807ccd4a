// explainEpt on hand-built tables: each violation and misconfiguration names the level, the entry's address and
// value, the bits and the rule. Entry bits as numbers on purpose: R=1 W=2 X=4 WB=0x30 PS=0x80 XU=0x400.
import { describe, expect, it } from 'vitest';
import { asDiagnosis, explainEpt, formatEptDiagnosis } from './explain.ts';
import { eptTranslate, type EptTranslateInput } from './walk.ts';

const R = 1n, W = 2n, X = 4n, RWX = 7n, WB = 0x30n, PS = 0x80n, XU = 0x400n;
const CAP_ALL = (1n << 0n) | (1n << 6n) | (1n << 14n) | (1n << 16n) | (1n << 17n) | (1n << 21n);
const PML4 = 0x1000n, PDPT = 0x2000n, PD = 0x3000n, PT = 0x4000n;
const EPTP = PML4 | (3n << 3n) | 6n;

/** PML4[0] → PDPT[0] → PD; PD[0] → PT; PD[1] = 2-MByte page 0x600000 R+X; PT[0x10] = 0x9000 RW; PT[0x12] = 0xB000 R, X, no XU. */
function mem(over: [bigint, bigint][] = []): Map<bigint, bigint> {
  const m = new Map<bigint, bigint>([
    [PML4, PDPT | RWX | XU], [PDPT, PD | RWX | XU], [PD, PT | RWX | XU], [PD + 8n, 0x60_0000n | R | X | WB | PS],
    [PT + 0x80n, 0x9000n | R | W | WB], [PT + 0x90n, 0xb000n | R | X | WB],
  ]);
  for (const [a, v] of over) m.set(a, v);
  return m;
}

function explain(over: Partial<EptTranslateInput> & { gpa: bigint }, m = mem()) {
  const input: EptTranslateInput = {
    eptp: EPTP, access: { read: true, write: false, execute: false }, caps: { eptVpidCap: CAP_ALL }, maxPhysAddr: 39,
    mbec: false, readPhys64: (a) => m.get(a) ?? 0n, writePhys64: (a, v) => { m.set(a, v); }, ...over,
  };
  return explainEpt(input, eptTranslate(input));
}

describe('explainEpt: violations', () => {
  it('a successful translation has no diagnosis', () => {
    expect(explain({ gpa: 0x10000n })).toBeNull();
  });
  it('not present: the level and address of the entry where the walk stopped', () => {
    const d = explain({ gpa: 0x40_0000n })!;
    expect(d).toMatchObject({ rule: 'ept-not-present', level: 'PDE', entryAddress: PD + 16n, entryValue: 0n, outcome: 'EPT violation (exit reason 48), exit qualification 0x1' });
    expect(d.message).toContain('0x400000');
    expect(d.walk).toHaveLength(3);
    expect(d.walk[2]).toBe('PDE at 0x3010 = 0x0: not present');
    expect(d.qualification).toEqual(['bit 0: data read']);
  });
  it('write to a read/execute 2-MByte page: the PDE, bit 1 (W)', () => {
    const d = explain({ gpa: 0x20_0000n, access: { read: false, write: true, execute: false } })!;
    expect(d).toMatchObject({ rule: 'ept-write-denied', level: 'PDE', entryAddress: PD + 8n, field: 'bit 1 (W)' });
    expect(d.walk[2]).toBe('PDE at 0x3008 = 0x6000B5: R - X (pde-2m)');
    expect(d.qualification).toContain('bit 1: data write');
  });
  it('a permission withheld at two levels names the higher entry', () => {
    const d = explain({ gpa: 0x20_0000n, access: { read: false, write: true, execute: false } }, mem([[PDPT, PD | R | X]]))!;
    expect(d).toMatchObject({ rule: 'ept-write-denied', level: 'PDPTE', entryAddress: PDPT });
  });
  it('fetch from a non-executable page: bit 2 (X)', () => {
    expect(explain({ gpa: 0x10000n, access: { read: false, write: false, execute: true } }))
      .toMatchObject({ rule: 'ept-execute-denied', level: 'PTE', field: 'bit 2 (X)' });
  });
  it('MBEC, user-mode fetch: bit 10 (XU)', () => {
    const d = explain({ gpa: 0x12000n, access: { read: false, write: false, execute: true, user: true }, mbec: true })!;
    expect(d).toMatchObject({ rule: 'ept-user-execute-denied', level: 'PTE', field: 'bit 10 (XU)' });
    expect(d.walk[3]).toBe('PTE at 0x4090 = 0xB035: R - X -- (pte)');
  });
  it('without MBEC a user-mode fetch still needs bit 2 (X); bit 10 is ignored', () => {
    expect(explain({ gpa: 0x10000n, access: { read: false, write: false, execute: true, user: true } }))
      .toMatchObject({ rule: 'ept-execute-denied', field: 'bit 2 (X)' });
  });
  it('a guest paging-structure access with A/D on says why it counted as a write', () => {
    const d = explain({ gpa: 0x20_0000n, eptp: EPTP | 0x40n, guestLinear: { address: 0x1000n, isPagingStructureAccess: true } })!;
    expect(d.rule).toBe('ept-write-denied');
    expect(d.message).toContain('count as writes');
    expect(d.qualification).toContain('bit 7: guest linear-address field valid');
    expect(d.qualification.some((q) => q.startsWith('bit 8'))).toBe(false);
  });
});

describe('explainEpt: misconfigurations', () => {
  const cases: [string, [bigint, bigint], bigint, string, string, string, RegExp, Partial<EptTranslateInput>?][] = [
    ['write-only PTE', [PT + 0x80n, 0x9000n | W | WB], 0x10000n, 'ept-write-without-read', 'PTE', 'bit 0 (R), bit 1 (W), bit 2 (X)', /bit 0 \(read\)/],
    ['execute-only without the capability', [PT + 0x80n, 0x9000n | X | WB], 0x10000n, 'ept-execute-only-unsupported', 'PTE', 'bit 0 (R), bit 1 (W), bit 2 (X)', /IA32_VMX_EPT_VPID_CAP\[0\] = 0/, { caps: { eptVpidCap: CAP_ALL & ~1n } }],
    ['PS in a PML4E', [PML4, PDPT | RWX | PS], 0x10000n, 'ept-page-size-not-allowed', 'PML4E', 'bit 7 (PS)', /reserved/],
    ['2-MByte page without the capability', [PD + 8n, 0x60_0000n | R | X | WB | PS], 0x20_0000n, 'ept-page-size-not-allowed', 'PDE', 'bit 7 (PS)', /IA32_VMX_EPT_VPID_CAP\[16\]/, { caps: { eptVpidCap: CAP_ALL & ~(1n << 16n) } }],
    ['misaligned 2-MByte page', [PD + 8n, 0x60_1000n | R | X | WB | PS], 0x20_0000n, 'ept-reserved-bits', 'PDE', 'bit 12 (reserved)', /pde-2m/],
    ['pointer beyond MAXPHYADDR', [PD, (1n << 40n) | PT | RWX], 0x10000n, 'ept-address-beyond-maxphyaddr', 'PDE', 'bit 40 (reserved)', /bits 51:39 clear/],
    ['memory type 7', [PT + 0x80n, 0x9000n | R | (7n << 3n)], 0x10000n, 'ept-memory-type-reserved', 'PTE', 'bits 5:3 (memory type)', /6 \(WB\)/],
  ];
  it.each(cases)('%s', (_n, [address, value], gpa, rule, level, field, expected, over) => {
    const d = explain({ gpa, ...over }, mem([[address, value]]))!;
    expect(d).toMatchObject({ rule, level, entryAddress: address, entryValue: value, field, outcome: 'EPT misconfiguration (exit reason 49)' });
    expect(d.expected).toMatch(expected);
    expect(d.sdm).toContain('"EPT Misconfigurations"');
    expect(d.qualification).toEqual([]);
  });
});

describe('formatEptDiagnosis and asDiagnosis', () => {
  it('text names the outcome, rule, section, entry and walk; the VMX channel shape carries the same facts', () => {
    const d = explain({ gpa: 0x10000n }, mem([[PT + 0x80n, 0x9000n | R | (7n << 3n)]]))!;
    const text = formatEptDiagnosis(d);
    expect(text).toContain('EPT misconfiguration (exit reason 49)');
    expect(text).toContain('rule: ept-memory-type-reserved');
    expect(text).toContain('see: SDM Vol. 3C, "EPT Misconfigurations"');
    expect(text).toContain('PTE at 0x4080 = 0x9039: bits 5:3 (memory type)');
    expect(text).toContain('    PML4E at 0x1000 = 0x2407: R W X (pml4e)');
    expect(asDiagnosis(d, 'MOV (guest)')).toMatchObject({ rule: 'ept-memory-type-reserved', instruction: 'MOV (guest)', field: 'EPT PTE at 0x4080', value: 0x9039n });
  });
});
