// eptTranslate on hand-built EPT tables. Expected values are worked out from the SDM's tables, with entry bits,
// capability bits and qualification bits written as numbers here on purpose (not read from entry.ts):
//   entry: R=1 W=2 X=4 memory type <<3 (WB = 0x30) IPAT=0x40 PS=0x80 A=0x100 D=0x200 XU=0x400
//   qualification: read 1, write 2, fetch 4, readable 8, writable 0x10, executable 0x20, user-executable 0x40,
//   GLA valid 0x80, translation 0x100, advanced 0x200/0x400/0x800, NMI unblocking 0x1000.
import { describe, expect, it } from 'vitest';
import { eptTranslate, type EptTranslateInput } from './walk.ts';

const R = 1n, W = 2n, X = 4n, RWX = 7n, WB = 0x30n, IPAT = 0x40n, PS = 0x80n, A = 0x100n, D = 0x200n, XU = 0x400n;
const CAP_XO = 1n << 0n, CAP_W4 = 1n << 6n, CAP_W5 = 1n << 7n, CAP_WB = 1n << 14n, CAP_2M = 1n << 16n, CAP_1G = 1n << 17n;
const CAP_AD = 1n << 21n, CAP_ADV = 1n << 22n;
const CAP_ALL = CAP_XO | CAP_W4 | CAP_W5 | CAP_WB | CAP_2M | CAP_1G | CAP_AD | CAP_ADV;
const PML5 = 0x5000n, PML4 = 0x1000n, PDPT = 0x2000n, PD = 0x3000n, PT = 0x4000n;
const EPTP4 = PML4 | (3n << 3n) | 6n;
const EPTP5 = PML5 | (4n << 3n) | 6n;
const AD_ON = 1n << 6n;

/**
 * PML4[0] → PDPT; PDPT[0] → PD; PDPT[1] = 1-GByte page 0xC0000000 (RWX, WB);
 * PD[0] → PT; PD[1] = 2-MByte page 0x600000 (R+X, WB, IPAT); PD[2] not present;
 * PT[0x10] = 0x9000 RW WB; PT[0x11] = 0xA000 execute-only WB; PT[0x12] = 0xB000 R + XU (no X), WB;
 * PT[0x13] = 0xC000 XU only (bits 2:0 = 0), WB. Upper entries carry XU so user fetches can pass.
 * PML5[0] → PML4 for 5-level walks; PML5[1] not present.
 */
function tables(): Map<bigint, bigint> {
  const m = new Map<bigint, bigint>();
  m.set(PML5, PML4 | RWX | XU);
  m.set(PML4, PDPT | RWX | XU);
  m.set(PDPT, PD | RWX | XU);
  m.set(PDPT + 8n, 0xc000_0000n | RWX | WB | PS);
  m.set(PD, PT | RWX | XU);
  m.set(PD + 8n, 0x60_0000n | R | X | WB | IPAT | PS);
  m.set(PT + 0x10n * 8n, 0x9000n | R | W | WB);
  m.set(PT + 0x11n * 8n, 0xa000n | X | WB);
  m.set(PT + 0x12n * 8n, 0xb000n | R | XU | WB);
  m.set(PT + 0x13n * 8n, 0xc000n | XU | WB);
  return m;
}

interface Run { mem: Map<bigint, bigint>; writes: [bigint, bigint][] }

function run(over: Partial<EptTranslateInput> & { gpa: bigint }, mem = tables()) {
  const r: Run = { mem, writes: [] };
  const result = eptTranslate({
    eptp: EPTP4,
    access: { read: true, write: false, execute: false },
    caps: { eptVpidCap: CAP_ALL },
    maxPhysAddr: 39,
    mbec: false,
    readPhys64: (a) => r.mem.get(a) ?? 0n,
    writePhys64: (a, v) => { r.writes.push([a, v]); r.mem.set(a, v); },
    ...over,
  });
  return { result, ...r };
}

const read = { read: true, write: false, execute: false };
const write = { read: false, write: true, execute: false };
const fetch = { read: false, write: false, execute: true };
const TRANSLATION = { address: 0x7000_1234n, isPagingStructureAccess: false };
const PAGING = { address: 0x7000_1234n, isPagingStructureAccess: true };

