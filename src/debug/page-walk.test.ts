// The page-walk explainer on hand-built IA-32e tables. Expected values are worked out from the
// SDM's entry formats, with entry bits and error-code bits written as numbers here on purpose
// (P=1, R/W=2, U/S=4, A=0x20, PS=0x80, XD=bit 63; #PF: P=1 W/R=2 U/S=4 RSVD=8 I/D=16).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../machine/memory.ts';
import { explainPageWalk } from './page-walk.ts';

const P = 1n, RW = 2n, US = 4n, PS = 0x80n, XD = 1n << 63n;
const PML4 = 0x1000n, PDPT = 0x2000n, PD = 0x3000n, PT = 0x4000n;
const CR0_PG_WP = (1n << 31n) | (1n << 16n) | 1n;
const CR4_PAE = 1n << 5n;
const EFER_LMA_NXE = (1n << 10n) | (1n << 8n) | (1n << 11n);

/**
 * PML4[0] → PDPT; PDPT[0] → PD; PDPT[1] = 1-GByte page at 0xC0000000;
 * PD[0] → PT; PD[1] = 2-MByte page at 0x600000 (read-only, NX); PD[2] not present;
 * PT[0x10] = 4-KByte page 0x9000 (user, writable); PT[0x11] = 0xA000 supervisor, read-only.
 */
function tables(): PhysicalMemory {
  const m = new PhysicalMemory({ ramBytes: 16 * 1024 * 1024 });
  m.write64(Number(PML4), PDPT | P | RW | US);
  m.write64(Number(PDPT), PD | P | RW | US);
  m.write64(Number(PDPT) + 8, 0xc000_0000n | P | RW | PS);
  m.write64(Number(PD), PT | P | RW | US);
  m.write64(Number(PD) + 8, 0x60_0000n | P | PS | US | XD);
  m.write64(Number(PT) + 0x10 * 8, 0x9000n | P | RW | US);
  m.write64(Number(PT) + 0x11 * 8, 0xa000n | P);
  return m;
}

const read64 = (m: PhysicalMemory) => (pa: bigint) => (pa < BigInt(m.ramBytes) ? m.read64(Number(pa)) : null);
const opts = { cr0: CR0_PG_WP, cr4: CR4_PAE, efer: EFER_LMA_NXE };

