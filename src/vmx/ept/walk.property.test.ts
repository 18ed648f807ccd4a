// eptTranslate against a second, deliberately simple implementation written here from the SDM text — recursive over
// the levels, every bit written as a number, nothing imported from entry.ts, misconfig.ts or qualification.ts — on
// random tables, capabilities, MAXPHYADDR values and accesses. The two must agree on the outcome, the host-physical
// address, the qualification, the misconfigured level and the memory left behind (accessed/dirty flags).
// See SDM Vol. 3C, "EPT Translation Mechanism", "EPT Misconfigurations", "EPT Violations", "Accessed and Dirty
// Flags for EPT" and "Exit Qualification for EPT Violations".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eptTranslate, type EptTranslateInput } from './walk.ts';

interface Case {
  eptp: bigint;
  gpa: bigint;
  cap: bigint;
  maxPhys: number;
  mbec: boolean;
  access: { read: boolean; write: boolean; execute: boolean; user: boolean };
  gl: { paging: boolean; attrs: { user: boolean; readWrite: boolean; executeDisable: boolean } | null } | null;
  nmi: boolean;
  mem: Map<bigint, bigint>;
}

type RefResult =
  | { kind: 'ok'; hpa: bigint; memoryType: number; pageSize: number }
  | { kind: 'violation'; qualification: bigint }
  | { kind: 'misconfig'; level: number };

const bit = (v: bigint, n: number) => (v >> BigInt(n)) & 1n;
const lowMask = (n: number) => (1n << BigInt(n)) - 1n;

/** The reference: one recursive step per level, written straight from the SDM's tables and lists. */
function reference(c: Case): { result: RefResult; mem: Map<bigint, bigint> } {
  const mem = new Map(c.mem);
  const adOn = bit(c.eptp, 6) === 1n;
  // With EPT A/D on, guest paging-structure accesses count as writes (and a violation reports bits 0 and 1).
  const asWrite = adOn && c.gl !== null && c.gl.paging;
  const wantRead = c.access.read || asWrite;
  const wantWrite = c.access.write || asWrite;
  const capHas = (n: number) => bit(c.cap, n) === 1n;
  const addr = (e: bigint) => e & lowMask(c.maxPhys) & ~0xfffn;
  type Step = { a: bigint; e: bigint };

  const qualification = (path: Step[]): bigint => {
    const and = (n: number) => path.every((p) => bit(p.e, n) === 1n);
    let q = 0n;
    if (wantRead) q |= 1n;
    if (wantWrite) q |= 2n;
    if (c.access.execute) q |= 4n;
    if (and(0)) q |= 8n;
    if (and(1)) q |= 0x10n;
    if (and(2)) q |= 0x20n;
    if (c.mbec && and(10)) q |= 0x40n;
    if (c.gl !== null) {
      q |= 0x80n;
      if (!c.gl.paging) {
        q |= 0x100n;
        if (capHas(22) && c.gl.attrs !== null) {
          if (c.gl.attrs.user) q |= 0x200n;
          if (c.gl.attrs.readWrite) q |= 0x400n;
          if (c.gl.attrs.executeDisable) q |= 0x800n;
        }
      }
    }
    if (c.nmi) q |= 0x1000n;
    return q;
  };

  const step = (level: number, table: bigint, path: Step[]): RefResult => {
    const shift = 12 + 9 * (level - 1);
    const a = table + ((c.gpa >> BigInt(shift)) & 511n) * 8n;
    const e = mem.get(a) ?? 0n;
    path = [...path, { a, e }];
    const rwx = e & 7n;
    if (rwx === 0n && !(c.mbec && bit(e, 10) === 1n)) return { kind: 'violation', qualification: qualification(path) };
    const bad: RefResult = { kind: 'misconfig', level };
    if (rwx === 2n || rwx === 6n) return bad;
    if (rwx === 4n && !capHas(0)) return bad;
    let leaf = level === 1;
    if (bit(e, 7) === 1n && level > 1) {
      if (level === 3 && capHas(17)) leaf = true;
      else if (level === 2 && capHas(16)) leaf = true;
      else return bad;
    }
    if (!leaf && (e & 0x78n) !== 0n) return bad; // bits 6:3 of a table entry
    if (leaf && level === 3 && (e & 0x3fff_f000n) !== 0n) return bad; // 29:12 of a 1-GByte PDPTE
    if (leaf && level === 2 && (e & 0x1f_f000n) !== 0n) return bad; // 20:12 of a 2-MByte PDE
    if ((e & lowMask(52) & ~lowMask(c.maxPhys)) !== 0n) return bad; // 51:MAXPHYADDR
    if (leaf && [2n, 3n, 7n].includes((e >> 3n) & 7n)) return bad;
    if (!leaf) return step(level - 1, addr(e), path);

    const and = (n: number) => path.every((p) => bit(p.e, n) === 1n);
    const execBit = c.mbec && c.access.user ? 10 : 2;
    if ((wantRead && !and(0)) || (wantWrite && !and(1)) || (c.access.execute && !and(execBit))) {
      return { kind: 'violation', qualification: qualification(path) };
    }
    if (adOn) {
      path.forEach((p, i) => {
        const v = p.e | 0x100n | (i === path.length - 1 && wantWrite ? 0x200n : 0n);
        mem.set(p.a, v);
      });
    }
    const size = 1n << BigInt(shift);
    return { kind: 'ok', hpa: (addr(e) & ~(size - 1n)) | (c.gpa & (size - 1n)), memoryType: Number((e >> 3n) & 7n), pageSize: Number(size) };
  };

  const walk = Number((c.eptp >> 3n) & 7n) + 1;
  return { result: step(walk, addr(c.eptp), []), mem };
}

