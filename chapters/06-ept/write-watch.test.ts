// Exercise 6.4 — a write-watched page and INVEPT. inveptType for random capabilities (fast-check, fixed seed) and
// the descriptor; splitToPte walked by the CPU's EPT walker; then your write-watch part on every model with EPT: a
// guest reads the page (no exit), writes it (exit 48, logged, let through), writes again (no exit), asks for
// re-protection with VMCALL, and writes once more — caught only if the re-protection was followed by INVEPT.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { inveptDescriptor, inveptType, splitToPte, writeWatchPart } from '#impl/06-ept/write-watch';
import { bootHost, EPT_MODELS, hex, inspect, kitIdentityMap, runPart } from './support.ts';

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const INVEPT_RULE = 'SDM Vol. 3C, "INVEPT— Invalidate Translations Derived from EPT": type 1 single-context (IA32_VMX_EPT_VPID_CAP[25]), type 2 all-context (bit 26); ' +
  'a type the processor does not support fails with VMfailValid, VM-instruction error 28 (invalid operand to INVEPT/INVVPID); without bit 20 INVEPT is #UD';
const CACHE_RULE = 'SDM Vol. 3C, "Invalidating Cached Translation Information": the processor may keep using a cached guest-physical mapping after the EPT entry changes, until INVEPT (MOV to CR3 does not invalidate it)';

describe('inveptType and the INVEPT descriptor', () => {
  test('single-context if bit 25, else all-context if bit 26, else an error naming error 28', () => {
    const caps = fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([i, s, a, noise]) =>
      (noise & ~((1n << 20n) | (1n << 25n) | (1n << 26n))) | (i ? 1n << 20n : 0n) | (s ? 1n << 25n : 0n) | (a ? 1n << 26n : 0n));
    fc.assert(fc.property(caps, (cap) => {
      const want = !bit(cap, 20) ? null : bit(cap, 25) ? 1n : bit(cap, 26) ? 2n : null;
      const r = inveptType(cap);
      const what = `IA32_VMX_EPT_VPID_CAP ${hex(cap)} (bit 20 INVEPT ${bit(cap, 20) ? 1 : 0}, bit 25 single ${bit(cap, 25) ? 1 : 0}, bit 26 all ${bit(cap, 26) ? 1 : 0})`;
      expect(r.ok ? `type ${r.type}` : 'error', `${what}. ${INVEPT_RULE}`).toBe(want === null ? 'error' : `type ${want}`);
      if (!r.ok && bit(cap, 20)) expect(r.error, `${what}: the error should say that INVEPT would fail with error 28`).toMatch(/\b28\b/);
    }));
  });
  test('descriptor: bits 63:0 the EPTP, bits 127:64 reserved (0)', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (eptp) => {
      const [low, high] = inveptDescriptor(eptp);
      expect([hex(low), hex(high)], `INVEPT descriptor for EPTP ${hex(eptp)}: [bits 63:0, bits 127:64]. SDM Vol. 3C, "INVEPT— Invalidate Translations Derived from EPT" (figure "INVEPT Descriptor")`).toEqual([hex(eptp), '0x0']);
    }));
  });
});

