// Decoded-code cache ("basic blocks"): decoding is done once per instruction, not once per execution.
//
// A block is a run of instructions starting at a physical address, decoded for one code size, ending at a
// branch or any instruction that can change how later instructions decode or run (mode, CR, IF, …), at the
// end of the 4-KByte page, or after MAX_BLOCK instructions. Blocks are keyed by physical address, so the
// same code mapped twice shares a block and a remapped page never runs stale code.
//
// Self-modifying code: the frame a block came from is "watched" (PhysicalMemory.watchCode). CPUs then lose
// their fast write path to it, so every write reaches PhysicalMemory, which tells the cache to drop the
// page's blocks. `epoch` changes on every invalidation; a block being executed stops early when it does.

import type { PhysicalMemory } from './memory.ts';
import type { Insn } from './insn.ts';

export const MAX_BLOCK = 48;

export class Block {
  constructor(
    readonly cache: CodeCache,
    readonly key: number,
    readonly insns: Insn[],
    /** Sum of instruction lengths (the block's bytes are contiguous). */
    readonly bytes: number,
  ) {}
  /** Offset of instruction i from the block start. */
  offsetOf(i: number): number {
    let o = 0;
    for (let j = 0; j < i; j++) o += this.insns[j]!.len;
    return o;
  }
  /** Times entered; hot blocks may be compiled (src/machine/jit.ts). */
  hits = 0;
  /** Compiled form, when the JIT accepted the block: runs the whole block, returns nothing. */
  compiled: ((lp: never, budget: number) => number) | null = null;
  jitFailed = false;
  /** How many leading instructions the compiled form covers, and whether it ends with the block's branch. */
  compiledCount = 0;
  compiledEnds = false;
}

export class CodeCache {
  private readonly blocks = new Map<number, Block>();
  private readonly byPage = new Map<number, number[]>();
  /** Bumped whenever blocks are invalidated. */
  epoch = 0;
  /** TLB flush callbacks of the LPs sharing this memory (run when a frame starts being watched). */
  readonly onWatch: (() => void)[] = [];

  constructor(readonly memory: PhysicalMemory) {
    memory.addCodeListeners(
      (pfn) => this.invalidatePage(pfn),
      () => { for (const f of this.onWatch) f(); },
    );
  }

  static keyOf(phys: number, bits: number): number {
    return phys * 4 + (bits === 64 ? 2 : bits === 32 ? 1 : 0);
  }

  get(key: number): Block | undefined {
    return this.blocks.get(key);
  }

  add(block: Block, pfn: number): void {
    this.blocks.set(block.key, block);
    let list = this.byPage.get(pfn);
    if (list === undefined) this.byPage.set(pfn, (list = []));
    list.push(block.key);
    this.memory.watchCode(pfn);
  }

  invalidatePage(pfn: number): void {
    const list = this.byPage.get(pfn);
    if (list === undefined) return;
    for (const k of list) this.blocks.delete(k);
    this.byPage.delete(pfn);
    this.epoch++;
  }

  clear(): void {
    this.blocks.clear();
    this.byPage.clear();
    this.epoch++;
  }

  get size(): number {
    return this.blocks.size;
  }
}

const caches = new WeakMap<PhysicalMemory, CodeCache>();
/** The one code cache of a physical memory (shared by all its LPs). */
export function codeCacheFor(memory: PhysicalMemory): CodeCache {
  let c = caches.get(memory);
  if (c === undefined) caches.set(memory, (c = new CodeCache(memory)));
  return c;
}
