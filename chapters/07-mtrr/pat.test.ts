// Exercise 7.4 — PAT, and the memory type of a guest access under EPT. patIndex and patEntryType against the kit
// (src/machine/memtype/pat.ts) for random leaves and IA32_PAT values; effectiveMemoryType for every cell of the
// SDM's table; guestMemoryTypeOf on fixtures (a guest's UART mapped UC, a frame buffer WC, "ignore PAT", CR0.CD) and on
// generated EPT walks, guest leaves and IA32_PAT values (fast-check) against the kit's guestMemoryType, which walks
// a real EPT for the guest-physical address.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { effectiveMemoryType, guestMemoryTypeOf, patEntryType, patIndex } from '#impl/07-mtrr/pat';
import { EFFECTIVE_MEMORY_TYPE } from '../../src/machine/memtype/effective.ts';
import { PAT_POWER_UP, patSelection, patType } from '../../src/machine/memtype/pat.ts';
import { guestMemoryType } from '../../src/vmx/ept/memory-type.ts';
import { CPU_MODELS, hex, typeName } from './support.ts';
import { capabilitiesOf } from '../../src/vmx/emulated-msrs.ts';

const SELECT_RULE = 'SDM Vol. 3A, "Selecting a Memory Type from the PAT": index = 4·PAT + 2·PCD + PWT, with PCD bit 4 and PWT bit 3 of the leaf, and PAT bit 7 of a PTE but bit 12 of a PDE or PDPTE that maps a 2-MByte or 1-GByte page (bit 7 is PS there)';
const PAT_RULE = 'SDM Vol. 3A, "IA32_PAT MSR": entry i is bits 8i+7:8i (PA0 in bits 7:0 … PA7 in bits 63:56)';
const TABLE_RULE = 'SDM Vol. 3A, table "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families": rows by MTRR type, columns by PAT type';
const EPT_RULE = 'SDM Vol. 3C, "Memory Type Used for Translated Guest-Physical Addresses": CR0.CD = 1 → UC; else with "ignore PAT" (EPT leaf bit 6) = 1 the EPT memory type (bits 5:3); ' +
  'else the EPT type combined with the PAT type by the effective-type table, in the MTRR\'s place (the MTRRs play no part). With guest paging off, the PAT type is WB';

const MEM = [0, 1, 4, 5, 6] as const;
const PAT_TYPES = [0, 1, 4, 5, 6, 7] as const;
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const patValue = fc.array(fc.constantFrom(...PAT_TYPES), { minLength: 8, maxLength: 8 }).map((ts) => ts.reduce((a, t, i) => a | (BigInt(t) << BigInt(8 * i)), 0n));
const name = (t: number): string => typeName(t);

describe('patIndex', () => {
  test('4·PAT + 2·PCD + PWT, PAT at bit 7 of a PTE and bit 12 of a large-page entry, for random leaves', () => {
    fc.assert(fc.property(u64, fc.boolean(), (leaf, large) => {
      const want = patSelection(leaf, large).index;
      expect(patIndex(leaf, large), `${large ? 'large-page entry (PDE/PDPTE with PS = 1)' : 'PTE'} ${hex(leaf)}: bit 12 ${(leaf >> 12n) & 1n}, bit 7 ${(leaf >> 7n) & 1n}, PCD ${(leaf >> 4n) & 1n}, PWT ${(leaf >> 3n) & 1n} → entry ${want}. ${SELECT_RULE}`).toBe(want);
    }));
  });
});

describe('patEntryType', () => {
  test('each entry of random IA32_PAT values, and the power-up value WB, WT, UC-, UC, WB, WT, UC-, UC', () => {
    for (let i = 0; i < 8; i++) expect(name(patEntryType(PAT_POWER_UP, i)), `entry ${i} of IA32_PAT at power-up (${hex(PAT_POWER_UP, 16)}). ${PAT_RULE}`).toBe(name(patType(PAT_POWER_UP, i) as number));
    fc.assert(fc.property(patValue, fc.integer({ min: 0, max: 7 }), (pat, i) => {
      expect(patEntryType(pat, i), `entry ${i} of IA32_PAT ${hex(pat, 16)}. ${PAT_RULE}`).toBe(patType(pat, i) as number);
    }));
  });
});