describe('splitToPte', () => {
  test.each([['skylake-i5-6300u', '1-GByte', 1n << 30n], ['ivybridge-i5-3320m', '2-MByte', 1n << 21n]] as const)('%s: a %s page split down to one 4-KByte PTE; the neighbours unchanged', (model, _name, large) => {
    const host = bootHost({ model });
    const k = host.kernel;
    const tables = kitIdentityMap(k, large, BigInt(k.ramBytes));
    const eptp = tables.pml4 | 6n | (3n << 3n);
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: BigInt(k.ramBytes) - 1n }), fc.bigInt({ min: 0n, max: (1n << 21n) - 1n }), (gpa, delta) => {
      const pte = splitToPte(k, tables, gpa);
      expect(pte, `${model}: splitToPte(${hex(gpa)}) should return the kernel address of the PTE`).not.toBe(null);
      const w = inspect(host, eptp, gpa);
      expect(w.result.kind === 'mapped' ? `${hex(w.result.hpa)} ${hex(w.result.pageSize)} ${w.result.readable}${w.result.writable}${w.result.executable} ${w.result.memoryType}` : w.text,
        `${model}: after the split, ${hex(gpa)} is a 4-KByte page, still identity, RWX, WB:\n${w.text}`).toBe(`${hex(gpa)} 0x1000 truetruetrue WB`);
      const pteValue = k.read64(pte ?? 0n);
      expect(hex(pteValue & ~0xfffn), `${model}: the entry at the address splitToPte returned should be the PTE that maps ${hex(gpa & ~0xfffn)} (value ${hex(pteValue)})`).toBe(hex(gpa & ~0xfffn));
      const n = (gpa & ~(large - 1n)) + (delta % large);
      const nw = inspect(host, eptp, n);
      expect(nw.result.kind === 'mapped' ? `${hex(nw.result.hpa)} ${nw.result.readable}${nw.result.writable}${nw.result.executable} ${nw.result.memoryType}` : nw.text,
        `${model}: ${hex(n)}, in the same former ${hex(large)}-byte page, keeps its identity mapping, permissions and memory type:\n${nw.text}`).toBe(`${hex(n)} truetruetrue WB`);
    }), { numRuns: 25 });
  });
});

const GUEST = `
bits 64
default rel
        lea rbx, [watched]
        mov rax, [rbx]                  ; a read: the page stays readable
w1:     mov qword [rbx], 0x11           ; caught (exit 48), let through
w2:     mov qword [rbx + 8], 0x22       ; writable now: no exit
        vmcall                          ; re-protect, please
w3:     mov qword [rbx + 16], 0x33      ; caught again — only after INVEPT
        hlt
align 4096
watched: dq 0, 0, 0
`;

describe('writeWatchPart', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: read (no exit), write (48, logged, allowed), write, VMCALL re-protect + INVEPT, write (48)', (model) => {
    const part = writeWatchPart({ watch: (v) => BigInt(v.guest.labels.get('watched')!) });
    const run = runPart({ model, part, source: GUEST });
    const at = (l: string): string => hex(BigInt(run.guest.labels.get(l)!));
    const watched = BigInt(run.guest.labels.get('watched')!);
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    const got = part.writes.map((w) => `RIP ${hex(w.rip)}, guest-physical ${hex(w.gpa)}`);
    const want = [`RIP ${at('w1')}, guest-physical ${hex(watched)}`, `RIP ${at('w3')}, guest-physical ${hex(watched + 16n)}`];
    const hint = part.writes.length === 1
      ? `only the first write was caught: after the VMCALL made the page read-only again, the third write went through without an EPT violation — the processor used its cached, writable guest-physical mapping. Execute INVEPT after removing a permission. ${CACHE_RULE}`
      : part.writes.length === 3 ? 'the second write was caught too: after the first violation the page must become writable (RWX) before RESUME' : `the writes at w1 and w3 (GUEST_RIP at the exit, GUEST_PHYSICAL_ADDRESS with the offset)`;
    expect(got, run.why(`${hint}. ${INVEPT_RULE}`)).toEqual(want);
    const vals = [0n, 8n, 16n].map((o) => hex(run.host.kernel.read64(run.guest.va + (watched + o - run.guest.pa))));
    expect(vals, run.why('every write is let through after it is logged: 11H, 22H, 33H')).toEqual(['0x11', '0x22', '0x33']);
    const eptp = run.field('EPT_POINTER');
    const w = inspect(run.host, eptp, watched);
    expect(w.result.kind === 'mapped' ? `${hex(w.result.pageSize)} W=${w.result.writable}` : w.text, run.why(`the watched page, walked under EPT_POINTER at the end: a 4-KByte page (split from the large page), writable again after the last write\n${w.text}`)).toBe('0x1000 W=true');
    expect(run.freeAfterRelease, run.why('release() must free every EPT table page, the split tables too')).toBe(run.freeBeforeSetup);
  });
});
