// Exercise 7.5 — the guest's serial output goes missing. fixMemoryType on the tutorial's quick map (the first 4 GiB
// WB, with and without "ignore PAT") on every model with EPT and both firmware boards, walked by the CPU's own EPT
// walker: the device pages (the MMIO UART, the APICs, the VGA hole, the ROM area) get their MTRR type in the largest
// page one type covers, "ignore PAT" clear, RAM stays WB, and every other address keeps its translation. Then
// serialFixPart runs a guest that prints through the MMIO UART at FEB00000H and executes CPUID after each store:
// the kit reads what the UART has transmitted at every exit, so each byte must arrive when it is written, in order,
// and the guest's read of the line status register must see the byte the kit queued (no stale status) — with the
// fix made in setup, and with the fix made while the guest runs (VMCALL), after the guest has already touched the
// page with the old type: then only an INVEPT makes the new type count.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { fixMemoryType, serialFixPart } from '#impl/07-mtrr/serial-output';
import {
  boardRuns, bootHost, EPT_MODELS, eptFacts, explainDevicePage, explainPa, hex, inspect, kitMap, kitState, kitType, mtrrRuns,
  quickMap, runSerial, typeName, type Host, type MtrrState, type SerialRun,
} from './support.ts';

const UART = 0xfeb00000n;
const IGNORE_PAT = 1n << 6n;
const TYPE_RULE = 'SDM Vol. 3C, "EPT and Memory Typing": under EPT the MTRRs are not consulted for guest accesses; the EPT memory type (leaf bits 5:3) takes the MTRR type\'s place, combined with the guest\'s PAT type unless "ignore PAT" (bit 6) is set — a device page needs the MTRR type (UC) there, with bit 6 clear';
const SPLIT_RULE = 'SDM Vol. 3A, "Large Page Size Considerations": a page must lie in one MTRR type; where the page that maps the device holds more than one, split it (1 GByte → 2 MBytes → 4 KBytes) and give the part that holds the device its type';
const KEEP_RULE = 'a split keeps the address, permissions and memory type of the page it splits in every new entry (a zeroed table means memory type 0, UC, and pages that vanish): only the page you fix changes';
const DEVICE_RULE = 'A device does not snoop the processor\'s caches: under WB a store to THR (offset 0) stays in a dirty cache line and a read of LSR (offset 5) hits a cached copy; under UC every access reaches the UART, in order. src/machine/memtype/README.md';
const INVEPT_RULE = 'SDM Vol. 3C, "Invalidating Cached Translation Information": the processor may keep using a cached guest-physical or combined mapping, with the memory type it was filled with, after the EPT entry changes, until INVEPT';
const SIZE: Record<string, string> = { [String(1n << 30n)]: '1 GByte', [String(1n << 21n)]: '2 MBytes', [String(4096n)]: '4 KBytes' };
const size = (n: bigint): string => SIZE[String(n)] ?? `${hex(n)} bytes`;

/** The largest page, not above `leaf`, that holds `gpa` and lies in one MTRR type. */
function expectedPage(s: MtrrState, leaf: bigint, gpa: bigint): bigint {
  for (let z = leaf; z > 4096n; z >>= 9n) if (mtrrRuns(s, gpa & ~(z - 1n), z).length === 1) return z;
  return 4096n;
}

/** What a fresh walk finds for `gpa`, as one comparable string. */
function walk(host: Host, eptp: bigint, gpa: bigint): string {
  const { result } = inspect(host, eptp, gpa);
  if (result.kind !== 'mapped') return result.kind;
  return `${hex(result.hpa)} ${result.readable ? 'R' : '-'}${result.writable ? 'W' : '-'}${result.executable ? 'X' : '-'} ${result.memoryType}${result.ignorePat ? ' ignore-PAT' : ''}`;
}

const DEVICE_PAGES: readonly [bigint, string][] = [
  [UART, 'the MMIO UART'], [0xfec00000n, 'the I/O APIC'], [0xfee00000n, 'the local APIC'], [0xa0000n, 'the VGA hole'],
  [0xb8000n, 'the VGA text buffer'], [0xc0000n, 'the option-ROM area'], [0x200000n, 'RAM (must stay WB)'],
];