describe('effectiveMemoryType', () => {
  test.each(MEM.map((m) => [name(m), m]))('MTRR (or EPT) type %s with each PAT type', (_n, m) => {
    for (const p of PAT_TYPES) {
      const want = EFFECTIVE_MEMORY_TYPE[m][p];
      expect(name(effectiveMemoryType(m, p)), `MTRR type ${name(m)}, PAT type ${name(p)}: the table says ${name(want.type)}. ${TABLE_RULE}`).toBe(name(want.type));
    }
  });
});

// A tiny EPT in a sparse memory: PML4 at 1000H, PDPT at 2000H, PD at 3000H, PT at 4000H, one leaf for the address.
const CAP = capabilitiesOf(CPU_MODELS.find((m) => m.name === 'skylake-i5-6300u')!).eptVpidCap;
const EPTP = 0x1000n | 6n | (3n << 3n);
function eptFor(gpa: bigint, level: 1 | 2 | 3, leafBits: bigint): { readPhys64: (pa: bigint) => bigint; leaf: bigint } {
  const mem = new Map<bigint, bigint>();
  const idx = (shift: bigint) => 8n * ((gpa >> shift) & 0x1ffn);
  const size = level === 3 ? 30n : level === 2 ? 21n : 12n;
  const leaf = ((gpa >> size) << size) | 7n | leafBits | (level > 1 ? 1n << 7n : 0n);
  mem.set(0x1000n + idx(39n), 0x2007n);
  if (level === 3) mem.set(0x2000n + idx(30n), leaf);
  else {
    mem.set(0x2000n + idx(30n), 0x3007n);
    if (level === 2) mem.set(0x3000n + idx(21n), leaf);
    else { mem.set(0x3000n + idx(21n), 0x4007n); mem.set(0x4000n + idx(12n), leaf); }
  }
  return { leaf, readPhys64: (pa) => mem.get(pa) ?? 0n };
}

interface Case {
  readonly eptType: number; readonly ignorePat: boolean; readonly level: 1 | 2 | 3; readonly gpa: bigint;
  readonly cr0Cd: boolean; readonly pat: bigint; readonly guestLeaf: { entry: bigint; largePage: boolean } | null;
}

function kitAnswer(c: Case): { type: string; lines: string; eptLeaf: bigint } {
  const ept = eptFor(c.gpa, c.level, (BigInt(c.eptType) << 3n) | (c.ignorePat ? 1n << 6n : 0n));
  const g = guestMemoryType({
    ept: { eptp: EPTP, gpa: c.gpa, caps: { eptVpidCap: CAP }, maxPhysAddr: 39, mbec: false, readPhys64: ept.readPhys64 },
    cr0Cd: c.cr0Cd, paging: c.guestLeaf === null ? null : { leaf: c.guestLeaf.entry, largePage: c.guestLeaf.largePage, pat: c.pat },
  });
  if (g.kind !== 'mapped') throw new Error(`kit bug: the test EPT does not map ${hex(c.gpa)}:\n${g.lines.join('\n')}`);
  return { type: g.decision.type === 'undefined' ? 'undefined' : name(g.decision.type), lines: g.lines.join('\n'), eptLeaf: ept.leaf };
}

function check(c: Case, what: string): void {
  const kit = kitAnswer(c);
  const got = guestMemoryTypeOf({ eptLeaf: kit.eptLeaf, cr0Cd: c.cr0Cd, guestPat: c.pat, guestLeaf: c.guestLeaf });
  expect(name(got), `${what}: EPT leaf ${hex(kit.eptLeaf)}, guest CR0.CD ${c.cr0Cd ? 1 : 0}, guest IA32_PAT ${hex(c.pat, 16)}, guest leaf ${c.guestLeaf === null ? 'none (paging off)' : `${hex(c.guestLeaf.entry)} (${c.guestLeaf.largePage ? 'large page' : 'PTE'})`}. The kit explains:\n${kit.lines}\n${EPT_RULE}`).toBe(kit.type);
}

