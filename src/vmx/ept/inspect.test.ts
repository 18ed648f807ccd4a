// inspectGpa on hand-built tables: what a fresh walk finds for any guest-physical address, with no side effects.
import { describe, expect, it } from 'vitest';
import { formatEptInspection, inspectGpa } from './inspect.ts';

const R = 1n, W = 2n, X = 4n, RWX = 7n, WB = 0x30n, PS = 0x80n;
const CAP_ALL = (1n << 0n) | (1n << 6n) | (1n << 14n) | (1n << 16n) | (1n << 17n) | (1n << 21n);
const PML4 = 0x1000n, PDPT = 0x2000n, PD = 0x3000n, PT = 0x4000n;

function tables(): Map<bigint, bigint> {
  return new Map<bigint, bigint>([
    [PML4, PDPT | RWX], [PDPT, PD | RWX], [PD, PT | RWX], [PD + 8n, 0x60_0000n | R | X | WB | PS],
    [PT + 0x80n, 0x9000n | R | W | WB], [PT + 0x88n, 0xa000n | W],
  ]);
}
const inspect = (gpa: bigint, m: Map<bigint, bigint>, eptp = PML4 | (3n << 3n) | 6n) =>
  inspectGpa({ eptp, gpa, caps: { eptVpidCap: CAP_ALL }, maxPhysAddr: 39, mbec: false, readPhys64: (a) => m.get(a) ?? 0n });

describe('inspectGpa', () => {
  it('a mapped 4-KByte page: host-physical address, permissions, memory type, the walk', () => {
    const i = inspect(0x10123n, tables());
    expect(i).toMatchObject({ kind: 'mapped', hpa: 0x9123n, readable: true, writable: true, executable: false, memoryType: 'WB', pageSize: 4096 });
    expect(i.walk).toHaveLength(4);
    expect(formatEptInspection(0x10123n, i)).toContain('→ host-physical 0x9123: RW-, WB, 4 KiB page');
  });
  it('a 2-MByte page; permissions are the AND over the walk', () => {
    expect(inspect(0x20_0042n, tables())).toMatchObject({ kind: 'mapped', hpa: 0x60_0042n, readable: true, writable: false, executable: true, pageSize: 1 << 21 });
  });
  it('not present and misconfigured entries come with their diagnosis', () => {
    const np = inspect(0x40_0000n, tables());
    expect(np.kind).toBe('not-present');
    if (np.kind !== 'mapped') expect(np.diagnosis.rule).toBe('ept-not-present');
    const mc = inspect(0x11000n, tables());
    expect(mc.kind).toBe('misconfig');
    if (mc.kind !== 'mapped') expect(mc.diagnosis.rule).toBe('ept-write-without-read');
  });
  it('never writes: with EPT A/D flags on, the entries stay as they were', () => {
    const m = tables();
    const before = new Map(m);
    inspect(0x10000n, m, PML4 | (3n << 3n) | 6n | (1n << 6n));
    expect(m).toEqual(before);
  });
});