function checkFixes(host: Host, what: string, extraLeafBits: bigint): void {
  const k = host.kernel;
  const s = kitState(host);
  const map = kitMap(s);
  const q = quickMap(host, extraLeafBits);
  const eptp = q.pml4 | 6n | (3n << 3n);
  const tables = { pml4: q.pml4, pages: [...q.pages] };
  const free = k.pages.freeCount() + q.pages.length;
  for (const [gpa, name] of DEVICE_PAGES) {
    const before = inspect(host, eptp, gpa);
    if (before.result.kind !== 'mapped') throw new Error(`kit bug: the quick map does not map ${hex(gpa)}`);
    const leafBefore = BigInt(before.result.pageSize);
    const leafBase = gpa & ~(leafBefore - 1n);
    // Addresses in the page that maps the device (some of which a split moves to other entries), and elsewhere.
    const others = fc.sample(fc.bigInt({ min: 0n, max: leafBefore - 1n }), { numRuns: 24, seed: Number(gpa >> 12n) }).map((d) => leafBase + d)
      .concat(fc.sample(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), { numRuns: 12, seed: 7 }));
    const snapshot = new Map(others.map((a) => [a, walk(host, eptp, a)]));
    const r = fixMemoryType(k, tables, map, gpa);
    const where = `${what}: fixMemoryType(${hex(gpa)}, ${name}) on the quick map (4 GiB, every leaf WB${extraLeafBits !== 0n ? ' with "ignore PAT"' : ''}, ${size(q.pageSize)} pages)`;
    expect(r.ok ? 'ok' : r.error, `${where} should succeed`).toBe('ok');
    if (!r.ok) return;
    const { result, text } = inspect(host, eptp, gpa);
    const mtrr = kitType(s, gpa);
    const want = mtrr === 'undefined' ? 'UC' : typeName(mtrr);
    const msg = `${where}: the walk now finds\n${text}\nThe MTRRs say:\n${explainPa(s, gpa)}\n`;
    expect(result.kind, `${msg}the page must stay mapped`).toBe('mapped');
    if (result.kind !== 'mapped') return;
    expect([hex(result.hpa), result.readable, result.writable, result.executable], `${msg}the translation and permissions must not change: identity, RWX`).toEqual([hex(gpa), true, true, true]);
    expect(result.memoryType, `${msg}the leaf's memory type (bits 5:3) must be the MTRR type of this address, ${want}. ${TYPE_RULE}`).toBe(want);
    expect(result.ignorePat, `${msg}"ignore PAT" (bit 6) must be 0 after the fix, even where the quick map set it. ${TYPE_RULE}`).toBe(false);
    const page = expectedPage(s, leafBefore, gpa);
    const pageSize = BigInt(result.pageSize);
    expect(size(pageSize), `${msg}the page that now maps ${hex(gpa)} should be ${size(page)}: the quick map had a ${size(leafBefore)} page here; ${page === leafBefore ? 'one MTRR type covers all of it, so no split' : 'it holds more than one MTRR type, so split it down to the largest page one type covers'}. ${SPLIT_RULE}`).toBe(size(page));
    expect(hex(r.pageSize), `${where}: the result's pageSize should be the size of the page that now maps the address`).toBe(hex(pageSize));
    expect(hex(k.read64(r.slot) & ~0xfffn), `${where}: the result's slot should be the kernel address of the leaf that maps ${hex(gpa)} (it holds ${hex(k.read64(r.slot))})`).toBe(hex(gpa & ~(pageSize - 1n)));
    const fixedBase = gpa & ~(pageSize - 1n);
    for (const [a, was] of snapshot) {
      if (a >= fixedBase && a < fixedBase + pageSize) continue;
      expect(walk(host, eptp, a), `${where}: guest-physical ${hex(a)} lies outside the page you fixed (${hex(fixedBase)}, ${size(pageSize)}); it must keep its translation, permissions and type:\n${inspect(host, eptp, a).text}\n${KEEP_RULE}`).toBe(was);
    }
  }
  for (const va of tables.pages) k.free_page(va);
  expect(k.pages.freeCount(), `${what}: every table a split allocates must be listed in tables.pages (chapter 6's allocEptTable does it), so the hypervisor can free them`).toBe(free);
}

describe('fixMemoryType', () => {
  test.each(boardRuns(EPT_MODELS))('%s, board %s: the device pages of the quick map get their MTRR type, RAM stays WB, nothing else changes', (model, board) => {
    checkFixes(bootHost({ model, board, ramMiB: 64 }), `${model}, board ${board}`, 0n);
  });
  test.each([['skylake-i5-6300u', 'pc'], ['icelake-i5-1035g1', 'surface-book-3'], ['ivybridge-i5-3320m', 'pc']] as const)('%s, board %s, the quick map with "ignore PAT" in every leaf: cleared where you fix', (model, board) => {
    checkFixes(bootHost({ model, board, ramMiB: 64 }), `${model}, board ${board}`, IGNORE_PAT);
  });
});

