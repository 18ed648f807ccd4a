// Physical memory of the emulated PC: sparse 4-KByte frames, a memory map (RAM, holes, MMIO).
//
// Physical addresses are plain JS numbers (< 2^52, exact in a double). Frames are allocated on first
// write, so a machine with "64 GiB" costs only what the guest touches. Reads of untouched RAM return 0.
// Reads of a hole return all ones and writes are dropped: what a PC chipset does for an address no
// device decodes ("master abort").

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;

/** A device that decodes a range of physical addresses (e.g. the local APIC at FEE00000H). */
export interface MmioDevice {
  readonly name: string;
  /** `offset` is relative to the region base; `size` is 1, 2, 4 or 8. Returns the value (low bytes first). */
  read(offset: number, size: 1 | 2 | 4 | 8): bigint;
  write(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
}

/** Called before a write of `size` bytes at `pa` lands in the watched frame `pfn`. */
export type WriteListener = (pfn: number, pa: number, size: number) => void;

export interface MemoryRegion {
  readonly base: number;
  readonly size: number;
  readonly kind: 'ram' | 'mmio';
  readonly device?: MmioDevice;
}

export interface PhysicalMemoryOptions {
  /** Bytes of RAM starting at physical address 0. */
  ramBytes: number;
}

export class PhysicalMemory {
  readonly ramBytes: number;
  private readonly frames = new Map<number, Uint8Array>();
  private readonly views = new Map<number, DataView>();
  private readonly mmio: MemoryRegion[] = [];
  /**
   * Watched frames: frames that hold decoded (cached) guest code, or a line an address-range monitor (MONITOR)
   * is armed on. A write to one of them calls the write listeners, which drop the cached code (self-modifying
   * code then runs the new bytes) or trigger the monitor. The CPU's fast write path never covers a watched
   * frame, so every such write passes through here.
   */
  private readonly codeFrames = new Set<number>();
  private readonly codeWriteListeners: WriteListener[] = [];
  private readonly codeWatchListeners: ((pfn: number) => void)[] = [];
  /** Bumped whenever a frame's bytes change through write paths that code caches care about. */
  writeGeneration = 0;

  constructor(opts: PhysicalMemoryOptions) {
    this.ramBytes = opts.ramBytes;
  }

  /** Register an MMIO region. It takes precedence over RAM at the same addresses. */
  addMmio(base: number, size: number, device: MmioDevice): void {
    this.mmio.push({ base, size, kind: 'mmio', device });
  }

  /** The memory map, for inspectors and for the kernel's allocator. */
  regions(): MemoryRegion[] {
    return [{ base: 0, size: this.ramBytes, kind: 'ram' }, ...this.mmio];
  }

  findMmio(pa: number): MemoryRegion | undefined {
    for (const r of this.mmio) if (pa >= r.base && pa < r.base + r.size) return r;
    return undefined;
  }

  isRam(pa: number): boolean {
    return pa >= 0 && pa < this.ramBytes && this.findMmio(pa) === undefined;
  }

  /**
   * The backing frame for a RAM page, or undefined for a hole / MMIO page.
   * With `create`, an untouched RAM frame is allocated (zero-filled).
   * Hot paths (the interpreter, the TLB) keep these arrays to access memory directly.
   */
  frame(pfn: number, create: boolean): Uint8Array | undefined {
    let f = this.frames.get(pfn);
    if (f !== undefined) return f;
    const pa = pfn * PAGE_SIZE;
    if (!this.isRam(pa)) return undefined;
    if (!create) return undefined;
    f = new Uint8Array(PAGE_SIZE);
    this.frames.set(pfn, f);
    this.views.set(pfn, new DataView(f.buffer));
    return f;
  }

  /** A DataView on a RAM frame (little-endian multi-byte access for the CPU's fast paths). */
  frameView(pfn: number, create: boolean): DataView | undefined {
    const v = this.views.get(pfn);
    if (v !== undefined) return v;
    return this.frame(pfn, create) === undefined ? undefined : this.views.get(pfn);
  }

