import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MEMORY_TYPE, type MemoryType, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { EFFECTIVE_MEMORY_TYPE, effectiveType } from './effective.ts';
import { resolveMemoryType } from './memory-type.ts';
import { PAT_POWER_UP, patSelection, patType } from './pat.ts';
import { layout } from './test-layouts.ts';
import { Machine } from '../machine.ts';
import { MSR_IA32_CR_PAT } from '../../x86/msr.ts';

const { UC, WC, WT, WP, WB, UC_MINUS } = MEMORY_TYPE;
const MTRR_TYPES: readonly MtrrMemoryType[] = [UC, WC, WT, WP, WB];
const PAT_TYPES: readonly MemoryType[] = [...MTRR_TYPES, UC_MINUS];
const PWT = 1n << 3n, PCD = 1n << 4n, PAT_4K = 1n << 7n, PAT_LARGE = 1n << 12n;

describe('PAT selection', () => {
  it('index = 4·PAT + 2·PCD + PWT, PAT at bit 7 of a PTE and bit 12 of a large-page entry', () => {
    expect(patSelection(0x20_0000n | PAT_4K | PWT, false).index).toBe(5);
    expect(patSelection(0x20_0000n | PAT_4K | PWT, true).index).toBe(1); // bit 7 is PS in a PDE
    expect(patSelection(0x20_0000n | PAT_LARGE | PCD, true).index).toBe(6);
    expect(patSelection(0x20_0000n | PAT_LARGE | PCD, false).index).toBe(2); // bit 12 is an address bit in a PTE
  });

  it('IA32_PAT at power-up: WB, WT, UC-, UC, then the same again', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => patType(PAT_POWER_UP, i))).toEqual([WB, WT, UC_MINUS, UC, WB, WT, UC_MINUS, UC]);
    expect(patType(0x02n, 0)).toEqual({ reserved: 2 });
  });

  it('WRMSR IA32_PAT with a reserved encoding in any entry raises #GP; valid values read back and survive INIT', () => {
    const lp = new Machine().cpus[0]!;
    expect(lp.rdmsr(MSR_IA32_CR_PAT)).toBe(PAT_POWER_UP);
    for (const [entry, bad] of [[0, 2n], [3, 3n], [7, 8n], [5, 0xffn]] as const) {
      const value = (PAT_POWER_UP & ~(0xffn << BigInt(8 * entry))) | (bad << BigInt(8 * entry));
      expect(() => lp.wrmsr(MSR_IA32_CR_PAT, value)).toThrow(new RegExp(`entry ${entry} holds the reserved encoding ${bad}`));
    }
    lp.wrmsr(MSR_IA32_CR_PAT, 0x0001040506070000n);
    lp.init();
    expect(lp.rdmsr(MSR_IA32_CR_PAT)).toBe(0x0001040506070000n);
  });
});

describe('effective memory type table', () => {
  it('has a cell for every MTRR type and PAT type, and never yields UC-', () => {
    for (const m of MTRR_TYPES) for (const p of PAT_TYPES) expect(MTRR_TYPES).toContain(EFFECTIVE_MEMORY_TYPE[m][p].type);
  });

  it('PAT WB leaves the MTRR type; MTRR WB leaves the PAT type (UC- becomes UC); PAT UC and WC always win', () => {
    for (const m of MTRR_TYPES) {
      expect(effectiveType(m, WB).type).toBe(m);
      expect(effectiveType(m, UC).type).toBe(UC);
      expect(effectiveType(m, WC).type).toBe(WC);
    }
    for (const p of PAT_TYPES) expect(effectiveType(WB, p).type).toBe(p === UC_MINUS ? UC : p);
  });

  it('UC- is overridden by an MTRR WC (the reason UC- exists), and MTRR UC beats every PAT type but WC', () => {
    expect(effectiveType(WC, UC_MINUS).type).toBe(WC);
    for (const p of [UC_MINUS, WT, WB, WP] as const) expect(effectiveType(UC, p)).toEqual({ type: UC, notes: [1] });
    expect(effectiveType(WC, WT)).toEqual({ type: UC, notes: [2, 3] });
  });
});