// ---------------------------------------------------------------------------------------------------------------
// Random cases: one table per level at a fixed base, each holding the one entry the GPA selects.
// ---------------------------------------------------------------------------------------------------------------

const TABLE_BASE = (level: number) => BigInt(level) * 0x10_0000n;

const entryArb = fc.record({
  perm: fc.oneof({ arbitrary: fc.constant(7), weight: 12 }, { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 4 }),
  xu: fc.boolean(),
  memType: fc.oneof({ arbitrary: fc.constant(6), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 2 }),
  ipat: fc.boolean(),
  ps: fc.oneof({ arbitrary: fc.constant(false), weight: 6 }, { arbitrary: fc.constant(true), weight: 1 }),
  accessed: fc.boolean(),
  dirty: fc.boolean(),
  ignored: fc.oneof({ arbitrary: fc.constant(0n), weight: 3 }, { arbitrary: fc.bigInt({ min: 0n, max: 0xfffn }).map((v) => (v << 52n) | ((v & 1n) << 11n)), weight: 1 }),
  frame: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }).map((v) => v << 12n),
  /** A large page's frame is aligned, or has exactly one bit set below its alignment (n counts up from bit 12). */
  misalign: fc.oneof({ arbitrary: fc.constant(null), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 17 }), weight: 1 }),
  strayPointer: fc.oneof({ arbitrary: fc.constant(false), weight: 12 }, { arbitrary: fc.constant(true), weight: 1 }),
  lowReserved: fc.oneof({ arbitrary: fc.constant(null), weight: 40 }, { arbitrary: fc.integer({ min: 3, max: 6 }), weight: 1 }),
  highBit: fc.oneof({ arbitrary: fc.constant(null), weight: 40 }, { arbitrary: fc.integer({ min: 36, max: 51 }), weight: 1 }),
});
type EntryGen = typeof entryArb extends fc.Arbitrary<infer T> ? T : never;

