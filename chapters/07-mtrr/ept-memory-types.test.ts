// Exercise 7.3 — the identity map with the MTRRs' memory types. buildMtrrIdentityMap on every model with EPT and on
// both firmware boards, walked by the CPU's own EPT walker (src/vmx/ept/inspect.ts) at every MTRR edge of the first
// 4 GiB and at random guest-physical addresses: identity, RWX, the MTRR type of that address with "ignore PAT"
// clear, the largest page one type covers — and a guest access then gets the type it would get on bare metal, for
// every PAT entry (src/vmx/ept/memory-type.ts against src/machine/memtype/memory-type.ts). Then a guest runs under
// mtrrEptPart with no EPT exit.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { buildMtrrIdentityMap, eptMemoryTypeBits, mtrrEptPart } from '#impl/07-mtrr/ept-memory-types';
import { resolveMemoryType as kitResolve } from '../../src/machine/memtype/memory-type.ts';
import { PAT_POWER_UP } from '../../src/machine/memtype/pat.ts';
import { guestMemoryType } from '../../src/vmx/ept/memory-type.ts';
import {
  boardRuns, bootHost, edges, EPT_MODELS, eptFacts, eptpRefusal, explainPa, hex, inspect, kitMap, kitState, kitType, mtrrRuns,
  runPart, typeName, type Host, type MtrrState,
} from './support.ts';

const GiB = 1n << 30n, MiB = 1n << 20n, FOUR_GIB = 1n << 32n;
const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const TYPE_RULE = 'SDM Vol. 3C, "EPT and Memory Typing": under EPT the MTRRs are not consulted for guest accesses; the EPT memory type (leaf bits 5:3) takes the MTRR type\'s place and is combined with the guest\'s PAT type unless "ignore PAT" (bit 6) is set — so each leaf must hold the type the MTRRs give its range, with bit 6 clear';
const SPLIT_RULE = 'SDM Vol. 3A, "Large Page Size Considerations": a page must lie in one MTRR type; use the largest page (1 GByte if IA32_VMX_EPT_VPID_CAP[17], 2 MBytes if bit 16) that one type covers, and split the others';
const SIZE: Record<string, string> = { [String(GiB)]: '1 GByte', [String(2n * MiB)]: '2 MBytes', [String(4096n)]: '4 KBytes' };

/** The largest page the capability allows that one MTRR type covers at `gpa`. */
function expectedPage(s: MtrrState, cap: bigint, gpa: bigint): bigint {
  const sizes = [GiB, 2n * MiB, 4096n].filter((z) => (z === GiB ? bit(cap, 17) : z === 2n * MiB ? bit(cap, 16) : true));
  return sizes.find((z) => mtrrRuns(s, gpa & ~(z - 1n), z).length === 1) ?? 4096n;
}

function checkMap(host: Host, what: string, clearCap = 0n, bytes = FOUR_GIB): void {
  const k = host.kernel;
  const s = kitState(host);
  const cap = eptFacts(host).cap & ~clearCap;
  const free = k.pages.freeCount();
  const r = buildMtrrIdentityMap(k, cap, kitMap(s), bytes);
  expect(r.ok ? 'ok' : r.error, `${what}: buildMtrrIdentityMap(cap ${hex(cap)}, the kit's MTRR map, ${hex(bytes)} bytes) should succeed`).toBe('ok');
  if (!r.ok) return;
  const eptp = r.tables.pml4 | 6n | (3n << 3n);
  const lp = host.machine.cpus[0]!;
  const check = (gpa: bigint): void => {
    const { result, text } = inspect(host, eptp, gpa);
    const mtrr = kitType(s, gpa);
    const where = `${what}: guest-physical ${hex(gpa)} under EPTP ${hex(eptp)}:\n${text}\nThe MTRRs say:\n${explainPa(s, gpa)}\n`;
    expect(result.kind, `${where}expected it mapped: the identity map covers [0, ${hex(bytes)})`).toBe('mapped');
    if (result.kind !== 'mapped') return;
    expect(hex(result.hpa), `${where}identity map: host-physical = guest-physical`).toBe(hex(gpa));
    expect([result.readable, result.writable, result.executable], `${where}R, W and X in every entry of the walk`).toEqual([true, true, true]);
    expect(result.memoryType, `${where}the leaf's memory type (bits 5:3) must be the MTRR type of this address, ${typeName(mtrr)}. ${TYPE_RULE}`).toBe(mtrr === 'undefined' ? 'UC' : typeName(mtrr));
    expect(result.ignorePat, `${where}"ignore PAT" (bit 6) must be 0: the guest's own PAT choice (a UC mapping of its device) must still count. ${TYPE_RULE}`).toBe(false);
    const page = expectedPage(s, cap, gpa);
    expect(SIZE[String(result.pageSize)] ?? `${result.pageSize} bytes`, `${where}the page here should be ${SIZE[String(page)]}: ${page > 4096n ? 'one MTRR type covers it' : 'no larger page lies in one MTRR type'}. ${SPLIT_RULE}`).toBe(SIZE[String(page)]);
    // The guest's view: the type it would have on bare metal, for each PAT entry it may select.
    for (let index = 0; index < 8; index++) {
      const leaf = (gpa & ~0xfffn) | 1n | ((index & 1) !== 0 ? 1n << 3n : 0n) | ((index & 2) !== 0 ? 1n << 4n : 0n) | ((index & 4) !== 0 ? 1n << 7n : 0n);
      const paging = { leaf, largePage: false, pat: PAT_POWER_UP };
      const bare = kitResolve({ pa: gpa, cr0Cd: false, mtrrs: s, paging });
      const g = guestMemoryType({ ept: { eptp, gpa, caps: { eptVpidCap: eptFacts(host).cap }, maxPhysAddr: lp.maxPhysAddr, mbec: false, readPhys64: (pa) => lp.memory.read64(Number(pa)) }, cr0Cd: false, paging });
      const got = g.kind === 'mapped' ? String(g.decision.type) : 'not mapped';
      expect(got, `${where}a guest access through PAT entry ${index} (IA32_PAT ${hex(PAT_POWER_UP, 16)}): under your EPT it gets ${got}, on bare metal ${String(bare.type)}:\n${g.lines.join('\n')}\n${TYPE_RULE}`).toBe(String(bare.type));
    }
  };
  const specials = [0n, 0x9f000n, 0xa0000n, 0xb8000n, 0xbf000n, 0xc0000n, 0xf0000n, 0xff000n, 0x100000n, 0x1ff000n, 0x200000n,
    BigInt(k.ramBytes) - 4096n, 0x91000000n, 0xbffff000n, 0xc0000000n, 0xfeb00000n, 0xfec00000n, 0xfee00000n, 0xfffff000n];
  for (const gpa of [...specials, ...edges(s, FOUR_GIB)].filter((a) => a < bytes)) check(gpa);
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: bytes - 1n }), (gpa) => check(gpa)), { numRuns: 40 });
  for (const va of r.tables.pages) k.free_page(va);
  expect(k.pages.freeCount(), `${what}: tables.pages must list every table page the map allocated (chapter 6's allocEptTable records them), so freeEptTables can return them all (free pages before: ${free})`).toBe(free);
}

