// Exercise 6.2 — the identity map and the part that enables EPT. largestEptPage for random capabilities; the map
// your buildIdentityMap writes, walked by the CPU's own EPT walker (src/vmx/ept/inspect.ts) at random guest-physical
// addresses on every model with EPT; tables from the page allocator only (vmalloc is watched); then a guest runs
// under your EPT with no EPT exit at all.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { buildIdentityMap, eptIdentityPart, freeEptTables, largestEptPage } from '#impl/06-ept/identity-map';
import { bootHost, EPT_MODELS, EPTP_RULE, eptFacts, eptpRefusal, hex, inspect, runPart } from './support.ts';

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const SIZE_NAME: Record<string, string> = { [String(1n << 30n)]: '1 GByte', [String(1n << 21n)]: '2 MBytes', [String(1n << 12n)]: '4 KBytes' };
const PAGE_RULE = 'SDM Vol. 3C, "EPT Translation Mechanism": a PDPTE may map a 1-GByte page (bit 7 = 1) only if IA32_VMX_EPT_VPID_CAP[17] = 1, a PDE a 2-MByte page only if bit 16 = 1; otherwise bit 7 set is an EPT misconfiguration';

describe('largestEptPage', () => {
  test('1 GByte if cap bit 17, else 2 MBytes if bit 16, else 4 KBytes', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (cap) => {
      const want = bit(cap, 17) ? 1n << 30n : bit(cap, 16) ? 1n << 21n : 1n << 12n;
      const got = largestEptPage(cap);
      expect(hex(got), `IA32_VMX_EPT_VPID_CAP ${hex(cap)} (bit 17 ${bit(cap, 17) ? 1 : 0}, bit 16 ${bit(cap, 16) ? 1 : 0}): expected ${SIZE_NAME[String(want)]}. ${PAGE_RULE}`).toBe(hex(want));
    }));
  });
});

/** Build the map on `model` (cap bits optionally cleared), with vmalloc watched; walk it at random addresses. */
function checkMap(model: string, clearCap: bigint, bytes: (ram: bigint) => bigint): void {
  const host = bootHost({ model });
  const k = host.kernel;
  const facts = eptFacts(host);
  const cap = facts.cap & ~clearCap;
  let vmallocs = 0;
  const vmalloc = k.vmalloc.bind(k);
  k.vmalloc = (size: number) => { vmallocs++; return vmalloc(size); };
  const free = k.pages.freeCount();
  const size = bytes(BigInt(k.ramBytes));
  const r = buildIdentityMap(k, cap, size);
  k.vmalloc = vmalloc;
  expect(r.ok, `${model}: buildIdentityMap(cap ${hex(cap)}, ${hex(size)} bytes) should succeed: got ${r.ok ? 'ok' : r.error}`).toBe(true);
  if (!r.ok) return;
  expect(vmallocs, `${model}: EPT paging structures must be physically contiguous pages (get_zeroed_page / alloc_pages): vmalloc was called ${vmallocs} time(s) — virt_to_phys of vmalloc memory is meaningless, and the processor reads the tables by physical address`).toBe(0);
  expect(r.tables.pml4 & 0xfffn, `${model}: the PML4 address ${hex(r.tables.pml4)} must be 4-KByte aligned (it becomes EPTP bits 51:12)`).toBe(0n);
  expect(hex(k.virt_to_phys(r.tables.pages[0] ?? 0n)), `${model}: tables.pages[0] should be the kernel address of the PML4 table`).toBe(hex(r.tables.pml4));
  const page = largestEptPage(cap);
  expect(hex(r.pageSize), `${model}: pageSize should be the largest the model allows, ${SIZE_NAME[String(page)]}. ${PAGE_RULE}`).toBe(hex(page));
  const eptp = r.tables.pml4 | 6n | (3n << 3n);
  const gpas = fc.oneof(fc.bigInt({ min: 0n, max: size - 1n }), fc.constantFrom(0n, size - 1n, size / 2n, (size - 1n) & ~0xfffn));
  fc.assert(fc.property(gpas, (gpa) => {
    const { result, text } = inspect(host, eptp, gpa);
    const where = `${model}: guest-physical ${hex(gpa)} under EPTP ${hex(eptp)}:\n${text}\n`;
    expect(result.kind, `${where}expected it mapped (read/write/execute, WB, ${SIZE_NAME[String(page)]} page)`).toBe('mapped');
    if (result.kind !== 'mapped') return;
    expect(hex(result.hpa), `${where}identity map: host-physical = guest-physical`).toBe(hex(gpa));
    expect([result.readable, result.writable, result.executable], `${where}bits 0, 1, 2 (R, W, X) must be set in every entry of the walk: the permissions are the AND over the entries`).toEqual([true, true, true]);
    expect(result.memoryType, `${where}leaf bits 5:3 = 6 (WB); chapter 7 takes the type from the MTRRs`).toBe('WB');
    expect(hex(result.pageSize), `${where}largest page the model allows. ${PAGE_RULE}`).toBe(hex(page));
  }), { numRuns: 60 });
  const beyond = ((size + page - 1n) / page) * page;
  const out = inspect(host, eptp, beyond);
  expect(out.result.kind, `${model}: guest-physical ${hex(beyond)}, past the mapped memory (${hex(size)} bytes rounded up to a ${SIZE_NAME[String(page)]} page), should not be mapped:\n${out.text}`).not.toBe('mapped');
  freeEptTables(k, r.tables);
  expect(k.pages.freeCount(), `${model}: freeEptTables should return every table page (free pages before: ${free})`).toBe(free);
}