describe('eptTranslate: leaves', () => {
  it('4-KByte page: four entries, offset kept, memory type from the PTE', () => {
    const { result } = run({ gpa: 0x10123n });
    expect(result).toMatchObject({ kind: 'ok', hpa: 0x9123n, memoryType: 6, ignorePat: false, pageSize: 4096, level: 1 });
    expect(result.entries.map((e) => [e.level, e.address])).toEqual([[4, PML4], [3, PDPT], [2, PD], [1, PT + 0x80n]]);
  });
  it('2-MByte page: 21 offset bits, IPAT reported', () => {
    const { result } = run({ gpa: 0x2a_bcden });
    expect(result).toMatchObject({ kind: 'ok', hpa: 0x6a_bcden, ignorePat: true, pageSize: 1 << 21, level: 2 });
    expect(result.entries).toHaveLength(3);
  });
  it('1-GByte page: 30 offset bits', () => {
    const { result } = run({ gpa: 0x4123_4567n });
    expect(result).toMatchObject({ kind: 'ok', hpa: 0xc123_4567n, pageSize: 1 << 30, level: 3 });
    expect(result.entries).toHaveLength(2);
  });
  it('5-level EPT walks a PML5E first (index = GPA bits 56:48)', () => {
    const ok = run({ eptp: EPTP5, gpa: 0x10123n }).result;
    expect(ok).toMatchObject({ kind: 'ok', hpa: 0x9123n });
    expect(ok.entries.map((e) => e.level)).toEqual([5, 4, 3, 2, 1]);
    const miss = run({ eptp: EPTP5, gpa: (1n << 48n) | 0x10123n }).result;
    expect(miss).toMatchObject({ kind: 'violation', qualification: 1n });
    expect(miss.entries).toEqual([{ level: 5, address: PML5 + 8n, value: 0n }]);
  });
  it('a walk length the processor does not report is the caller\'s bug (VM entry refuses that EPTP)', () => {
    expect(() => run({ eptp: EPTP5, gpa: 0n, caps: { eptVpidCap: CAP_ALL & ~CAP_W5 } })).toThrow(RangeError);
  });
});

