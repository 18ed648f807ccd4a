// A software TLB: direct-mapped, 4-KByte granular, invalidated by generation stamps instead of clearing.
//
// Each entry caches one linear page → physical page translation plus the permissions the page walk
// computed (so a hit needs no walk), and a direct reference to the backing RAM frame (so a hit needs
// no Map lookup). Large pages (2 MB, 1 GB) are cached as the 4-KByte pieces actually touched.
//
// Tagging (for VMX): an entry is valid only when its `stamp` equals the TLB's current stamp.
// stamp = context × 2^32 + generation(context). A context is a small number for one (VPID, EPTP) pair
// (0 = VMX root / no VPID). Switching contexts (`setContext`) changes the stamp without flushing, and
// switching back makes that context's entries valid again — as VPID-tagged hardware TLBs do. Flushing a
// context bumps its generation. See SDM Vol. 3C, "Virtual-Processor Identifiers (VPIDs)" and
// "Information That May Be Cached When Using EPT".

export const TLB_ENTRIES = 1024;
export const TLB_MASK = TLB_ENTRIES - 1;

/** Permission bits of an entry: bit (access * 2 + user). Access 0 = read, 1 = write, 2 = execute. */
export const PERM_READ_S = 1 << 0;
export const PERM_READ_U = 1 << 1;
export const PERM_WRITE_S = 1 << 2;
export const PERM_WRITE_U = 1 << 3;
export const PERM_EXEC_S = 1 << 4;
export const PERM_EXEC_U = 1 << 5;
export const PERM_ALL = 0x3f;
/** Set for entries that came from a 2-MByte or 1-GByte page (INVLPG then flushes more widely). */
export const PERM_LARGE = 1 << 6;

const CONTEXT_SCALE = 2 ** 32;

export class Tlb {
  readonly vpn = new Float64Array(TLB_ENTRIES).fill(NaN);
  /**
   * Linear address of the entry's page (vpn × 4096): hot paths compare `la - (la & 0xfff)` with it and index
   * with `(la >>> 12) & TLB_MASK`, which needs no division.
   */
  readonly page = new Float64Array(TLB_ENTRIES).fill(NaN);
  readonly stamp = new Float64Array(TLB_ENTRIES).fill(-1);
  readonly perm = new Int32Array(TLB_ENTRIES);
  /** Physical address of the page (4-KByte aligned). */
  readonly phys = new Float64Array(TLB_ENTRIES);
  /** The RAM frame backing the page, or null (MMIO, hole, the LP's APIC page) → slow path. */
  readonly bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(TLB_ENTRIES).fill(null);
  readonly views: (DataView | null)[] = new Array<DataView | null>(TLB_ENTRIES).fill(null);
  /** The stamp an entry must carry to be valid now. */
  current = 0;
  private context = 0;
  private readonly generations: number[] = [0];
  private hasLarge = false;

  fill(vpn: number, phys: number, perm: number, bytes: Uint8Array | null, view: DataView | null): number {
    const i = vpn & TLB_MASK;
    this.vpn[i] = vpn;
    this.page[i] = vpn * 4096;
    this.stamp[i] = this.current;
    this.perm[i] = perm;
    this.phys[i] = phys;
    this.bytes[i] = bytes;
    this.views[i] = view;
    if (perm & PERM_LARGE) this.hasLarge = true;
    return i;
  }

  /** Invalidate everything cached for the current context (MOV CR3, MOV CR0/CR4 paging bits). */
  flushAll(): void {
    this.generations[this.context] = (this.generations[this.context] ?? 0) + 1;
    this.current = this.context * CONTEXT_SCALE + this.generations[this.context]!;
    this.hasLarge = false;
  }

  /** Invalidate every context (INVEPT all-context, VMXOFF). */
  flushAllContexts(): void {
    for (let c = 0; c < this.generations.length; c++) this.generations[c]! += 1;
    this.current = this.context * CONTEXT_SCALE + this.generations[this.context]!;
    this.hasLarge = false;
  }

  /** INVLPG: drop the entry for one linear page (and everything when large pages are cached). */
  flushPage(vpn: number): void {
    if (this.hasLarge) {
      this.flushAll();
      return;
    }
    const i = vpn & TLB_MASK;
    if (this.vpn[i] === vpn) {
      this.vpn[i] = NaN;
      this.page[i] = NaN;
    }
  }

  /** Select the tagging context (see the file comment). Context 0 is VMX root operation. */
  setContext(context: number): void {
    while (this.generations.length <= context) this.generations.push(0);
    this.context = context;
    this.current = context * CONTEXT_SCALE + this.generations[context]!;
  }

  getContext(): number {
    return this.context;
  }
}