const PTE = (flags: bigint) => ({ entry: 0xfeb00000n | 1n | 2n | flags, largePage: false });
const PCD = 1n << 4n, PWT = 1n << 3n;
const WC_PAT = PAT_POWER_UP & ~(0xffn << 8n) | (1n << 8n); // entry 1 WC, the way Linux sets up a write-combining entry

describe('guestMemoryTypeOf: the cases a hypervisor meets', () => {
  test('the guest maps its UART UC (PCD = PWT = 1 → entry 3 = UC) and EPT says WB: UC — the guest\'s choice holds', () => {
    check({ eptType: 6, ignorePat: false, level: 1, gpa: 0xfeb00000n, cr0Cd: false, pat: PAT_POWER_UP, guestLeaf: PTE(PCD | PWT) }, 'UART page, EPT WB');
  });
  test('the same with "ignore PAT" = 1: WB — the guest\'s UC is lost, and its device writes sit in the cache', () => {
    check({ eptType: 6, ignorePat: true, level: 1, gpa: 0xfeb00000n, cr0Cd: false, pat: PAT_POWER_UP, guestLeaf: PTE(PCD | PWT) }, 'UART page, EPT WB with ignore PAT');
  });
  test('a frame buffer the guest maps WC (entry 1 = WC) where EPT says UC: WC', () => {
    check({ eptType: 0, ignorePat: false, level: 2, gpa: 0xc0000000n, cr0Cd: false, pat: WC_PAT, guestLeaf: { entry: 0xc0000000n | 0x83n | PWT, largePage: true } }, 'frame buffer, EPT UC');
  });
  test('ordinary RAM: EPT WB, PAT entry 0 (WB): WB; EPT WT: WT; EPT UC: UC', () => {
    for (const t of [6, 4, 0]) check({ eptType: t, ignorePat: false, level: 3, gpa: 0x40000000n, cr0Cd: false, pat: PAT_POWER_UP, guestLeaf: PTE(0n) }, `RAM, EPT ${name(t)}`);
  });
  test('guest CR0.CD = 1: UC', () => {
    check({ eptType: 6, ignorePat: false, level: 1, gpa: 0x5000n, cr0Cd: true, pat: PAT_POWER_UP, guestLeaf: PTE(0n) }, 'CR0.CD = 1');
  });
  test('the PAT bit of a 2-MByte guest page is bit 12, not bit 7 (bit 7 is PS)', () => {
    const pat = 0x0000000000000006n | (0n << 32n); // entry 4 UC, entry 0 WB
    check({ eptType: 6, ignorePat: false, level: 2, gpa: 0x200000n, cr0Cd: false, pat, guestLeaf: { entry: 0x200000n | 0x83n | (1n << 12n), largePage: true } }, 'large guest page, PAT bit 12 set');
    check({ eptType: 6, ignorePat: false, level: 2, gpa: 0x200000n, cr0Cd: false, pat, guestLeaf: { entry: 0x200000n | 0x83n, largePage: true } }, 'large guest page, PAT bit 12 clear');
  });
  test('guest paging off: the EPT type (the PAT type counts as WB)', () => {
    check({ eptType: 5, ignorePat: false, level: 1, gpa: 0xf0000n, cr0Cd: false, pat: PAT_POWER_UP, guestLeaf: null }, 'paging off, EPT WP');
  });
});

describe('guestMemoryTypeOf: generated inputs against the kit\'s guestMemoryType', () => {
  test('random EPT leaf level, type and ignore PAT; random CR0.CD, IA32_PAT and guest leaf', () => {
    const cases = fc.record({
      eptType: fc.constantFrom(...MEM), ignorePat: fc.boolean(), level: fc.constantFrom(1 as const, 2 as const, 3 as const),
      gpa: fc.bigInt({ min: 0n, max: (1n << 39n) - 1n }), cr0Cd: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
      pat: patValue, guestLeaf: fc.option(fc.record({ entry: u64, largePage: fc.boolean() }), { nil: null, freq: 8 }),
    });
    fc.assert(fc.property(cases, (c) => check(c, 'generated')), { numRuns: 300 });
  });
});