describe('resolveMemoryType', () => {
  const mtrrs = layout({ variable: [{ base: 0xc000_0000n, size: 0x4000_0000n, type: UC }] });
  const pte = (flags: bigint) => ({ leaf: 0xfee0_0000n | 1n | flags, largePage: false, pat: PAT_POWER_UP });

  it('CR0.CD = 1: UC whatever the MTRRs, the PAT and EPT say', () => {
    fc.assert(fc.property(fc.constantFrom(...MTRR_TYPES), fc.boolean(), fc.bigInt({ min: 0n, max: 0x1fn }), (ept, ipat, flags) => {
      expect(resolveMemoryType({ pa: 0x1000n, cr0Cd: true, mtrrs, paging: pte(flags & 0x18n), ept: { memoryType: ept, ignorePat: ipat } }).type).toBe(UC);
      expect(resolveMemoryType({ pa: 0x1000n, cr0Cd: true, mtrrs, paging: pte(flags & 0x18n) }).rule).toBe('cr0-cd');
    }), { numRuns: 50, seed: 1 });
  });

  it('without EPT: the MTRR type combined with the PAT entry', () => {
    expect(resolveMemoryType({ pa: 0x10_0000n, cr0Cd: false, mtrrs, paging: pte(PWT) })).toMatchObject({ type: WT, rule: 'mtrr-and-pat', rangeType: WB });
    expect(resolveMemoryType({ pa: 0xfee0_0000n, cr0Cd: false, mtrrs, paging: pte(0n) })).toMatchObject({ type: UC, rangeType: UC });
    expect(resolveMemoryType({ pa: 0x10_0000n, cr0Cd: false, mtrrs, paging: null })).toMatchObject({ type: WB, pat: null });
  });

  it('under EPT: the MTRRs are ignored; "ignore PAT" gives the EPT type, otherwise EPT type with PAT', () => {
    // The MMIO hole is UC in the MTRRs, but under EPT only the EPT type counts: a WB EPT entry makes the APIC WB.
    const at = (memoryType: MtrrMemoryType, ignorePat: boolean, flags: bigint) =>
      resolveMemoryType({ pa: 0xfee0_0000n, cr0Cd: false, mtrrs, paging: pte(flags), ept: { memoryType, ignorePat } });
    expect(at(WB, false, 0n)).toMatchObject({ type: WB, rule: 'ept-and-pat', mtrr: null });
    expect(at(WB, false, PCD)).toMatchObject({ type: UC }); // PAT entry 2: UC-
    expect(at(WB, true, PCD)).toMatchObject({ type: WB, rule: 'ept-ignore-pat' });
    expect(at(UC, false, 0n)).toMatchObject({ type: UC });
    expect(at(WC, false, PCD)).toMatchObject({ type: WC });
  });

  it('an undefined MTRR overlap makes the access undefined, unless CR0.CD or EPT decide', () => {
    const overlap = layout({ variable: [{ base: 0n, size: 0x4000_0000n, type: WB }, { base: 0n, size: 0x4000_0000n, type: WC }] });
    expect(resolveMemoryType({ pa: 0x20_0000n, cr0Cd: false, mtrrs: overlap, paging: pte(0n) })).toMatchObject({ type: 'undefined', rule: 'mtrr-undefined' });
    expect(resolveMemoryType({ pa: 0x20_0000n, cr0Cd: true, mtrrs: overlap, paging: pte(0n) }).type).toBe(UC);
    expect(resolveMemoryType({ pa: 0x20_0000n, cr0Cd: false, mtrrs: overlap, paging: pte(0n), ept: { memoryType: WB, ignorePat: false } }).type).toBe(WB);
  });
});