// The guest: like firmware, it maps the MMIO hole with PAT entry 0 (WB) and relies on the MTRRs to make it UC. It
// waits for LSR.THRE before each byte, stores it to THR, and executes CPUID (a kit exit that records what the UART
// has sent); then it reads LSR once more, and if a byte was received (LSR.DR) reads it from RBR and echoes it.
const PRINT = `
        lea rsi, [message]
next:   movzx eax, byte [rsi]
        test al, al
        jz done
wait:   mov dl, [rdi + 5]
        test dl, 0x20
        jz wait
        mov [rdi], al
        cpuid
        inc rsi
        jmp next
done:   mov al, [rdi + 5]
        mov [lsr], al
        test al, 1
        jz quiet
        mov al, [rdi]
        mov [rx], al
        mov [rdi], al
        cpuid
quiet:  hlt
align 8
lsr:    dq 0
rx:     dq 0
message: db 'Hello, VMX', 13, 10, 0
`;
const MESSAGE = 'Hello, VMX\r\n';
const KEY = 'k';
const PRINTS = `bits 64\ndefault rel\n        mov rdi, ${UART}\n${PRINT}`;
/** The guest probes the UART (one LSR read: under WB a line fill) and announces the page with VMCALL before it prints. */
const PROBES_THEN_PRINTS = `bits 64\ndefault rel\n        mov rdi, ${UART}\n        mov al, [rdi + 5]\n        mov rbx, rdi\n        vmcall\n${PRINT}`;

function checkRun(run: SerialRun, what: string, extra: string): void {
  const s = kitState(run.host);
  const ept = inspect(run.host, run.eptp, UART);
  const why = (m: string) => run.why(`${what}: ${m}\nYour EPT now, for the UART (a fresh walk: what a cached mapping may not show yet):\n${ept.text}\nThe MTRRs say:\n${explainPa(s, UART)}`);
  expect(run.outcome, why('the guest should reach its HLT')).toBe('the guest ran to its HLT');
  const text = (bytes: readonly number[]) => String.fromCharCode(...bytes);
  const got = run.exits.filter((e) => e.reason === 10).map((e) => text(e.received));
  const want = [...MESSAGE].map((_, i) => MESSAGE.slice(0, i + 1)).concat([MESSAGE + KEY]);
  expect(got, why(`at the CPUID right after each store to THR, the UART must have sent every byte so far, in order — ${JSON.stringify(want.slice(0, 3))}, … — not only after a WBINVD. ${extra}${DEVICE_RULE}`)).toEqual(want);
  expect(hex(run.qword('lsr') & 0x21n), why(`the guest's last LSR read (${hex(run.qword('lsr'))}) must show DR (bit 0: the kit queued '${KEY}') and THRE (bit 5): a stale cached LSR says no byte arrived. ${DEVICE_RULE}`)).toBe('0x21');
  expect(text([Number(run.qword('rx'))]), why(`RBR must return the queued byte '${KEY}' (a WB line fill reads RBR and swallows it). ${DEVICE_RULE}`)).toBe(KEY);
  const device = explainDevicePage(run.host.machine.cpus[0]!, UART).join('\n');
  expect(device.split('\n')[0], why(`explainDevicePage: every access to the UART page must use UC. ${TYPE_RULE}`)).toBe('memory type of guest-physical 0xFEB00000: UC');
  expect(ept.result.kind === 'mapped' ? `${ept.result.memoryType}${ept.result.ignorePat ? ' ignore-PAT' : ''}` : ept.result.kind, why(`the EPT leaf for the UART: the MTRR type UC, "ignore PAT" clear. ${TYPE_RULE}`)).toBe('UC');
  const codePage = (run.exits[0]?.rip ?? 0n) & ~0xfffn;
  const code = inspect(run.host, run.eptp, codePage);
  expect(code.result.kind === 'mapped' ? code.result.memoryType : code.result.kind, why(`the guest's code page ${hex(codePage)} is RAM and must stay WB (only the device pages are wrong in the quick map; UC RAM works but runs many times slower):\n${code.text}`)).toBe(typeName(kitType(s, codePage)));
  expect(run.freeAfterRelease, why('release() must free every EPT table page setup and the fix allocated')).toBe(run.freeBeforeSetup);
}

describe('serialFixPart: the guest\'s serial output', () => {
  test.each(boardRuns(EPT_MODELS))('%s, board %s: the UART page fixed in setup — every byte arrives when it is written, LSR is fresh', (model, board) => {
    const run = runSerial({ model, board, part: serialFixPart(), source: PRINTS, input: KEY });
    checkRun(run, `${model}, board ${board}, serialFixPart() (the UART page fixed in setup)`, '');
  });
  test.each(boardRuns(EPT_MODELS))('%s, board %s: fixed while the guest runs (VMCALL), after it touched the page as WB — INVEPT makes UC count', (model, board) => {
    const run = runSerial({ model, board, part: serialFixPart({ devicePages: [] }), source: PROBES_THEN_PRINTS, input: KEY, inputOn: 18 });
    const call = run.exits.find((e) => e.reason === 18);
    expect(call === undefined ? 'no VMCALL exit' : call.then, run.why('the guest\'s VMCALL (RBX = FEB00000H) should be handled with a skip')).toBe('your handler: skip');
    checkRun(run, `${model}, board ${board}, serialFixPart({ devicePages: [] }) (nothing fixed in setup; the VMCALL handler fixes FEB00000H after the guest read LSR through the WB mapping)`, `If the EPT leaf below says UC but explainDevicePage says WB, the processor is still using the mapping it cached before the fix. ${INVEPT_RULE}. `);
  });
});
