// Exercise 6.3 — EPT violations. decodeEptViolation bit by bit against the SDM's table (fast-check, fixed seed);
// then your demand-paging part on every model with EPT: the guest starts with an EMPTY EPT and must reach its HLT,
// each page faulted in once; an access beyond guest memory is reported, and an EPT misconfiguration (planted by the
// test in an entry your handler wrote) stops the guest instead of looping.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeEptViolation, demandPagingPart } from '#impl/06-ept/violation';
import type { VmmPart } from '#impl/05-exits/hypervisor';
import { EPT_MODELS, hex, inspect, runPart, show, type PartRun } from './support.ts';

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const QUAL_RULE = 'SDM Vol. 3C, "Exit Qualification for EPT Violations": bit 0 data read, 1 data write, 2 instruction fetch; bits 3, 4, 5 the AND of bits 0, 1, 2 (R, W, X) of the EPT entries used; ' +
  'bit 7 guest-linear address valid; bit 8 (only if bit 7 = 1) 1 = the access was to the final translation, 0 = to a guest paging-structure entry';
const EPT_VIOLATION = 48, EPT_MISCONFIG = 49;
const LIMIT = 0x20000000n; // 512 MiB: the guest's memory is below, guest paging maps the first GiB

describe('decodeEptViolation', () => {
  test('every bit of the qualification, bits 6 and 9–63 ignored', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 0x1fffn }), (noise, low) => {
      const q = (noise & ~0x1ffn) | (low & 0x1ffn);
      const want = {
        read: bit(q, 0), write: bit(q, 1), fetch: bit(q, 2), readable: bit(q, 3), writable: bit(q, 4), executable: bit(q, 5),
        linearValid: bit(q, 7), translation: bit(q, 7) ? (bit(q, 8) ? 'final' : 'paging-structure') : null,
      };
      const got = decodeEptViolation(q);
      expect({ ...got }, `qualification ${hex(q)} (bits 8:0 = ${(q & 0x1ffn).toString(2).padStart(9, '0')}b). ${QUAL_RULE}`).toEqual(want);
    }));
  });
});

const GUEST = `
bits 64
default rel
        mov qword [value], 0x55         ; a write to a page of its own (identity: the host sees it)
        push rax                        ; the stack page
        pop rax
        lea rbx, [far]
        mov rax, [rbx]                  ; a read, on the next page but one
        hlt
align 4096
value:  dq 0
        times 4096 db 0
far:    dq 0x77
`;

function eptExits(run: PartRun): string[] {
  return run.exits.filter((e) => e.reason === EPT_VIOLATION || e.reason === EPT_MISCONFIG).map((e) => `reason ${e.reason} at RIP ${hex(e.rip)}, qualification ${hex(e.qualification)}`);
}