describe('eptMemoryTypeBits', () => {
  test('bits 5:3 of the leaf: the type << 3; an undefined MTRR type as UC', () => {
    for (const t of [0, 1, 4, 5, 6]) expect(hex(eptMemoryTypeBits(t)), `MTRR type ${typeName(t)} (${t}) goes in leaf bits 5:3: ${hex(BigInt(t) << 3n)}. ${TYPE_RULE}`).toBe(hex(BigInt(t) << 3n));
    expect(hex(eptMemoryTypeBits('undefined')), 'where overlapping MTRRs leave the type undefined, map UC (0): it cannot lose a device\'s reads or writes').toBe('0x0');
  });
});

describe('buildMtrrIdentityMap', () => {
  test.each(boardRuns(EPT_MODELS))('%s, board %s: every guest-physical address of the first 4 GiB has its MTRR type, in the largest page one type covers', (model, board) => {
    checkMap(bootHost({ model, board, ramMiB: 64 }), `${model}, board ${board}`);
  });
  test('without 1-GByte pages (cap bit 17 cleared): 2-MByte pages where one type covers them', () => {
    checkMap(bootHost({ model: 'icelake-i5-1035g1', board: 'surface-book-3', ramMiB: 64 }), 'icelake-i5-1035g1, board surface-book-3, IA32_VMX_EPT_VPID_CAP bit 17 cleared', 1n << 17n);
  });
  test('without large pages (cap bits 17 and 16 cleared): 4-KByte pages, the first 16 MiB', () => {
    checkMap(bootHost({ model: 'skylake-i5-6300u', ramMiB: 64 }), 'skylake-i5-6300u, board pc, IA32_VMX_EPT_VPID_CAP bits 17 and 16 cleared', (1n << 17n) | (1n << 16n), 16n * MiB);
  });
});

const GUEST = `
bits 64
default rel
        mov qword [value], 0x1234
        mov rax, [value]
        add rax, 1
        mov [value], rax
        hlt
align 8
value:  dq 0
`;

describe('mtrrEptPart: the guest runs under EPT with the MTRR types', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: "enable EPT", EPT_POINTER, no EPT exit; the APICs, the MMIO UART and the VGA hole UC, RAM WB', (model) => {
    const run = runPart({ model, part: mtrrEptPart(), source: GUEST });
    const eptp = run.field('EPT_POINTER');
    expect(bit(run.field('SECONDARY_VM_EXEC_CONTROL'), 1), run.why('SECONDARY_VM_EXEC_CONTROL bit 1 ("enable EPT") must be 1')).toBe(true);
    expect(eptpRefusal(run.host, eptp), run.why(`EPT_POINTER ${hex(eptp)} must be one VM entry accepts`)).toBe(null);
    const exits = run.exits.filter((e) => e.reason === 48 || e.reason === 49).map((e) => `reason ${e.reason} at RIP ${hex(e.rip)}`);
    expect(exits, run.why('with the first 4 GiB mapped read/write/execute, the guest causes no EPT violation (48) or misconfiguration (49)')).toEqual([]);
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    expect(hex(run.qword('value')), run.why('the guest wrote 1234H then 1235H through your EPT')).toBe('0x1235');
    const s = kitState(run.host);
    for (const gpa of [0xfee00000n, 0xfec00000n, 0xfeb00000n, 0xa0000n, run.guest.rip & ~0xfffn]) {
      const { result, text } = inspect(run.host, eptp, gpa);
      const want = typeName(kitType(s, gpa));
      expect(result.kind === 'mapped' ? result.memoryType : 'not mapped', run.why(`guest-physical ${hex(gpa)} under EPT_POINTER:\n${text}\nThe MTRRs say ${want}:\n${explainPa(s, gpa)}\n${TYPE_RULE}`)).toBe(want);
    }
    expect(run.freeAfterRelease, run.why('release() must free every EPT table page setup allocated')).toBe(run.freeBeforeSetup);
  });
});
