// A software TLB: direct-mapped, 4-KByte granular, invalidated by generation stamps instead of clearing.
//
// Each entry caches one linear page → physical page translation plus the permissions the page walk
// computed (so a hit needs no walk), and a direct reference to the backing RAM frame (so a hit needs
// no Map lookup). Large pages (2 MB, 1 GB) are cached as the 4-KByte pieces actually touched.
//
// Tagging (for VMX): an entry is valid only when its `stamp` equals the TLB's current stamp.
// stamp = context × 2^32 + generation(context). A context is a small number for one (VPID, EP4TA) pair
// (0 = VPID 0000H without EPT: VMX root operation; src/vmx/vpid.ts hands out the others). Switching contexts
// (`setContext`) changes the stamp without flushing, and switching back makes that context's entries valid
// again — as VPID-tagged hardware TLBs do. Flushing a context bumps its generation. Contexts form groups
// (`setGroup`; for VMX, those of one VPID): what the running code invalidates itself (MOV CR3, INVLPG, …) goes for
// its whole group. See SDM Vol. 3C, "Virtual-Processor Identifiers (VPIDs)" and "Information That May Be Cached
// When Using EPT".
//
// An entry's permission bits are computed under the paging mode of its fill (CR0.WP, CR4.SMEP, EFER.NXE, …),
// which a MOV to CR0/CR4 or WRMSR that changes them flushes. A context left and re-entered across a VM
// transition may come back under another mode: `noteMode` records the mode its entries were filled under, and
// `checkMode` flushes them if it changed (invalidating more than required is always allowed).

import { CR0, CR4, EFER } from '../x86/control-registers.ts';

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
  /** Whether the current context holds pieces of large pages (INVLPG then flushes it); other contexts' flags. */
  private hasLarge = false;
  private readonly largeIn: boolean[] = [false];
  /** The paging mode (`pagingModeKey`) each context's entries were filled under; -1 = unknown. */
  private readonly modes: number[] = [-1];
  /** Each context's group (the members, itself included; one array shared by all of them), and the groups by id. */
  private readonly membersOf: number[][] = [[0]];
  private readonly groups = new Map<number, number[]>();

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

  /**
   * Invalidate everything cached for the current context's group (MOV CR3, MOV CR0/CR4 paging bits): these
   * operations act on every EP4TA of the current VPID. See SDM Vol. 3C, "Operations that Invalidate Cached Mappings".
   */
  flushAll(): void {
    const group = this.membersOf[this.context]!;
    for (let k = 0; k < group.length; k++) this.bump(group[k]!);
  }

  /** Invalidate every context (the emulator's own reasons: a frame became code, the APIC page moved; INIT). */
  flushAllContexts(): void {
    for (let c = 0; c < this.generations.length; c++) this.bump(c);
  }

  /** Invalidate everything cached for `context` alone, current or not (INVVPID, INVEPT, a paging-mode change). */
  flushContext(context: number): void {
    if (context < this.generations.length) this.bump(context); // else never used: nothing cached
  }

  /** INVVPID individual-address: drop one linear page of `context` (all of it if it holds large pages). */
  flushPageInContext(context: number, vpn: number): void {
    if (context === this.context ? this.hasLarge : this.largeIn[context] === true) return this.flushContext(context);
    this.dropPage(vpn);
  }

  /**
   * INVLPG: drop the entry for one linear page in the current context's group (the whole group when one of its
   * contexts holds pieces of large pages). The direct-mapped slot of the page holds at most one context's entry.
   */
  flushPage(vpn: number): void {
    const group = this.membersOf[this.context]!;
    let large = this.hasLarge;
    for (let k = 0; k < group.length && !large; k++) large = group[k] !== this.context && this.largeIn[group[k]!] === true;
    if (large) return this.flushAll();
    this.dropPage(vpn);
  }

  /** Select the tagging context (see the file comment). Context 0 is VMX root operation. */
  setContext(context: number): void {
    if (context === this.context) return;
    this.grow(context);
    this.largeIn[this.context] = this.hasLarge;
    this.hasLarge = this.largeIn[context]!;
    this.context = context;
    this.current = context * CONTEXT_SCALE + this.generations[context]!;
  }

  /** Put `context` in group `group` (for VMX: its VPID): flushAll and flushPage then act on the whole group. */
  setGroup(context: number, group: number): void {
    this.grow(context);
    let members = this.groups.get(group);
    if (members === undefined) this.groups.set(group, (members = []));
    if (!members.includes(context)) members.push(context);
    this.membersOf[context] = members;
  }

  private grow(context: number): void {
    while (this.generations.length <= context) {
      this.membersOf.push([this.generations.length]);
      this.generations.push(0);
      this.largeIn.push(false);
      this.modes.push(-1);
    }
  }

  /** A new generation for context `c`: its entries' stamps no longer match. */
  private bump(c: number): void {
    this.generations[c]! += 1;
    this.largeIn[c] = false;
    if (c === this.context) {
      this.current = c * CONTEXT_SCALE + this.generations[c]!;
      this.hasLarge = false;
    }
  }

  private dropPage(vpn: number): void {
    const i = vpn & TLB_MASK;
    if (this.vpn[i] === vpn) {
      this.vpn[i] = NaN;
      this.page[i] = NaN;
    }
  }

  /** Record that the current context's entries were filled under paging mode `mode` (before leaving it). */
  noteMode(mode: number): void {
    this.modes[this.context] = mode;
  }

  /** Entered the current context under paging mode `mode`: entries filled under another mode go. */
  checkMode(mode: number): void {
    if (this.modes[this.context] === mode) return;
    this.flushContext(this.context);
    this.modes[this.context] = mode;
  }

  getContext(): number {
    return this.context;
  }
}

/**
 * The control-register and EFER bits TLB permissions depend on, as one number: the CR0 bits as they are, the CR4
 * bits shifted left by 1 and the EFER bits by 2 (no two land on the same bit).
 */
export function pagingModeKey(cr0: number, cr4: number, efer: number): number {
  return ((cr0 & CR0_PAGING_BITS) >>> 0) + (cr4 & CR4_PAGING_BITS) * 2 + (efer & EFER_PAGING_BITS) * 4;
}
const CR0_PAGING_BITS = CR0.PE | CR0.WP | CR0.PG;
const CR4_PAGING_BITS = CR4.PSE | CR4.PAE | CR4.PGE | CR4.PCIDE | CR4.SMEP | CR4.SMAP;
const EFER_PAGING_BITS = EFER.LMA | EFER.NXE;
