// The page allocator: alloc_pages / __get_free_pages / get_zeroed_page / free_pages.
// Blocks of 2^order physically contiguous pages, aligned to their size (as a buddy allocator
// gives them). Like Linux, a fresh page is NOT zeroed unless asked: it holds whatever was there,
// which here is deterministic garbage, so code that forgets to initialise memory fails in tests.
import type { PhysicalMemory } from '../machine/memory.ts';
import { PAGE_SIZE } from './layout.ts';

export const MAX_ORDER = 10;

export class PageAllocator {
  /** One entry per page frame in the managed range: true = allocated. */
  private readonly used: Uint8Array;
  private rng: number;

  constructor(
    private readonly memory: PhysicalMemory,
    /** First and one-past-last page frame number the allocator hands out. */
    readonly firstPfn: number,
    readonly endPfn: number,
    seed: number,
  ) {
    this.used = new Uint8Array(endPfn - firstPfn);
    this.rng = seed >>> 0 || 1;
  }

  /** Allocate 2^order contiguous pages; returns the first pfn, or -1 when memory is exhausted. */
  allocPages(order: number, zero: boolean): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_ORDER) return -1;
    const count = 1 << order;
    // Naturally aligned blocks, lowest address first: deterministic and buddy-like.
    const start = Math.ceil(this.firstPfn / count) * count;
    for (let pfn = start; pfn + count <= this.endPfn; pfn += count) {
      if (this.isFree(pfn, count)) {
        this.used.fill(1, pfn - this.firstPfn, pfn - this.firstPfn + count);
        this.fill(pfn, count, zero);
        return pfn;
      }
    }
    return -1;
  }

  /** Allocate single pages that are deliberately NOT adjacent (vmalloc's backing pages). */
  allocScattered(pages: number): number[] | null {
    const out: number[] = [];
    let pfn = this.endPfn - 1;
    while (out.length < pages && pfn >= this.firstPfn) {
      // Take every other free page from the top down, so neighbours in the virtual range are
      // never neighbours in physical memory.
      if (this.isFree(pfn, 1) && (out.length === 0 || out[out.length - 1]! - pfn > 1)) {
        this.used[pfn - this.firstPfn] = 1;
        this.fill(pfn, 1, false);
        out.push(pfn);
      }
      pfn--;
    }
    if (out.length < pages) {
      for (const p of out) this.used[p - this.firstPfn] = 0;
      return null;
    }
    return out;
  }

  /** Free a block. Returns false when the block was not allocated (a double free). */
  freePages(pfn: number, order: number): boolean {
    const count = 1 << order;
    if (pfn < this.firstPfn || pfn + count > this.endPfn) return false;
    for (let i = 0; i < count; i++) if (this.used[pfn - this.firstPfn + i] === 0) return false;
    this.used.fill(0, pfn - this.firstPfn, pfn - this.firstPfn + count);
    return true;
  }

  isAllocated(pfn: number): boolean {
    return pfn >= this.firstPfn && pfn < this.endPfn && this.used[pfn - this.firstPfn] === 1;
  }

  freeCount(): number {
    let n = 0;
    for (const u of this.used) if (u === 0) n++;
    return n;
  }

  private isFree(pfn: number, count: number): boolean {
    for (let i = 0; i < count; i++) if (this.used[pfn - this.firstPfn + i] !== 0) return false;
    return true;
  }

  /** Zero the block, or fill it with pseudo-random bytes (xorshift32, seeded per kernel). */
  private fill(pfn: number, count: number, zero: boolean): void {
    const bytes = new Uint8Array(count * PAGE_SIZE);
    if (!zero) {
      let x = this.rng;
      for (let i = 0; i < bytes.length; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        bytes[i] = x & 0xff;
        bytes[i + 1] = (x >>> 8) & 0xff;
        bytes[i + 2] = (x >>> 16) & 0xff;
        bytes[i + 3] = (x >>> 24) & 0xff;
      }
      this.rng = x >>> 0 || 1;
    }
    this.memory.writeBytes(pfn * PAGE_SIZE, bytes);
  }
}
