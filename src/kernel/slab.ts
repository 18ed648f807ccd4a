// kmalloc / kzalloc / kfree: small objects carved out of whole pages by size class.
// What matters for a hypervisor, as on Linux:
//  - the memory is physically contiguous (it lives in the direct map), so virt_to_phys works;
//  - kmalloc does NOT zero (kzalloc does);
//  - power-of-two sizes are naturally aligned (kmalloc(4096) is page aligned), since Linux 5.4.
// Freed objects are filled with 0x6b (Linux's POISON_FREE), so use-after-free reads look wrong.
import type { PhysicalMemory } from '../machine/memory.ts';
import { PAGE_OFFSET, PAGE_SIZE } from './layout.ts';
import type { PageAllocator } from './page-alloc.ts';

const POISON_FREE = 0x6b;
const SMALLEST = 8;

interface Allocation {
  size: number;
  /** Size class in bytes (≤ PAGE_SIZE), or the page order for large allocations. */
  klass: number;
  large: boolean;
}

export type KfreeOutcome = 'ok' | 'null' | 'invalid' | 'double-free';

export class Slab {
  /** Free object addresses (physical) per size class. */
  private readonly freeLists = new Map<number, number[]>();
  private readonly live = new Map<number, Allocation>();
  private readonly freed = new Set<number>();

  constructor(
    private readonly memory: PhysicalMemory,
    private readonly pages: PageAllocator,
  ) {}

  /** Returns a direct-map virtual address, or 0n (NULL) when out of memory or size is 0. */
  kmalloc(size: number, zero: boolean): bigint {
    if (!Number.isInteger(size) || size <= 0) return 0n;
    let pa: number;
    let alloc: Allocation;
    if (size > PAGE_SIZE) {
      const order = Math.ceil(Math.log2(Math.ceil(size / PAGE_SIZE)));
      const pfn = this.pages.allocPages(order, zero);
      if (pfn < 0) return 0n;
      pa = pfn * PAGE_SIZE;
      alloc = { size, klass: order, large: true };
    } else {
      const klass = Math.max(SMALLEST, 2 ** Math.ceil(Math.log2(size)));
      const list = this.freeList(klass);
      if (list.length === 0 && !this.refill(klass)) return 0n;
      pa = list.pop()!;
      if (zero) this.memory.writeBytes(pa, new Uint8Array(klass));
      alloc = { size, klass, large: false };
    }
    this.live.set(pa, alloc);
    this.freed.delete(pa);
    return PAGE_OFFSET + BigInt(pa);
  }

  kfree(va: bigint): KfreeOutcome {
    if (va === 0n) return 'null'; // kfree(NULL) is a no-op
    const pa = Number(va - PAGE_OFFSET);
    const alloc = this.live.get(pa);
    if (alloc === undefined) return this.freed.has(pa) ? 'double-free' : 'invalid';
    this.live.delete(pa);
    this.freed.add(pa);
    if (alloc.large) {
      this.pages.freePages(pa / PAGE_SIZE, alloc.klass);
    } else {
      this.memory.writeBytes(pa, new Uint8Array(alloc.klass).fill(POISON_FREE));
      this.freeList(alloc.klass).push(pa);
    }
    return 'ok';
  }

  /** ksize(): the usable size of an allocation, or 0 if `va` is not one. */
  ksize(va: bigint): number {
    const a = this.live.get(Number(va - PAGE_OFFSET));
    if (a === undefined) return 0;
    return a.large ? PAGE_SIZE << a.klass : a.klass;
  }

  liveCount(): number {
    return this.live.size;
  }

  private freeList(klass: number): number[] {
    let l = this.freeLists.get(klass);
    if (l === undefined) {
      l = [];
      this.freeLists.set(klass, l);
    }
    return l;
  }

  private refill(klass: number): boolean {
    const pfn = this.pages.allocPages(0, false);
    if (pfn < 0) return false;
    const list = this.freeList(klass);
    // Push in reverse so objects are handed out lowest address first.
    for (let off = PAGE_SIZE - klass; off >= 0; off -= klass) list.push(pfn * PAGE_SIZE + off);
    return true;
  }
}