describe('buildIdentityMap', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: all of RAM, identity, RWX, WB, the largest pages; page-allocator tables', (model) => {
    checkMap(model, 0n, (ram) => ram);
  });
  test('without 1-GByte pages (cap bit 17 cleared): 2-MByte pages', () => {
    checkMap('skylake-i5-6300u', 1n << 17n, (ram) => ram);
  });
  test('without 1-GByte and 2-MByte pages (cap bits 17 and 16 cleared): 4-KByte pages, and a size that is not a multiple of 2 MBytes', () => {
    checkMap('skylake-i5-6300u', (1n << 17n) | (1n << 16n), () => 0x1234000n);
  });
  test('more than 1 GByte, not a multiple of the page size (several PDPTEs, the last page past the end)', () => {
    checkMap('skylake-i5-6300u', 0n, () => (3n << 30n) + 0x5000n);
    checkMap('ivybridge-i5-3320m', 0n, () => (3n << 30n) + 0x5000n);
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

describe('eptIdentityPart: the guest runs under your EPT', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: "enable EPT", EPT_POINTER, no EPT exit, the guest\'s writes land', (model) => {
    const part = eptIdentityPart();
    const run = runPart({ model, part, source: GUEST });
    const proc2 = run.field('SECONDARY_VM_EXEC_CONTROL');
    expect(bit(proc2, 1), run.why(`SECONDARY_VM_EXEC_CONTROL ${hex(proc2)}: bit 1 ("enable EPT") must be 1 — ask for it in the part's controls (proc2)`)).toBe(true);
    const eptp = run.field('EPT_POINTER');
    expect(eptpRefusal(run.host, eptp), run.why(`EPT_POINTER ${hex(eptp)}. ${EPTP_RULE}`)).toBe(null);
    const exits = run.exits.filter((e) => e.reason === 48 || e.reason === 49).map((e) => `reason ${e.reason} at RIP ${hex(e.rip)}`);
    expect(exits, run.why('with all of RAM mapped read/write/execute, the guest causes no EPT violation (48) or misconfiguration (49)')).toEqual([]);
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    expect(hex(run.qword('value')), run.why('the guest wrote 1234H then 1235H through EPT: identity-mapped, the host sees it at the same physical address')).toBe('0x1235');
    const { cap } = eptFacts(run.host);
    const code = inspect(run.host, eptp, run.guest.rip);
    expect(hex(code.result.kind === 'mapped' ? code.result.pageSize : 0), run.why(`the guest's code page, walked under EPT_POINTER:\n${code.text}\n${PAGE_RULE}`)).toBe(hex(largestEptPage(cap)));
    expect(run.freeAfterRelease, run.why('release() must free every EPT table page setup allocated')).toBe(run.freeBeforeSetup);
  });
});