describe('eptTranslate: misconfigurations', () => {
  const at = (address: bigint, value: bigint) => { const m = tables(); m.set(address, value); return m; };
  const cases: [string, bigint, bigint, number, string, Partial<EptTranslateInput>?][] = [
    ['write-only (010b)', PT + 0x80n, 0x9000n | W | WB, 1, 'ept-write-without-read'],
    ['write/execute (110b)', PT + 0x80n, 0x9000n | W | X | WB, 1, 'ept-write-without-read'],
    ['write/execute in a non-leaf', PDPT, PD | W | X, 3, 'ept-write-without-read'],
    ['execute-only without IA32_VMX_EPT_VPID_CAP[0]', PT + 0x88n, 0xa000n | X | WB, 1, 'ept-execute-only-unsupported', { caps: { eptVpidCap: CAP_ALL & ~CAP_XO } }],
    ['bit 7 in a PML4E', PML4, PDPT | RWX | PS, 4, 'ept-page-size-not-allowed'],
    ['bit 7 in a PML5E', PML5, PML4 | RWX | PS, 5, 'ept-page-size-not-allowed', { eptp: EPTP5 }],
    ['1-GByte PDPTE without IA32_VMX_EPT_VPID_CAP[17]', PDPT + 8n, 0xc000_0000n | RWX | WB | PS, 3, 'ept-page-size-not-allowed', { caps: { eptVpidCap: CAP_ALL & ~CAP_1G } }],
    ['2-MByte PDE without IA32_VMX_EPT_VPID_CAP[16]', PD + 8n, 0x60_0000n | R | X | WB | PS, 2, 'ept-page-size-not-allowed', { caps: { eptVpidCap: CAP_ALL & ~CAP_2M } }],
    ['bits 6:3 of a PML4E', PML4, PDPT | RWX | 0x8n, 4, 'ept-reserved-bits'],
    ['a memory type in a non-leaf PDE (bits 5:3 reserved there)', PD, PT | RWX | WB, 2, 'ept-reserved-bits'],
    ['IPAT in a non-leaf PDPTE', PDPT, PD | RWX | IPAT, 3, 'ept-reserved-bits'],
    ['bit 12 of a 2-MByte PDE (20:12 reserved)', PD + 8n, 0x60_1000n | R | X | WB | PS, 2, 'ept-reserved-bits'],
    ['bit 20 of a 1-GByte PDPTE (29:12 reserved)', PDPT + 8n, 0xc010_0000n | RWX | WB | PS, 3, 'ept-reserved-bits'],
    ['a PDE pointing beyond MAXPHYADDR (39)', PD, (1n << 40n) | PT | RWX, 2, 'ept-address-beyond-maxphyaddr'],
    ['a PTE frame at bit 51', PT + 0x80n, (1n << 51n) | 0x9000n | R | WB, 1, 'ept-address-beyond-maxphyaddr'],
    ['memory type 2', PT + 0x80n, 0x9000n | R | (2n << 3n), 1, 'ept-memory-type-reserved'],
    ['memory type 3', PT + 0x80n, 0x9000n | R | (3n << 3n), 1, 'ept-memory-type-reserved'],
    ['memory type 7 on a 2-MByte page', PD + 8n, 0x60_0000n | R | (7n << 3n) | PS, 2, 'ept-memory-type-reserved'],
  ];
  const gpaFor = (address: bigint) =>
    address === PD + 8n ? 0x20_0000n : address === PDPT + 8n ? 0x4000_0000n : address === PT + 0x88n ? 0x11000n : 0x10000n;
  it.each(cases)('%s', (_name, address, value, level, rule, over) => {
    const { result, writes } = run({ gpa: gpaFor(address), eptp: over?.eptp ?? EPTP4 | AD_ON, ...over }, at(address, value));
    expect(result).toMatchObject({ kind: 'misconfig', level, entryAddress: address, entryValue: value, rule });
    expect(writes).toEqual([]);
  });
  it('bits above MAXPHYADDR are legal address bits on a wider processor', () => {
    expect(run({ gpa: 0x10000n, maxPhysAddr: 46 }, at(PD, (1n << 40n) | PT | RWX)).result.kind).not.toBe('misconfig');
  });
  it('memory types 0, 1, 4, 5, 6 are accepted', () => {
    for (const t of [0n, 1n, 4n, 5n, 6n]) {
      expect(run({ gpa: 0x10000n }, at(PT + 0x80n, 0x9000n | R | (t << 3n))).result).toMatchObject({ kind: 'ok', memoryType: Number(t) });
    }
  });
  it('ignored bits (11, 63:52, bit 7 of a PTE, bit 9 of a non-leaf) do not matter', () => {
    expect(run({ gpa: 0x10000n }, at(PT + 0x80n, 0x9000n | R | WB | PS | (1n << 11n) | (0xfffn << 52n))).result.kind).toBe('ok');
    expect(run({ gpa: 0x10000n }, at(PD, PT | RWX | D | (1n << 11n) | (0xfffn << 52n))).result.kind).toBe('ok');
  });
  it('a misconfiguration further down wins over a permission the upper entries deny', () => {
    const m = at(PML4, PDPT | X); // execute-only: this read would be denied here
    m.set(PT + 0x80n, 0x9000n | R | (7n << 3n));
    expect(run({ gpa: 0x10000n }, m).result).toMatchObject({ kind: 'misconfig', level: 1, rule: 'ept-memory-type-reserved' });
  });
  it('a not-present entry is never checked for misconfigurations (bits 63:3 ignored)', () => {
    const { result } = run({ gpa: 0x10000n }, at(PD, (1n << 50n) | (7n << 3n) | PS));
    expect(result).toMatchObject({ kind: 'violation', qualification: 1n });
  });
});