  /** Mark a frame as holding cached code (see `codeFrames`). Listeners revoke fast write access to it. */
  watchCode(pfn: number): void {
    if (this.codeFrames.has(pfn)) return;
    this.codeFrames.add(pfn);
    for (const l of this.codeWatchListeners) l(pfn);
  }
  isCodeFrame(pfn: number): boolean {
    return this.codeFrames.has(pfn);
  }
  /** `onWrite(pfn, pa, size)` runs when a watched frame is written (then the frame is unwatched). */
  addCodeListeners(onWrite: WriteListener, onWatch: (pfn: number) => void): void {
    this.codeWriteListeners.push(onWrite);
    this.codeWatchListeners.push(onWatch);
  }
  /** A listener for writes to watched frames only (e.g. an address-range monitor); see `watchCode`. */
  addWriteListener(onWrite: WriteListener): void {
    this.codeWriteListeners.push(onWrite);
  }
  private noteWrite(pfn: number, pa: number, size: number): void {
    if (this.codeFrames.size !== 0 && this.codeFrames.delete(pfn)) {
      for (const l of this.codeWriteListeners) l(pfn, pa, size);
    }
  }

  read8(pa: number): number {
    const f = this.frames.get(Math.floor(pa / PAGE_SIZE));
    if (f !== undefined) return f[pa & PAGE_MASK]!;
    return Number(this.slowRead(pa, 1));
  }

  write8(pa: number, v: number): void {
    const pfn = Math.floor(pa / PAGE_SIZE);
    const f = this.frame(pfn, true);
    if (f !== undefined) {
      this.noteWrite(pfn, pa, 1);
      f[pa & PAGE_MASK] = v;
    } else this.slowWrite(pa, 1, BigInt(v & 0xff));
  }

  read16(pa: number): number {
    const off = pa & PAGE_MASK;
    if (off <= PAGE_SIZE - 2) {
      const v = this.views.get(Math.floor(pa / PAGE_SIZE));
      if (v !== undefined) return v.getUint16(off, true);
    }
    return Number(this.read(pa, 2));
  }
  read32(pa: number): number {
    const off = pa & PAGE_MASK;
    if (off <= PAGE_SIZE - 4) {
      const v = this.views.get(Math.floor(pa / PAGE_SIZE));
      if (v !== undefined) return v.getUint32(off, true);
    }
    return Number(this.read(pa, 4));
  }
  read64(pa: number): bigint {
    return this.read(pa, 8);
  }
  write16(pa: number, v: number): void {
    this.write(pa, 2, BigInt(v & 0xffff));
  }
  write32(pa: number, v: number): void {
    const off = pa & PAGE_MASK;
    if (off <= PAGE_SIZE - 4) {
      const pfn = Math.floor(pa / PAGE_SIZE);
      const view = this.views.get(pfn);
      if (view !== undefined) {
        this.noteWrite(pfn, pa, 4);
        view.setUint32(off, v >>> 0, true);
        return;
      }
    }
    this.write(pa, 4, BigInt(v >>> 0));
  }
  write64(pa: number, v: bigint): void {
    this.write(pa, 8, BigInt.asUintN(64, v));
  }

  /** Little-endian read of 1, 2, 4 or 8 bytes; may cross a page boundary. */
  read(pa: number, size: 1 | 2 | 4 | 8): bigint {
    const off = pa & PAGE_MASK;
    if (off + size <= PAGE_SIZE) {
      const region = this.findMmio(pa);
      if (region !== undefined) return region.device!.read(pa - region.base, size);
    }
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.read8(pa + i));
    return v;
  }

  /** Little-endian write of 1, 2, 4 or 8 bytes; may cross a page boundary. */
  write(pa: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    const off = pa & PAGE_MASK;
    if (off + size <= PAGE_SIZE) {
      const region = this.findMmio(pa);
      if (region !== undefined) {
        region.device!.write(pa - region.base, size, BigInt.asUintN(size * 8, value));
        return;
      }
    }
    for (let i = 0; i < size; i++) this.write8(pa + i, Number((value >> BigInt(8 * i)) & 0xffn));
  }

  readBytes(pa: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.read8(pa + i);
    return out;
  }

  writeBytes(pa: number, bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.write8(pa + i, bytes[i]!);
  }

  private slowRead(pa: number, size: 1 | 2 | 4 | 8): bigint {
    const region = this.findMmio(pa);
    if (region !== undefined) return region.device!.read(pa - region.base, size);
    if (this.isRam(pa)) return 0n; // untouched RAM frame
    return (1n << BigInt(size * 8)) - 1n; // hole: master abort reads all ones
  }

  private slowWrite(pa: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    const region = this.findMmio(pa);
    if (region !== undefined) region.device!.write(pa - region.base, size, value);
    // else: a hole; the write is dropped
  }
}
