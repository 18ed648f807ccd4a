// The memory type of a guest access under EPT, on hand-built tables: EPT type, ignore PAT, guest PAT and CR0.CD.
import { describe, expect, it } from 'vitest';
import { MEMORY_TYPE } from '../../x86/memory-types.ts';
import { PAT_POWER_UP } from '../../machine/memtype/pat.ts';
import { guestMemoryType } from './memory-type.ts';

const R = 1n, W = 2n, RWX = 7n, IPAT = 0x40n, PS = 0x80n;
const type = (t: number) => BigInt(t) << 3n;
const CAP_ALL = (1n << 0n) | (1n << 6n) | (1n << 14n) | (1n << 16n) | (1n << 17n) | (1n << 21n);
const PML4 = 0x1000n, PDPT = 0x2000n, PD = 0x3000n;

// GPA 0–2 MiB: RAM, WB. GPA 2–4 MiB: the guest's "device" page, mapped WB (the classic mistake) or UC with ignore PAT.
function tables(deviceLeaf: bigint): Map<bigint, bigint> {
  return new Map([[PML4, PDPT | RWX], [PDPT, PD | RWX], [PD, 0n | R | W | type(MEMORY_TYPE.WB) | PS], [PD + 8n, 0x20_0000n | R | W | deviceLeaf | PS]]);
}
const at = (gpa: bigint, m: Map<bigint, bigint>, cr0Cd = false, pteFlags = 0n) => guestMemoryType({
  ept: { eptp: PML4 | (3n << 3n) | 6n, gpa, caps: { eptVpidCap: CAP_ALL }, maxPhysAddr: 39, mbec: false, readPhys64: (a) => m.get(a) ?? 0n },
  cr0Cd,
  paging: { leaf: (gpa & ~0xfffn) | 3n | pteFlags, largePage: false, pat: PAT_POWER_UP },
});

describe('guestMemoryType', () => {
  it('EPT type combined with the guest PAT: a WB EPT entry for a device is only UC if the guest asks for it', () => {
    const m = tables(type(MEMORY_TYPE.WB));
    const plain = at(0x20_0000n, m);
    expect(plain.kind === 'mapped' && plain.decision.type).toBe(MEMORY_TYPE.WB);
    expect(plain.lines[0]).toMatch(/^guest-physical 0x200000 → host-physical 0x200000: RW-, WB, 2 MiB page/);
    expect(plain.lines).toContain('  MTRRs: ignored under EPT (SDM Vol. 3C, "EPT and Memory Typing")');
    const pcd = at(0x20_0000n, m, false, 1n << 4n); // PAT entry 2: UC-
    expect(pcd.kind === 'mapped' && pcd.decision.type).toBe(MEMORY_TYPE.UC);
  });

  it('"ignore PAT" makes the EPT type final; CR0.CD = 1 makes everything UC', () => {
    const m = tables(type(MEMORY_TYPE.UC) | IPAT);
    const r = at(0x20_0000n, m);
    expect(r.kind === 'mapped' && r.decision).toMatchObject({ type: MEMORY_TYPE.UC, rule: 'ept-ignore-pat' });
    const cd = at(0x1000n, m, true);
    expect(cd.kind === 'mapped' && cd.decision).toMatchObject({ type: MEMORY_TYPE.UC, rule: 'cr0-cd' });
  });

  it('no memory type for an address EPT does not map', () => {
    const r = at(0x40_0000n, tables(type(MEMORY_TYPE.WB)));
    expect(r.kind).toBe('not-mapped');
    expect(r.lines.at(-1)).toBe('no memory type: the access does not reach memory through this EPT');
  });
});