describe('eptTranslate: violations and the exit qualification', () => {
  it('not present: the access bit only, bits 5:3 are 0, the walk stops there', () => {
    const { result } = run({ gpa: 0x40_0000n });
    expect(result).toMatchObject({ kind: 'violation', qualification: 0x1n });
    expect(result.entries.map((e) => e.level)).toEqual([4, 3, 2]);
  });
  it('read of an execute-only page: read, executable', () => {
    expect(run({ gpa: 0x11000n }).result).toMatchObject({ kind: 'violation', qualification: 0x21n });
  });
  it('write to a read/execute page: write, readable, executable', () => {
    expect(run({ gpa: 0x20_0000n, access: write }).result).toMatchObject({ kind: 'violation', qualification: 0x2an });
  });
  it('fetch from a read/write page: fetch, readable, writable', () => {
    expect(run({ gpa: 0x10000n, access: fetch }).result).toMatchObject({ kind: 'violation', qualification: 0x1cn });
  });
  it('read-modify-write: both access bits', () => {
    expect(run({ gpa: 0x20_0000n, access: { read: true, write: true, execute: false } }).result)
      .toMatchObject({ kind: 'violation', qualification: 0x2bn });
  });
  it('a permission denied by an upper entry: bits 5:3 are the AND over the whole path', () => {
    const m = tables();
    m.set(PDPT, PD | R | X | XU); // not writable here
    expect(run({ gpa: 0x10000n, access: write }, m).result).toMatchObject({ kind: 'violation', qualification: 0x0an });
  });
  it('bit 7 set and bit 8 = 1 for the final translation, 0 for a guest paging-structure access', () => {
    expect(run({ gpa: 0x11000n, guestLinear: TRANSLATION }).result).toMatchObject({ qualification: 0x1a1n });
    expect(run({ gpa: 0x11000n, guestLinear: PAGING }).result).toMatchObject({ qualification: 0xa1n });
    expect(run({ gpa: 0x11000n }).result).toMatchObject({ qualification: 0x21n });
  });
  it('bits 11:9 (advanced information) only with IA32_VMX_EPT_VPID_CAP[22] and bit 8 = 1', () => {
    const attributes = { user: true, readWrite: true, executeDisable: true };
    const gl = { ...TRANSLATION, attributes };
    expect(run({ gpa: 0x11000n, guestLinear: gl }).result).toMatchObject({ qualification: 0xfa1n });
    expect(run({ gpa: 0x11000n, guestLinear: gl, caps: { eptVpidCap: CAP_ALL & ~CAP_ADV } }).result).toMatchObject({ qualification: 0x1a1n });
    expect(run({ gpa: 0x11000n, guestLinear: { ...PAGING, attributes } }).result).toMatchObject({ qualification: 0xa1n });
    const some = { ...TRANSLATION, attributes: { user: false, readWrite: true, executeDisable: false } };
    expect(run({ gpa: 0x11000n, guestLinear: some }).result).toMatchObject({ qualification: 0x5a1n });
  });
  it('bit 12 (NMI unblocking due to IRET) is the caller\'s', () => {
    expect(run({ gpa: 0x11000n, nmiUnblockingIret: true }).result).toMatchObject({ qualification: 0x1021n });
  });
});

describe('eptTranslate: execute-only and mode-based execute control', () => {
  it('execute-only with the capability: fetch allowed, read denied', () => {
    expect(run({ gpa: 0x11000n, access: fetch }).result).toMatchObject({ kind: 'ok', hpa: 0xa000n });
    expect(run({ gpa: 0x11000n }).result.kind).toBe('violation');
  });
  it('MBEC: bit 2 for supervisor-mode, bit 10 for user-mode linear addresses; bits 5 and 6 report both', () => {
    const user = { ...fetch, user: true };
    expect(run({ gpa: 0x12000n, access: user, mbec: true }).result).toMatchObject({ kind: 'ok', hpa: 0xb000n });
    // Supervisor fetch: X = 0 in the PTE; XU = 1 along the whole path.
    expect(run({ gpa: 0x12000n, access: fetch, mbec: true }).result).toMatchObject({ kind: 'violation', qualification: 0x4cn });
    // User fetch from the read/write page: neither X nor XU in the PTE.
    expect(run({ gpa: 0x10000n, access: user, mbec: true }).result).toMatchObject({ kind: 'violation', qualification: 0x1cn });
  });
  it('MBEC off: bit 10 is ignored, bit 6 is 0, user/supervisor makes no difference', () => {
    expect(run({ gpa: 0x12000n, access: { ...fetch, user: true } }).result).toMatchObject({ kind: 'violation', qualification: 0x0cn });
  });
  it('MBEC: an entry with only bit 10 set is present (user-execute only)', () => {
    expect(run({ gpa: 0x13000n, access: { ...fetch, user: true }, mbec: true }).result).toMatchObject({ kind: 'ok', hpa: 0xc000n });
    expect(run({ gpa: 0x13000n, access: fetch, mbec: true }).result).toMatchObject({ kind: 'violation', qualification: 0x44n });
    expect(run({ gpa: 0x13000n, access: { ...fetch, user: true } }).result).toMatchObject({ kind: 'violation', qualification: 0x4n });
  });
});

