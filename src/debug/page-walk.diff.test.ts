// Differential test: the page-walk explainer against the machine's own page walk (src/machine/paging.ts),
// two independent readings of SDM Vol. 3A, "4-Level Paging and 5-Level Paging" and "Access Rights".
// On random paging structures and accesses, both must give the same physical address or the same
// #PF error code. (SMAP is left off: the machine does not model it.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuFault } from '../machine/fault.ts';
import { Machine } from '../machine/machine.ts';
import { walk } from '../machine/paging.ts';
import type { Access } from '../machine/paging.ts';
import { explainPageWalk } from './page-walk.ts';
import type { AccessKind } from './page-walk.ts';

const TABLES = [0x20_0000, 0x20_1000, 0x20_2000, 0x20_3000]; // PML4, PDPT, PD, PT
const ACCESS: Record<AccessKind, Access> = { read: 0, write: 1, execute: 2 };

const entryFlags = fc.record({
  present: fc.integer({ min: 0, max: 9 }).map((n) => n > 0), // mostly present, so walks go deep
  rw: fc.boolean(),
  us: fc.boolean(),
  /** PS is set at PDPT/PD level half the time, and (reserved there) at PML4 level a quarter of the time. */
  ps: fc.integer({ min: 0, max: 3 }),
  xd: fc.boolean(),
  /** Usually none; else a bit above MAXPHYADDR, or one in a large page's low address bits (bits 29:13 / 20:13). */
  reserved: fc.oneof({ arbitrary: fc.constant(0n), weight: 16 }, fc.constantFrom(1n << 51n, 1n << 40n, 1n << 13n, 1n << 20n)),
});

const scenario = fc.record({
  levels: fc.array(entryFlags, { minLength: 4, maxLength: 4 }),
  frame: fc.integer({ min: 0x400, max: 0x7ff }),
  offset: fc.integer({ min: 0, max: (1 << 30) - 1 }),
  wp: fc.boolean(),
  nxe: fc.boolean(),
  smep: fc.boolean(),
  access: fc.constantFrom<AccessKind>('read', 'write', 'execute'),
  user: fc.boolean(),
});

describe('explainPageWalk agrees with the machine', () => {
  it('on random paging structures and accesses', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(scenario, (s) => {
        const machine = new Machine({ cpus: 1, ramBytes: 64 * 1024 * 1024 });
        const lp = machine.cpus[0]!;
        const mem = machine.memory;
        // The linear address uses index 1 at every level, so entry 1 of each table is on the path.
        const la = 2 ** 39 + 2 ** 30 + 2 ** 21 + 2 ** 12 + (s.offset & 0xfff);
        s.levels.forEach((f, level) => {
          const next = level < 3 ? BigInt(TABLES[level + 1]!) : BigInt(s.frame) << 12n;
          const ps = level < 3 && f.ps >= (level === 0 ? 3 : 2);
          // A low reserved bit only makes sense in a large-page entry; elsewhere it would just move the next table.
          const reserved = f.reserved >= 1n << 40n || (ps && level > 0) ? f.reserved : 0n;
          const e = next | (f.present ? 1n : 0n) | (f.rw ? 2n : 0n) | (f.us ? 4n : 0n) | (f.xd ? 1n << 63n : 0n) | (ps ? 0x80n : 0n) | reserved;
          mem.write64(TABLES[level]! + 8, e);
        });
        const cr0 = (1n << 31n) | 1n | (s.wp ? 1n << 16n : 0n);
        const cr4 = (1n << 5n) | (s.smep ? 1n << 20n : 0n);
        const efer = (1n << 8n) | (1n << 10n) | (s.nxe ? 1n << 11n : 0n);
        lp.cr0 = Number(cr0);
        lp.cr4 = Number(cr4);
        lp.efer = Number(efer);
        lp.cr3 = TABLES[0]!;

        const explained = explainPageWalk(BigInt(la), BigInt(TABLES[0]!), (pa) => mem.read64(Number(pa)), {
          cr0, cr4, efer, access: s.access, user: s.user, maxPhysAddr: lp.maxPhysAddr,
        });
        let machineResult: { physical: number } | { errorCode: number };
        try {
          machineResult = { physical: walk(lp, la, ACCESS[s.access], s.user ? 1 : 0) };
        } catch (e) {
          if (!(e instanceof CpuFault)) throw e;
          expect(e.vector).toBe(14);
          machineResult = { errorCode: e.errorCode };
        }
        seen.add('physical' in machineResult ? 'mapped' : (machineResult.errorCode & 8) !== 0 ? 'reserved' : (machineResult.errorCode & 1) !== 0 ? 'protection' : 'not-present');
        if ('physical' in machineResult) {
          expect(explained.fault, explained.format()).toBeUndefined();
          expect(explained.physical).toBe(BigInt(machineResult.physical));
        } else {
          expect(explained.fault?.errorCode, explained.format()).toBe(machineResult.errorCode);
        }
      }),
      { numRuns: 400, seed: 5 },
    );
    // The generator must reach every kind of outcome, or the comparison proves little.
    expect([...seen].sort()).toEqual(['mapped', 'not-present', 'protection', 'reserved']);
  });
});