const caseArb = fc.record({
  capBits: fc.record({ xo: fc.boolean(), w5: fc.boolean(), p2m: fc.boolean(), p1g: fc.boolean(), ad: fc.boolean(), adv: fc.boolean() }),
  five: fc.boolean(),
  adOn: fc.boolean(),
  maxPhys: fc.constantFrom(36, 39, 46, 52),
  mbec: fc.boolean(),
  gpa: fc.bigInt({ min: 0n, max: (1n << 57n) - 1n }),
  access: fc.record({
    kind: fc.constantFrom('read', 'write', 'fetch', 'rmw', 'none'),
    user: fc.boolean(),
  }),
  gl: fc.option(fc.record({
    paging: fc.boolean(),
    attrs: fc.option(fc.record({ user: fc.boolean(), readWrite: fc.boolean(), executeDisable: fc.boolean() })),
  })),
  nmi: fc.boolean(),
  entries: fc.array(entryArb, { minLength: 5, maxLength: 5 }),
}).map((g): Case => {
  const b = g.capBits;
  const cap = (b.xo ? 1n : 0n) | (1n << 6n) | (b.w5 ? 1n << 7n : 0n) | (1n << 14n) | (b.p2m ? 1n << 16n : 0n) |
    (b.p1g ? 1n << 17n : 0n) | (b.ad ? 1n << 21n : 0n) | (b.adv ? 1n << 22n : 0n);
  const walk = g.five && b.w5 ? 5 : 4;
  const eptp = TABLE_BASE(walk) | (BigInt(walk - 1) << 3n) | 6n | (g.adOn && b.ad ? 1n << 6n : 0n);
  const mem = new Map<bigint, bigint>();
  for (let level = walk; level >= 1; level--) {
    const at = TABLE_BASE(level) + ((g.gpa >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    mem.set(at, entryValue(g.entries[5 - level]!, level, g.maxPhys));
  }
  const k = g.access.kind;
  return {
    eptp, gpa: g.gpa, cap, maxPhys: g.maxPhys, mbec: g.mbec,
    access: { read: k === 'read' || k === 'rmw', write: k === 'write' || k === 'rmw', execute: k === 'fetch', user: g.access.user },
    gl: g.gl, nmi: g.nmi, mem,
  };
});

function entryValue(g: EntryGen, level: number, maxPhys: number): bigint {
  const size = 1n << BigInt(12 + 9 * (level - 1));
  const mapsPage = level === 1 || g.ps;
  let v = BigInt(g.perm) | (g.xu ? 0x400n : 0n) | (g.accessed ? 0x100n : 0n) | (g.dirty ? 0x200n : 0n) | g.ignored;
  if (g.ps && level > 1) v |= 0x80n;
  if (mapsPage) {
    v |= (BigInt(g.memType) << 3n) | (g.ipat ? 0x40n : 0n);
    const shift = 12 + 9 * (level - 1);
    const stray = g.misalign !== null && shift > 12 ? 1n << BigInt(12 + (g.misalign % (shift - 12))) : 0n;
    v |= ((g.frame & ~(size - 1n)) | stray) & lowMask(maxPhys);
  } else {
    v |= g.strayPointer ? g.frame & lowMask(maxPhys) : TABLE_BASE(level - 1);
  }
  if (g.lowReserved !== null && !mapsPage) v |= 1n << BigInt(g.lowReserved);
  if (g.highBit !== null) v |= 1n << BigInt(g.highBit);
  return v;
}

function subject(c: Case) {
  const mem = new Map(c.mem);
  const input: EptTranslateInput = {
    eptp: c.eptp, gpa: c.gpa, access: c.access, caps: { eptVpidCap: c.cap }, maxPhysAddr: c.maxPhys, mbec: c.mbec,
    readPhys64: (a) => mem.get(a) ?? 0n,
    writePhys64: (a, v) => { mem.set(a, v); },
    ...(c.gl !== null ? { guestLinear: { address: 0x1234_5000n, isPagingStructureAccess: c.gl.paging, ...(c.gl.attrs !== null ? { attributes: c.gl.attrs } : {}) } } : {}),
    nmiUnblockingIret: c.nmi,
  };
  return { result: eptTranslate(input), mem };
}

describe('eptTranslate agrees with the reference walk', () => {
  it('on random tables and accesses', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(caseArb, (c) => {
        const ref = reference(c);
        const got = subject(c);
        const r = got.result;
        seen.set(r.kind, (seen.get(r.kind) ?? 0) + 1);
        expect(r.kind).toBe(ref.result.kind);
        if (r.kind === 'ok' && ref.result.kind === 'ok') {
          expect(r.hpa).toBe(ref.result.hpa);
          expect(r.memoryType).toBe(ref.result.memoryType);
          expect(r.pageSize).toBe(ref.result.pageSize);
        }
        if (r.kind === 'violation' && ref.result.kind === 'violation') expect(r.qualification).toBe(ref.result.qualification);
        if (r.kind === 'misconfig' && ref.result.kind === 'misconfig') expect(r.level).toBe(ref.result.level);
        expect([...got.mem].sort()).toEqual([...ref.mem].sort());
      }),
      { numRuns: 4000, seed: 9 },
    );
    // The generator must reach every outcome often enough for the comparison to mean something.
    for (const kind of ['ok', 'violation', 'misconfig']) expect(seen.get(kind) ?? 0).toBeGreaterThan(400);
  });
});