describe('demandPagingPart: the guest runs on an EPT that starts empty', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: map on demand, resume; each page once', (model) => {
    const part = demandPagingPart({ limit: LIMIT });
    const run = runPart({ model, part, source: GUEST, budget: 50_000 });
    expect(run.outcome.kind, run.why('the guest should reach its HLT: every EPT violation below the limit maps the 4-KByte page and resumes (RIP unchanged: the access is retried)')).toBe('halted');
    const violations = run.exits.filter((e) => e.reason === EPT_VIOLATION);
    expect(violations.length, run.why(`the part recorded ${part.faults.length} fault(s); one per VM exit 48 is expected`)).toBe(part.faults.length);
    const pages = part.faults.map((f) => hex(f.gpa & ~0xfffn));
    expect(new Set(pages).size, run.why(`faulted pages ${pages.join(', ')}: a page faults once; a second violation on the same page means the mapping did not take (wrong table address, permissions, or PML4 not the one in EPT_POINTER)`)).toBe(pages.length);
    // The pages the guest touches: its paging structures, its code, its stack, `value` and `far`.
    const g = run.guest;
    const must = [g.cr3, g.rip, g.rsp - 8n, BigInt(g.labels.get('value')!), BigInt(g.labels.get('far')!)].map((a) => hex(a & ~0xfffn));
    for (const p of must) expect(pages, run.why(`page ${p} (the guest's paging structures, code, stack, value, far) should have faulted in`)).toContain(p);
    expect(part.faults.every((f) => bit(f.qualification, 7)), run.why(`every one of these violations has a guest-linear address (bit 7): ${show(part.faults)}`)).toBe(true);
    expect(part.faults.some((f) => !bit(f.qualification, 8)), run.why('the guest\'s own page walk faults too: some qualifications have bit 7 = 1, bit 8 = 0 (an access to a guest paging-structure entry)')).toBe(true);
    expect(part.faults.some((f) => bit(f.qualification, 2) && bit(f.qualification, 8)), run.why('the first fetch from the code page is a violation with bit 2 (instruction fetch) and bit 8 = 1')).toBe(true);
    expect(hex(run.qword('value')), run.why('the guest\'s write landed at the same host-physical address (identity map)')).toBe('0x55');
    const eptp = run.field('EPT_POINTER');
    const v = inspect(run.host, eptp, BigInt(g.labels.get('value')!));
    expect(v.result.kind === 'mapped' && v.result.pageSize === 4096 && v.result.readable && v.result.writable && v.result.executable, run.why(`the page you mapped for \`value\`, walked under EPT_POINTER ${hex(eptp)}: expected a 4-KByte RWX page\n${v.text}`)).toBe(true);
    expect(run.freeAfterRelease, run.why('release() must free every EPT table page')).toBe(run.freeBeforeSetup);
  });

  test('an access beyond guest memory is reported, not mapped', () => {
    const part = demandPagingPart({ limit: LIMIT });
    const run = runPart({ part, source: `bits 64\n mov rbx, ${0x30000123}\n mov rax, [rbx]\n hlt` });
    expect(run.outcome.kind, run.why(`guest-physical 0x30000123 is at or above the limit ${hex(LIMIT)}: stop the guest`)).toBe('stopped');
    const why = run.outcome.kind === 'stopped' ? run.outcome.why : '';
    expect(why, run.why('the stop message should name the guest-physical address in hex (GUEST_PHYSICAL_ADDRESS, offset included) and the access ("read")')).toMatch(/0x30000123[^]*read|read[^]*0x30000123/i);
  });

  test('an EPT misconfiguration (exit 49) is reported and the guest stopped, never resumed', () => {
    const part = demandPagingPart({ limit: LIMIT });
    let planted = '';
    // The test's wrapper: once your handler has mapped the page of `value`, it rewrites that PTE as write-only
    // (bits 2:0 = 010b) — an EPT misconfiguration on the retry.
    const handler = part.handlers[EPT_VIOLATION]!;
    const wrapped: VmmPart = {
      ...part,
      setup: part.setup?.bind(part),
      release: part.release?.bind(part),
      handlers: {
        ...part.handlers,
        [EPT_VIOLATION]: (v, exit) => {
          const action = handler(v, exit);
          const gpa = v.cpu.vmread(0x2400);
          const value = BigInt(v.guest.labels.get('value')!);
          if ((gpa & ~0xfffn) === (value & ~0xfffn) && planted === '') {
            const host = hostOf.h!;
            const w = inspect(host, v.cpu.vmread(0x201a), gpa);
            const pte = w.result.kind === 'mapped' ? BigInt(/PTE at (0x[0-9A-F]+)/i.exec(w.result.walk.join('\n'))?.[1] ?? '0') : 0n;
            if (pte !== 0n) {
              const mem = host.machine.cpus[0]!.memory;
              mem.write64(Number(pte), (mem.read64(Number(pte)) & ~7n) | 2n);
              planted = hex(gpa);
            }
          }
          return action;
        },
      },
    };
    const hostOf: { h: PartRun['host'] | null } = { h: null };
    const run = runPart({ part: wrapped, source: GUEST, before: (host) => { hostOf.h = host; } });
    expect(planted, run.why('test setup: the page of `value` should have faulted in through your handler (then the test made its PTE write-only)')).not.toBe('');
    const misconfigs = run.exits.filter((e) => e.reason === EPT_MISCONFIG).length;
    expect(misconfigs, run.why(`the write-only PTE of ${planted} causes an EPT misconfiguration (exit 49). It must be reported and the guest stopped: resuming retries the same access and exits again, forever. SDM Vol. 3C, "EPT Misconfigurations"`)).toBe(1);
    expect(run.outcome.kind, run.why('exit 49: return stop(why)')).toBe('stopped');
    const why = run.outcome.kind === 'stopped' ? run.outcome.why : '';
    expect(why, run.why(`the stop message should say "misconfiguration" and name the guest-physical address (GUEST_PHYSICAL_ADDRESS, ${planted})`)).toMatch(new RegExp(`misconfiguration[^]*${planted}|${planted}[^]*misconfiguration`, 'i'));
  });
});
