// The cache model that makes memory types visible on devices (design: README.md, "A cache model that makes memory
// types visible"). RAM never comes here: RAM behaves the same under every memory type, so its pages keep their frame
// in the TLB and the interpreter and the block compiler never ask for a type. A device page (MMIO, or a hole no
// device decodes) has no frame in the TLB; its accesses reach `physRead`/`physWrite` in lp.ts, which hand them to
// this model with the access type the TLB fill decided (`noteFill`, below). What each type does there:
//
//   UC, UC-  the device, every time, in order; first drains the write-combining buffers ("a read or write to
//            uncached memory" is a serializing event for them)
//   WC       reads go to the device (uncached); writes collect in one of WC_BUFFERS 64-byte buffers until a fence,
//            a serializing instruction, an interrupt, an UC access, the buffer filling up, or a write to another
//            line when all buffers are in use (the oldest goes); a drain writes each run of written bytes, lowest
//            address first, so the device sees the last value of each byte, once
//   WT       reads fill a 64-byte line (later reads hit it: stale); writes go to the device and update the line
//   WP       reads as WT; writes go to the device and invalidate the line
//   WB       reads fill a line; writes fill it (write-allocate) and change only the line, which is now dirty: the
//            device sees nothing until WBINVD, CLFLUSH or eviction writes the whole line back; INVD drops it
//   CR0.CD=1 "no-fill" mode: a line already cached still serves reads and takes writes (a clean one writes through
//            too), a miss goes to the device as UC does. See SDM Vol. 3A, "Cache Control Registers and Bits"
//            (Table "Cache Operating Modes").
// See SDM Vol. 3A, "Methods of Caching Available" and "Buffering of Write Combining Memory Locations".
//
// A line fill reads the whole line from the device in ascending 8-byte reads, and a write-back writes it the same
// way: on hardware a fill also reads the neighbouring registers (a WB-mapped FIFO loses bytes that way) and a
// write-back rewrites them. An access of another type to a cached line snoops it first (written back if dirty, then
// invalidated), as a processor with self-snoop (CPUID.01H:EDX.SS[27]) handles conflicting memory types; an
// undefined type (overlapping MTRRs the SDM leaves undefined, a reserved PAT encoding) acts as UC here.
//
// The lines belong to the coherence domain (one per PhysicalMemory, shared by its LPs: the processors' caches are
// coherent with each other, only the device does not snoop); the WC buffers belong to each LP.
//
// Determinism: nothing depends on time. Lines leave the cache by WBINVD, INVD, CLFLUSH/CLFLUSHOPT, a snoop, or —
// only once LINE_CAPACITY lines are cached — by eviction of the line filled first (written back if dirty). No device
// has that many lines, so for a device the effect of a wrong type lasts until an instruction ends it, in every run;
// the bound only keeps a guest that sweeps a WB-mapped hole from growing the cache without end.
import { MEMORY_TYPE, memoryTypeName, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { MSR_IA32_CR_PAT } from '../../x86/msr.ts';
import type { PhysicalMemory } from '../memory.ts';
import type { LogicalProcessor } from '../lp.ts';
import { PERM_LARGE, TLB_ENTRIES } from '../tlb.ts';
import { resolveMemoryType, type MemoryTypeDecision, type MemoryTypeInput } from './memory-type.ts';
import { readMtrrState } from './read-mtrrs.ts';
import type { MtrrState } from './mtrr-state.ts';

export const LINE_SIZE = 64;
/** Lines the coherence domain holds before it evicts the one filled first. */
export const LINE_CAPACITY = 32768;
/** Write-combining buffers per LP (the number is model-specific; SDM Vol. 3A, "Write Combining"). */
export const WC_BUFFERS = 4;

/** An access type as the TLB keeps it per entry: the memory type (bits 2:0), and NO_FILL for CR0.CD = 1. */
export const NO_FILL = 0x08;
/** The access type of a slot no device-page fill has set (and of physical accesses without a translation). */
const UNKNOWN = MEMORY_TYPE.UC;

/** Which rule made a fill's type (and from which inputs): the explanation of one device page. */
export interface PageTypeRecord {
  /** The access type (memory type | NO_FILL). */
  readonly access: number;
  readonly input: MemoryTypeInput;
  readonly decision: MemoryTypeDecision;
  /**
   * The LP has no MTRRs (a machine without a CPU model) and no EPT translated the access: no firmware gave the device
   * page a type, and the model accesses it as UC, whatever the decision says (it would be the PAT type alone).
   */
  readonly noMtrrs: boolean;
}

export type CacheEventKind =
  /** A line was read from the device. */
  | 'fill'
  /** A read was served from a cached line (the device was not asked: possibly stale). */
  | 'hit'
  /** A write changed only a dirty line (the device did not see it). */
  | 'held'
  /** A dirty line was written to the device (WBINVD, CLFLUSH, snoop, eviction). */
  | 'write-back'
  /** A dirty line was invalidated without a write-back (INVD): those writes are lost. */
  | 'dropped'
  /** A write went into a write-combining buffer. */
  | 'combined'
  /** A write-combining buffer was written to the device. */
  | 'drained';

export interface CacheEvent {
  readonly kind: CacheEventKind;
  /** The physical address of the access (of the line, for fill, write-back, dropped, drained). */
  readonly pa: number;
  readonly size: number;
  /** The memory type's name ("WB", …; "no-fill" for CR0.CD = 1). */
  readonly type: string;
}
/** Events kept per LP (the first ones: those explain a failure); later ones are only counted. */
export const EVENTS_KEPT = 256;

interface Line {
  readonly bytes: Uint8Array;
  dirty: boolean;
  /** Filled by a WB access (held exclusively: a write hit in no-fill mode stays in the line). */
  readonly writeBack: boolean;
}

/** The cached device lines of one coherence domain, by line address, in fill order. */
class DeviceLines {
  readonly lines = new Map<number, Line>();
}
const DOMAINS = new WeakMap<PhysicalMemory, DeviceLines>();
function domainOf(memory: PhysicalMemory): DeviceLines {
  let d = DOMAINS.get(memory);
  if (d === undefined) DOMAINS.set(memory, (d = new DeviceLines()));
  return d;
}

interface WcBuffer {
  readonly base: number;
  readonly bytes: Uint8Array;
  readonly valid: Uint8Array;
  count: number;
}

export class CacheModel {
  /**
   * Per TLB slot that holds a device page (valid while the slot's entry is): the fill's memory-type inputs (leaf low
   * dword, EPT type, guest-physical page, large page), and the access type decided from them with the CR0.CD, IA32_PAT
   * and MTRR generation it was decided under.
   */
  private readonly slotLeaf = new Float64Array(TLB_ENTRIES);
  private readonly slotEpt = new Int8Array(TLB_ENTRIES);
  private readonly slotGpa = new Float64Array(TLB_ENTRIES);
  private readonly slotPhys = new Float64Array(TLB_ENTRIES);
  private readonly slotLarge = new Uint8Array(TLB_ENTRIES);
  private readonly slotType = new Uint8Array(TLB_ENTRIES);
  private readonly slotCd = new Int32Array(TLB_ENTRIES);
  private readonly slotPat: bigint[] = new Array<bigint>(TLB_ENTRIES).fill(-1n);
  private readonly slotGeneration = new Float64Array(TLB_ENTRIES).fill(-1);
  /** Bumped by every MTRR write. */
  private generation = 0;
  /** The last type decided for each device page (physical page number), for explanations. */
  readonly pages = new Map<number, PageTypeRecord>();
  readonly events: CacheEvent[] = [];
  readonly eventCounts: Record<CacheEventKind, number> = { fill: 0, hit: 0, held: 0, 'write-back': 0, dropped: 0, combined: 0, drained: 0 };
  private readonly domain: DeviceLines;
  /** In use, oldest first. */
  private readonly wc: WcBuffer[] = [];
  /** The MTRRs as plain data, read once per change (undefined: to be read). */
  private mtrrs: MtrrState | null | undefined = undefined;

  private readonly memory: PhysicalMemory;

  constructor(private readonly lp: LogicalProcessor) {
    this.memory = lp.memory;
    this.domain = domainOf(lp.memory);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The access type of a TLB fill
  // ---------------------------------------------------------------------------------------------------------------

  /**
   * A TLB entry for the device page `phys` was filled in slot `slot`: keep what its memory type depends on besides
   * CR0.CD, IA32_PAT and the MTRRs — the leaf paging entry (`leaf`: its low dword; -1 with paging off; `perm` tells a
   * large page) and the EPT leaf (`ept`: memory type | ignore PAT << 3; -1 without EPT; `gpaPage`: the guest-physical
   * page) — and decide the type. See SDM Vol. 3A, "Precedence of Cache Controls" and Vol. 3C, "EPT and Memory Typing".
   */
  noteFill(slot: number, phys: number, perm: number, leaf: number, ept: number, gpaPage: number): void {
    this.slotLeaf[slot] = leaf;
    this.slotEpt[slot] = ept;
    this.slotGpa[slot] = gpaPage;
    this.slotPhys[slot] = phys;
    this.slotLarge[slot] = (perm & PERM_LARGE) !== 0 ? 1 : 0;
    this.decide(slot);
  }

  /**
   * The access type of the device page in `slot`. Decided at the fill, and again if CR0.CD, IA32_PAT or an MTRR has
   * changed since (a VM entry or exit may load CR0 and IA32_PAT without a TLB flush; the entry's leaf and EPT inputs
   * stay those of its fill, as a TLB entry's do).
   */
  accessType(slot: number): number {
    const lp = this.lp;
    if (this.slotGeneration[slot] !== this.generation || this.slotCd[slot] !== (lp.cr0 & CR0.CD) || this.slotPat[slot] !== lp.rdmsr(MSR_IA32_CR_PAT)) {
      this.decide(slot);
    }
    return this.slotType[slot]!;
  }

  /** An MTRR was written: types are decided again at the next access (mtrr-registers.ts calls this). */
  typesChanged(): void {
    this.mtrrs = undefined;
    this.generation += 1;
  }

  private decide(slot: number): void {
    const lp = this.lp;
    if (this.mtrrs === undefined) this.mtrrs = readMtrrState(lp);
    const leaf = this.slotLeaf[slot]!, ept = this.slotEpt[slot]!, phys = this.slotPhys[slot]!;
    const pat = lp.rdmsr(MSR_IA32_CR_PAT);
    const input: MemoryTypeInput = {
      pa: BigInt(ept >= 0 ? this.slotGpa[slot]! : phys),
      cr0Cd: (lp.cr0 & CR0.CD) !== 0,
      mtrrs: this.mtrrs,
      paging: leaf < 0 ? null : { leaf: BigInt(leaf >>> 0), largePage: this.slotLarge[slot] === 1, pat },
      ept: ept < 0 ? undefined : { memoryType: (ept & 7) as MtrrMemoryType, ignorePat: (ept & 8) !== 0 },
    };
    const decision = resolveMemoryType(input);
    // Without MTRRs nothing marks the MMIO hole UC: device pages stay UC there, as every machine without a CPU model
    // always had them (and as the MTRRs of every board make them).
    const noMtrrs = input.mtrrs === null && input.ept === undefined;
    const access = decision.rule === 'cr0-cd' ? MEMORY_TYPE.UC | NO_FILL
      : decision.type === 'undefined' || noMtrrs ? MEMORY_TYPE.UC : decision.type;
    this.slotType[slot] = access;
    this.slotCd[slot] = lp.cr0 & CR0.CD;
    this.slotPat[slot] = pat;
    this.slotGeneration[slot] = this.generation;
    this.pages.set(Math.floor(phys / 4096), { access, input, decision, noMtrrs });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Accesses (one page, 1–8 bytes)
  // ---------------------------------------------------------------------------------------------------------------

  read(pa: number, size: 1 | 2 | 4 | 8, access: number = UNKNOWN): bigint {
    const type = access & 7;
    if (access & NO_FILL) {
      if (!this.cachedAny(pa, size)) return this.uncachedRead(pa, size);
    } else if (type === MEMORY_TYPE.UC || type === MEMORY_TYPE.UC_MINUS) {
      return this.uncachedRead(pa, size);
    } else if (type === MEMORY_TYPE.WC) {
      this.snoop(pa, size);
      return this.memory.read(pa, size);
    }
    const fills = this.eventCounts.fill;
    let v = 0n;
    for (let k = size - 1; k >= 0; k--) {
      const line = this.lineFor(pa + k, access);
      v = (v << 8n) | BigInt(line === null ? Number(this.memory.read(pa + k, 1)) : line.bytes[(pa + k) % LINE_SIZE]!);
    }
    if (this.eventCounts.fill === fills) this.note('hit', pa, size, access);
    return v;
  }

  write(pa: number, size: 1 | 2 | 4 | 8, value: bigint, access: number = UNKNOWN): void {
    const type = access & 7;
    if (access & NO_FILL) return this.noFillWrite(pa, size, value);
    switch (type) {
      case MEMORY_TYPE.WC:
        this.snoop(pa, size);
        return this.combine(pa, size, value, access);
      case MEMORY_TYPE.WT:
        this.memory.write(pa, size, value);
        return this.updateLines(pa, size, value, false);
      case MEMORY_TYPE.WP:
        this.snoop(pa, size);
        return this.memory.write(pa, size, value);
      case MEMORY_TYPE.WB:
        for (let k = 0; k < size; k++) {
          const line = this.lineFor(pa + k, access)!;
          line.bytes[(pa + k) % LINE_SIZE] = Number((value >> BigInt(8 * k)) & 0xffn);
          line.dirty = true;
        }
        return this.note('held', pa, size, access);
      default:
        this.fence();
        this.snoop(pa, size);
        return this.memory.write(pa, size, value);
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The instructions that end the effects
  // ---------------------------------------------------------------------------------------------------------------

  /**
   * Drain every write-combining buffer, oldest first: SFENCE, MFENCE, serializing instructions, I/O instructions,
   * interrupts and exceptions, UC accesses. Nothing to do (one comparison) while no WC write is pending. See SDM
   * Vol. 3A, "Buffering of Write Combining Memory Locations".
   */
  fence(): void {
    while (this.wc.length !== 0) this.drain(this.wc.shift()!);
  }

  /** WBINVD: write back every dirty line, invalidate them all. See SDM Vol. 2D, "WBINVD—Write Back and Invalidate Cache". */
  wbinvd(): void {
    this.fence();
    for (const [base, line] of [...this.domain.lines]) this.evict(base, line, true);
  }

  /**
   * INVD: invalidate every line without writing it back — the writes held in dirty lines are lost. See SDM Vol. 2A,
   * "INVD—Invalidate Internal Caches" ("Data cached internally and not written back to main memory will be lost").
   */
  invd(): void {
    this.fence();
    for (const [base, line] of [...this.domain.lines]) this.evict(base, line, false);
  }

  /**
   * CLFLUSH/CLFLUSHOPT of the line holding physical address `pa`: written back if dirty, invalidated, in the whole
   * coherence domain. See SDM Vol. 2A, "CLFLUSH—Flush Cache Line" and "CLFLUSHOPT—Flush Cache Line Optimized".
   */
  clflush(pa: number): void {
    const base = pa - (pa % LINE_SIZE);
    const line = this.domain.lines.get(base);
    if (line !== undefined) this.evict(base, line, true);
  }

  /** Lines cached in the coherence domain (for tests and explanations). */
  cachedLines(): { base: number; dirty: boolean }[] {
    return [...this.domain.lines].map(([base, l]) => ({ base, dirty: l.dirty }));
  }

  /** Write-combining buffers in use on this LP, oldest first: their line and how many bytes are pending. */
  pendingWriteCombining(): { base: number; bytes: number }[] {
    return this.wc.map((b) => ({ base: b.base, bytes: b.count }));
  }

  // ---------------------------------------------------------------------------------------------------------------

  private uncachedRead(pa: number, size: 1 | 2 | 4 | 8): bigint {
    this.fence();
    this.snoop(pa, size);
    return this.memory.read(pa, size);
  }

  /** The line holding `pa`, filled from the device on a miss — except in no-fill mode, where a miss gives null. */
  private lineFor(pa: number, access: number): Line | null {
    const base = pa - (pa % LINE_SIZE);
    const hit = this.domain.lines.get(base);
    if (hit !== undefined) return hit;
    if (access & NO_FILL) return null;
    const lines = this.domain.lines;
    if (lines.size >= LINE_CAPACITY) {
      const [oldest, line] = lines.entries().next().value as [number, Line];
      this.evict(oldest, line, true);
    }
    const bytes = new Uint8Array(LINE_SIZE);
    for (let k = 0; k < LINE_SIZE; k += 8) {
      const v = this.memory.read(base + k, 8);
      for (let j = 0; j < 8; j++) bytes[k + j] = Number((v >> BigInt(8 * j)) & 0xffn);
    }
    const line: Line = { bytes, dirty: false, writeBack: (access & 7) === MEMORY_TYPE.WB };
    lines.set(base, line);
    this.note('fill', base, LINE_SIZE, access);
    return line;
  }

  private cachedAny(pa: number, size: number): boolean {
    const lines = this.domain.lines;
    return lines.has(pa - (pa % LINE_SIZE)) || lines.has(pa + size - 1 - ((pa + size - 1) % LINE_SIZE));
  }

  /**
   * CR0.CD = 1: a write hit updates the line — a WB line stays the only copy (now dirty), a WT or WP line writes
   * through as well; a miss goes to the device. ("Write hits update the cache. Only writes to shared lines and write
   * misses update system memory.")
   */
  private noFillWrite(pa: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (!this.cachedAny(pa, size)) {
      this.fence();
      return this.memory.write(pa, size, value);
    }
    let held = true;
    for (let k = 0; k < size; k++) {
      const line = this.lineFor(pa + k, NO_FILL);
      if (line === null || !line.writeBack) held = false;
    }
    this.updateLines(pa, size, value, held);
    if (held) this.note('held', pa, size, NO_FILL);
    else this.memory.write(pa, size, value);
  }

  /** Write `value` into the cached lines it falls in (no allocation); `dirty`: mark them dirty. */
  private updateLines(pa: number, size: number, value: bigint, dirty: boolean): void {
    for (let k = 0; k < size; k++) {
      const line = this.domain.lines.get(pa + k - ((pa + k) % LINE_SIZE));
      if (line === undefined) continue;
      line.bytes[(pa + k) % LINE_SIZE] = Number((value >> BigInt(8 * k)) & 0xffn);
      if (dirty) line.dirty = true;
    }
  }

  /** Self-snoop: an uncached or write-protected access to a cached line writes it back (if dirty) and drops it. */
  private snoop(pa: number, size: number): void {
    const lines = this.domain.lines;
    if (lines.size === 0) return;
    for (const base of new Set([pa - (pa % LINE_SIZE), pa + size - 1 - ((pa + size - 1) % LINE_SIZE)])) {
      const line = lines.get(base);
      if (line !== undefined) this.evict(base, line, true);
    }
  }

  private evict(base: number, line: Line, writeBack: boolean): void {
    this.domain.lines.delete(base);
    if (!line.dirty) return;
    if (!writeBack) return this.note('dropped', base, LINE_SIZE, MEMORY_TYPE.WB);
    for (let k = 0; k < LINE_SIZE; k += 8) {
      let v = 0n;
      for (let j = 7; j >= 0; j--) v = (v << 8n) | BigInt(line.bytes[k + j]!);
      this.memory.write(base + k, 8, v);
    }
    this.note('write-back', base, LINE_SIZE, MEMORY_TYPE.WB);
  }

  private combine(pa: number, size: number, value: bigint, access: number): void {
    for (let k = 0; k < size; k++) {
      const a = pa + k;
      const base = a - (a % LINE_SIZE);
      let buf = this.wc.find((b) => b.base === base);
      if (buf === undefined) {
        if (this.wc.length >= WC_BUFFERS) this.drain(this.wc.shift()!);
        buf = { base, bytes: new Uint8Array(LINE_SIZE), valid: new Uint8Array(LINE_SIZE), count: 0 };
        this.wc.push(buf);
      }
      const o = a % LINE_SIZE;
      buf.bytes[o] = Number((value >> BigInt(8 * k)) & 0xffn);
      if (buf.valid[o] === 0) {
        buf.valid[o] = 1;
        buf.count += 1;
      }
      // A full buffer is written out at once.
      if (buf.count === LINE_SIZE) {
        this.wc.splice(this.wc.indexOf(buf), 1);
        this.drain(buf);
      }
    }
    this.note('combined', pa, size, access);
  }

  /** Write a WC buffer's valid bytes: each aligned 8-byte chunk whole if complete, else in aligned 4/2/1-byte pieces. */
  private drain(buf: WcBuffer): void {
    const put = (o: number, n: 1 | 2 | 4 | 8): boolean => {
      for (let j = 0; j < n; j++) if (buf.valid[o + j] === 0) return false;
      let v = 0n;
      for (let j = n - 1; j >= 0; j--) v = (v << 8n) | BigInt(buf.bytes[o + j]!);
      this.memory.write(buf.base + o, n, v);
      return true;
    };
    const piece = (o: number, n: 1 | 2 | 4 | 8): void => {
      if (put(o, n) || n === 1) return;
      const half = (n / 2) as 1 | 2 | 4;
      piece(o, half);
      piece(o + half, half);
    };
    for (let o = 0; o < LINE_SIZE; o += 8) piece(o, 8);
    this.note('drained', buf.base, buf.count, MEMORY_TYPE.WC);
  }

  private note(kind: CacheEventKind, pa: number, size: number, access: number): void {
    this.eventCounts[kind] += 1;
    if (this.events.length < EVENTS_KEPT) this.events.push({ kind, pa, size, type: accessTypeName(access) });
  }
}

/** "WB", "UC-", …, or "no-fill (CR0.CD = 1)". */
export function accessTypeName(access: number): string {
  return access & NO_FILL ? 'no-fill (CR0.CD = 1)' : memoryTypeName(access & 7);
}