describe('explainPageWalk', () => {
  const mem = tables();

  it('walks a 4-KByte page through all four levels', () => {
    const w = explainPageWalk(0x10123n, PML4, read64(mem), opts);
    expect(w.physical).toBe(0x9123n);
    expect(w.pageSize).toBe('4K');
    expect(w.fault).toBeUndefined();
    expect(w.steps.map((s) => [s.level, s.index, s.entryAddress])).toEqual([
      ['PML4E', 0, 0x1000n],
      ['PDPTE', 0, 0x2000n],
      ['PDE', 0, 0x3000n],
      ['PTE', 0x10, 0x4080n],
    ]);
    expect(w.steps[3]!.flags).toMatchObject({ P: true, RW: true, US: true, PS: false, XD: false });
    const text = w.format();
    expect(text).toContain('PTE[16]');
    expect(text).toContain('physical 0x9123 (4K page)');
  });

  it('stops at a 2-MByte PDE and a 1-GByte PDPTE', () => {
    const two = explainPageWalk(0x2abcden, PML4, read64(mem), opts);
    expect([two.physical, two.pageSize, two.steps.length]).toEqual([0x6abcden, '2M', 3]);
    const one = explainPageWalk(0x7654_3210n, PML4, read64(mem), opts);
    expect([one.physical, one.pageSize, one.steps.length]).toEqual([0xc000_0000n + 0x3654_3210n, '1G', 2]);
  });

  it('reports a not-present entry with P=0 in the error code', () => {
    const w = explainPageWalk(0x400000n, PML4, read64(mem), { ...opts, access: 'write', user: true });
    expect(w.fault).toMatchObject({ vector: 14, errorCode: 2 | 4 });
    expect(w.steps.at(-1)!.level).toBe('PDE');
    expect(w.format()).toContain('#PF error code 0x6 (P=0 W/R=1 U/S=1 RSVD=0 I/D=0), CR2 = 0x400000');
  });

  it('reports reserved bits with P=1 and RSVD=1', () => {
    const m = tables();
    m.write64(Number(PT) + 0x12 * 8, 0xb000n | (1n << 40n) | P); // bit 40 ≥ MAXPHYADDR 39
    const w = explainPageWalk(0x12000n, PML4, read64(m), { ...opts, maxPhysAddr: 39 });
    expect(w.fault?.errorCode).toBe(1 | 8);
    expect(w.steps.at(-1)!.reserved).toBe(1n << 40n);
    // The same entry is fine when MAXPHYADDR is larger.
    expect(explainPageWalk(0x12000n, PML4, read64(m), { ...opts, maxPhysAddr: 46 }).physical).toBe(0x100_0000_b000n);
  });

  it('treats XD as reserved when IA32_EFER.NXE = 0, and PS in a PML4E as reserved', () => {
    const noNxe = explainPageWalk(0x200000n, PML4, read64(mem), { ...opts, efer: 1n << 10n });
    expect(noNxe.fault?.errorCode).toBe(1 | 8);
    const m = tables();
    m.write64(Number(PML4) + 8, PDPT | P | PS);
    expect(explainPageWalk(1n << 39n, PML4, read64(m), opts).fault?.errorCode).toBe(1 | 8);
  });

  it('faults an instruction fetch from an NX page with I/D=1', () => {
    const w = explainPageWalk(0x200000n, PML4, read64(mem), { ...opts, access: 'execute', user: true });
    expect(w.fault?.errorCode).toBe(1 | 4 | 16);
    expect(w.fault?.reason).toContain('no-execute');
  });

  it('faults a supervisor write to a read-only page only when CR0.WP = 1', () => {
    const wp = explainPageWalk(0x11000n, PML4, read64(mem), { ...opts, access: 'write' });
    expect(wp.fault?.errorCode).toBe(1 | 2);
    const noWp = explainPageWalk(0x11000n, PML4, read64(mem), { ...opts, cr0: CR0_PG_WP & ~(1n << 16n), access: 'write' });
    expect(noWp.physical).toBe(0xa000n);
  });

  it('faults a user access to a supervisor page and a user write to a read-only page', () => {
    expect(explainPageWalk(0x11000n, PML4, read64(mem), { ...opts, user: true }).fault?.errorCode).toBe(1 | 4);
    expect(explainPageWalk(0x200000n, PML4, read64(mem), { ...opts, user: true, access: 'write' }).fault?.errorCode).toBe(1 | 2 | 4);
  });

  it('raises #GP for a non-canonical address and explains paging-off cases', () => {
    expect(explainPageWalk(0x0000_8000_0000_0000n, PML4, read64(mem), opts).fault).toMatchObject({ vector: 13, errorCode: 0 });
    expect(explainPageWalk(0x1234n, PML4, read64(mem), { ...opts, cr0: 1n }).physical).toBe(0x1234n);
    expect(explainPageWalk(0x1234n, PML4, read64(mem), { ...opts, cr4: 0n }).note).toContain('not IA-32e paging');
  });

  it('reports unreadable table memory instead of throwing', () => {
    const w = explainPageWalk(0x1000n, 0x7fff_0000_0000n, read64(mem), opts);
    expect(w.physical).toBeUndefined();
    expect(w.note).toContain('cannot read the PML4E');
  });

  it('property: any 4-KByte mapping translates to frame + offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 511 }), fc.integer({ min: 0x100, max: 0xfff }), fc.integer({ min: 0, max: 0xfff }), (pti, frame, offset) => {
        const m = tables();
        m.write64(Number(PT) + pti * 8, BigInt(frame) * 0x1000n | P);
        const la = BigInt(pti) * 0x1000n + BigInt(offset);
        expect(explainPageWalk(la, PML4, read64(m), opts).physical).toBe(BigInt(frame) * 0x1000n + BigInt(offset));
      }),
      { numRuns: 100, seed: 7 },
    );
  });
});