describe('eptTranslate: accessed and dirty flags', () => {
  it('EPTP bit 6 = 1: a read sets A in every entry used, no D', () => {
    const { result, mem, writes } = run({ gpa: 0x10000n, eptp: EPTP4 | AD_ON });
    expect(result.kind).toBe('ok');
    expect(writes.map(([a]) => a)).toEqual([PML4, PDPT, PD, PT + 0x80n]);
    expect(mem.get(PT + 0x80n)).toBe(0x9000n | R | W | WB | A);
    expect(mem.get(PD)).toBe(PT | RWX | XU | A);
  });
  it('a write sets D in the leaf only', () => {
    const { mem } = run({ gpa: 0x10000n, eptp: EPTP4 | AD_ON, access: write });
    expect(mem.get(PT + 0x80n)).toBe(0x9000n | R | W | WB | A | D);
    expect(mem.get(PD)).toBe(PT | RWX | XU | A);
    const big = run({ gpa: 0x4000_0000n, eptp: EPTP4 | AD_ON, access: write }).mem;
    expect(big.get(PDPT + 8n)).toBe(0xc000_0000n | RWX | WB | PS | A | D);
    expect(big.get(PML4)).toBe(PDPT | RWX | XU | A);
  });
  it('flags already set are not written again', () => {
    const m = tables();
    for (const a of [PML4, PDPT, PD]) m.set(a, m.get(a)! | A);
    m.set(PT + 0x80n, m.get(PT + 0x80n)! | A | D);
    expect(run({ gpa: 0x10000n, eptp: EPTP4 | AD_ON, access: write }, m).writes).toEqual([]);
  });
  it('EPTP bit 6 = 0: nothing is written, bits 8 and 9 are ignored', () => {
    expect(run({ gpa: 0x10000n, access: write }).writes).toEqual([]);
  });
  it('a violation or a misconfiguration sets no flag', () => {
    expect(run({ gpa: 0x20_0000n, eptp: EPTP4 | AD_ON, access: write }).writes).toEqual([]);
  });
  it('with A/D on, a guest paging-structure read is a write: it sets D, and on a read-only page it violates with bits 0 and 1', () => {
    const ok = run({ gpa: 0x10000n, eptp: EPTP4 | AD_ON, guestLinear: PAGING });
    expect(ok.mem.get(PT + 0x80n)).toBe(0x9000n | R | W | WB | A | D);
    expect(run({ gpa: 0x20_0000n, eptp: EPTP4 | AD_ON, guestLinear: PAGING }).result).toMatchObject({ kind: 'violation', qualification: 0xabn });
  });
  it('with A/D off, the same paging-structure read stays a read', () => {
    expect(run({ gpa: 0x20_0000n, guestLinear: PAGING }).result).toMatchObject({ kind: 'ok', hpa: 0x60_0000n });
  });
  it('a PDPTE load of MOV to CR (no guest linear address) stays a read even with A/D on', () => {
    const r = run({ gpa: 0x20_0000n, eptp: EPTP4 | AD_ON });
    expect(r.result.kind).toBe('ok');
    expect(r.mem.get(PD + 8n)).toBe(0x60_0000n | R | X | WB | IPAT | PS | A);
  });
});
