// The inspectors pointed at a logical processor: read guest memory by linear address (through the
// LP's current page tables, without setting accessed/dirty bits or touching the TLB), and run
// gdb's x/nfu against it with the LP's registers.
//
//   examineLp(lp, 'x/4gx $rsp')     examineLp(lp, 'x/3i $rip')
import type { LogicalProcessor } from '../machine/lp.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import { examine } from './examine.ts';
import type { ExamineResult, ReadMemory } from './examine.ts';
import { explainPageWalk } from './page-walk.ts';
import { registersFromSnapshot } from './registers.ts';

/** Reads of RAM by physical address; holes and addresses beyond RAM are unreadable. */
export function physicalReader(memory: PhysicalMemory): ReadMemory {
  return (addr, size) => {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const pa = addr + BigInt(i);
      if (pa >= BigInt(memory.ramBytes) || !memory.isRam(Number(pa))) return null;
      out[i] = memory.read8(Number(pa));
    }
    return out;
  };
}

/** Reads by linear address, translated with the LP's paging state as a supervisor read. */
export function linearReader(lp: LogicalProcessor): ReadMemory {
  const physical = physicalReader(lp.memory);
  const read64 = (pa: bigint): bigint | null => {
    const b = physical(pa, 8);
    return b === null ? null : new DataView(b.buffer).getBigUint64(0, true);
  };
  return (addr, size) => {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const walk = explainPageWalk(BigInt.asUintN(64, addr + BigInt(i)), BigInt(lp.cr3), read64, {
        cr0: BigInt(lp.cr0), cr4: BigInt(lp.cr4), efer: BigInt(lp.efer), maxPhysAddr: lp.maxPhysAddr,
      });
      if (walk.physical === undefined) return null;
      const byte = physical(walk.physical, 1);
      if (byte === null) return null;
      out[i] = byte[0]!;
    }
    return out;
  };
}

/**
 * gdb's `x/nfu` on the LP's linear address space, with `$rax`…`$r15`, `$rip`, `$rsp`, `$cr3`…
 * available; `$pc` is CS.base + RIP (what the CPU fetches next, also in real mode).
 */
export function examineLp(lp: LogicalProcessor, spec: string, symbols?: ReadonlyMap<string, number | bigint>): ExamineResult {
  const snapshot = lp.snapshot();
  const regs = registersFromSnapshot(snapshot);
  regs['pc'] = BigInt.asUintN(64, snapshot.segments.cs.base + snapshot.rip);
  return examine(spec, linearReader(lp), { regs, bits: lp.bits, symbols });
}
