// Explain how the CPU translates a linear address with IA-32e 4-level paging, step by step:
// which entry it reads at each level, what the entry says, and either the physical address or
// the #PF error code the access would raise.
//
// This is an inspector: it reads entries through `read64` and changes nothing (the CPU would set
// accessed and dirty flags; the explanation says where). See SDM Vol. 3A, "4-Level Paging and
// 5-Level Paging", "Access Rights" and "Interrupt 14—Page-Fault Exception (#PF)".
import { CR0, CR4, EFER } from '../x86/control-registers.ts';
import { PF_ERROR } from '../x86/exceptions.ts';
import { PTE } from '../machine/paging.ts';
import { hexLower } from '../util/hex.ts';

export type Read64 = (pa: bigint) => bigint | null;
export type AccessKind = 'read' | 'write' | 'execute';

/** Defaults: CR0 = PE|WP|PG, CR4 = PAE, IA32_EFER = LME|LMA (IA-32e paging, NXE off); a supervisor read. */
export interface PageWalkOptions {
  cr0?: bigint;
  cr4?: bigint;
  efer?: bigint;
  access?: AccessKind;
  /** A user-mode access (CPL 3). */
  user?: boolean;
  /** MAXPHYADDR from CPUID.80000008H:EAX[7:0] (default 52: no reserved address bits). */
  maxPhysAddr?: number;
  /** RFLAGS.AC, which lets supervisor data accesses reach user pages under SMAP. */
  ac?: boolean;
}

export type Level = 'PML4E' | 'PDPTE' | 'PDE' | 'PTE';

export interface EntryFlags {
  P: boolean; RW: boolean; US: boolean; PWT: boolean; PCD: boolean; A: boolean; D: boolean; PS: boolean; G: boolean; XD: boolean;
}

export interface WalkStep {
  level: Level;
  index: number;
  tableAddress: bigint;
  entryAddress: bigint;
  /** null when the entry's memory could not be read. */
  entry: bigint | null;
  flags?: EntryFlags;
  /** Set reserved bits, if any (the walk stops with RSVD=1). */
  reserved?: bigint;
  /** The next paging structure, or for a leaf the page frame. */
  next?: { kind: 'table' | 'page'; address: bigint; pageSize?: PageSize };
}

export type PageSize = '4K' | '2M' | '1G';

export interface PageFault {
  /** 14 for #PF; 13 for #GP (non-canonical address). */
  vector: 13 | 14;
  errorCode: number;
  reason: string;
  sdm: string;
}

export interface PageWalk {
  linear: bigint;
  steps: WalkStep[];
  physical?: bigint;
  pageSize?: PageSize;
  fault?: PageFault;
  /** Why no walk happened or where it could not continue (paging off, unreadable memory). */
  note?: string;
  /** A successful write finds D = 0 in the leaf: the CPU sets it. See SDM Vol. 3A, "Accessed and Dirty Flags". */
  dirtyOnWrite?: boolean;
  format(): string;
}

const LEVELS: readonly { level: Level; shift: bigint; leafSize?: PageSize }[] = [
  { level: 'PML4E', shift: 39n },
  { level: 'PDPTE', shift: 30n, leafSize: '1G' },
  { level: 'PDE', shift: 21n, leafSize: '2M' },
  { level: 'PTE', shift: 12n, leafSize: '4K' },
];

const PAGE_BYTES: Readonly<Record<PageSize, bigint>> = { '4K': 1n << 12n, '2M': 1n << 21n, '1G': 1n << 30n };
const XD_BIT = 1n << 63n;
const b = (bit: number): bigint => BigInt(bit);
const SDM_PF = 'SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)"';
const SDM_ACCESS = 'SDM Vol. 3A, "Access Rights"';
const SDM_RSVD = 'SDM Vol. 3A, "4-Level Paging and 5-Level Paging" (reserved bits in the paging-structure entry formats)';

export function explainPageWalk(linear: bigint, cr3: bigint, read64: Read64, opts: PageWalkOptions = {}): PageWalk {
  const la = BigInt.asUintN(64, linear);
  const cr0 = opts.cr0 ?? b(CR0.PE) | b(CR0.PG) | b(CR0.WP);
  const cr4 = opts.cr4 ?? b(CR4.PAE);
  const efer = opts.efer ?? b(EFER.LME) | b(EFER.LMA);
  const done = (w: Omit<PageWalk, 'format' | 'linear'>): PageWalk => {
    const walk: PageWalk = { linear: la, ...w, format: () => formatWalk(walk, cr3) };
    return walk;
  };

  if ((cr0 & b(CR0.PG)) === 0n) return done({ steps: [], physical: la, note: 'CR0.PG = 0: paging is off, the physical address is the linear address' });
  if ((cr4 & b(CR4.PAE)) === 0n || (efer & b(EFER.LMA)) === 0n) return done({ steps: [], note: 'not IA-32e paging (needs CR4.PAE = 1 and IA32_EFER.LMA = 1); only 4-level paging is explained' });
  if ((cr4 & b(CR4.LA57)) !== 0n) return done({ steps: [], note: 'CR4.LA57 = 1: 5-level paging is not explained here' });
  // Bits 63:47 must all equal bit 47, or the access raises #GP(0) before any walk (#SS for stack accesses).
  // See SDM Vol. 1, "Canonical Addressing".
  if (BigInt.asIntN(48, la) !== BigInt.asIntN(64, la)) {
    return done({ steps: [], fault: { vector: 13, errorCode: 0, reason: 'non-canonical address (bits 63:47 differ)', sdm: 'SDM Vol. 1, "Canonical Addressing"' } });
  }

  const nxe = (efer & b(EFER.NXE)) !== 0n;
  const maxPhys = BigInt(opts.maxPhysAddr ?? 52);
  const addressMask = ((1n << maxPhys) - 1n) & ~0xfffn; // bits M-1:12
  const access = opts.access ?? 'read';
  const user = opts.user ?? false;
  const errorBase = (access === 'write' ? PF_ERROR.WR : 0) | (user ? PF_ERROR.US : 0) | (fetchReported(access, cr4, nxe) ? PF_ERROR.ID : 0);

  const steps: WalkStep[] = [];
  let table = cr3 & addressMask; // CR3[M-1:12]: the PML4 table. See "Use of CR3 with 4-Level Paging".
  for (const { level, shift, leafSize } of LEVELS) {
    const index = Number((la >> shift) & 0x1ffn);
    const entryAddress = table + BigInt(index * 8);
    const entry = read64(entryAddress);
    const step: WalkStep = { level, index, tableAddress: table, entryAddress, entry };
    steps.push(step);
    if (entry === null) return done({ steps, note: `cannot read the ${level} at physical address ${hexLower(entryAddress)}` });
    step.flags = decodeFlags(entry);
    if (!step.flags.P) {
      return done({ steps, fault: pf(errorBase, `${level} ${index} is not present (P = 0)`, SDM_PF) });
    }
    const leaf = leafSize === '4K' || (leafSize !== undefined && step.flags.PS);
    const reserved = reservedBits(entry, level, leaf, nxe, maxPhys);
    if (reserved !== 0n) {
      step.reserved = reserved;
      return done({ steps, fault: pf(errorBase | PF_ERROR.P | PF_ERROR.RSVD, `${level} ${index} has reserved bits set (${hexLower(reserved)})`, SDM_RSVD) });
    }
    if (leaf) {
      const size = leafSize!;
      const frame = entry & addressMask & ~(PAGE_BYTES[size] - 1n);
      step.next = { kind: 'page', address: frame, pageSize: size };
      const denied = checkAccess(steps, access, user, cr0, cr4, nxe, opts.ac ?? false);
      if (denied !== undefined) return done({ steps, pageSize: size, fault: pf(errorBase | PF_ERROR.P, denied, SDM_ACCESS) });
      return done({ steps, pageSize: size, physical: frame | (la & (PAGE_BYTES[size] - 1n)), dirtyOnWrite: access === 'write' && !step.flags.D });
    }
    table = entry & addressMask;
    step.next = { kind: 'table', address: table };
  }
  return done({ steps, note: 'walk ended without a leaf' }); // unreachable: the PTE level is always a leaf
}

function pf(errorCode: number, reason: string, sdm: string): PageFault {
  return { vector: 14, errorCode, reason, sdm };
}

/**
 * I/D is reported only when execute protection exists: CR4.SMEP = 1 or IA32_EFER.NXE = 1.
 * See SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)".
 */
function fetchReported(access: AccessKind, cr4: bigint, nxe: boolean): boolean {
  return access === 'execute' && (nxe || (cr4 & b(CR4.SMEP)) !== 0n);
}

function decodeFlags(e: bigint): EntryFlags {
  const has = (bit: number) => (e & b(bit)) !== 0n;
  return {
    P: has(PTE.P), RW: has(PTE.RW), US: has(PTE.US), PWT: has(PTE.PWT), PCD: has(PTE.PCD),
    A: has(PTE.A), D: has(PTE.D), PS: has(PTE.PS), G: has(PTE.G), XD: (e & XD_BIT) !== 0n,
  };
}

/**
 * Reserved bits of a present entry: address bits at or above MAXPHYADDR (bits 51:M), XD when
 * IA32_EFER.NXE = 0, PS in a PML4E, and the low address bits of a large page below its alignment
 * (bits 29:13 of a 1-GByte PDPTE, bits 20:13 of a 2-MByte PDE; bit 12 is PAT).
 * See the entry-format tables in SDM Vol. 3A, "4-Level Paging and 5-Level Paging".
 */
function reservedBits(e: bigint, level: Level, leaf: boolean, nxe: boolean, maxPhys: bigint): bigint {
  let rsvd = e & (((1n << 52n) - 1n) & ~((1n << maxPhys) - 1n));
  if (!nxe) rsvd |= e & XD_BIT;
  if (level === 'PML4E') rsvd |= e & b(PTE.PS);
  if (leaf && level === 'PDPTE') rsvd |= e & (((1n << 30n) - 1n) & ~((1n << 13n) - 1n));
  if (leaf && level === 'PDE') rsvd |= e & (((1n << 21n) - 1n) & ~((1n << 13n) - 1n));
  return rsvd;
}

/**
 * The access rights of a translation combine all levels: writable only if R/W = 1 in every entry,
 * user-accessible only if U/S = 1 in every entry, executable only if XD = 0 in every entry.
 * Supervisor writes ignore R/W when CR0.WP = 0; SMEP and SMAP restrict supervisor access to user
 * pages. Returns why the access is denied, or undefined. See SDM Vol. 3A, "Access Rights".
 */
function checkAccess(steps: readonly WalkStep[], access: AccessKind, user: boolean, cr0: bigint, cr4: bigint, nxe: boolean, ac: boolean): string | undefined {
  const flags = steps.map((s) => s.flags!);
  const firstWhere = (pred: (f: EntryFlags) => boolean) => steps[flags.findIndex(pred)]!;
  const userPage = flags.every((f) => f.US);
  const writable = flags.every((f) => f.RW);
  const executable = !nxe || flags.every((f) => !f.XD);
  if (user && !userPage) return `user-mode access to a supervisor page (U/S = 0 in ${firstWhere((f) => !f.US).level})`;
  if (access === 'write' && !writable) {
    const where = firstWhere((f) => !f.RW).level;
    if (user) return `user-mode write to a read-only page (R/W = 0 in ${where})`;
    if ((cr0 & b(CR0.WP)) !== 0n) return `supervisor write to a read-only page with CR0.WP = 1 (R/W = 0 in ${where})`;
  }
  if (access === 'execute' && !executable) return `instruction fetch from a no-execute page (XD = 1 in ${firstWhere((f) => f.XD).level}, IA32_EFER.NXE = 1)`;
  if (!user && userPage && access === 'execute' && (cr4 & b(CR4.SMEP)) !== 0n) return 'supervisor instruction fetch from a user page with CR4.SMEP = 1';
  if (!user && userPage && access !== 'execute' && (cr4 & b(CR4.SMAP)) !== 0n && !ac) return 'supervisor data access to a user page with CR4.SMAP = 1 and RFLAGS.AC = 0';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Text


function flagText(f: EntryFlags): string {
  return [
    f.P ? 'P' : 'not-present',
    f.RW ? 'RW' : 'RO',
    f.US ? 'U' : 'S',
    ...(f.PWT ? ['PWT'] : []),
    ...(f.PCD ? ['PCD'] : []),
    ...(f.A ? ['A'] : []),
    ...(f.D ? ['D'] : []),
    ...(f.PS ? ['PS'] : []),
    ...(f.G ? ['G'] : []),
    ...(f.XD ? ['XD'] : []),
  ].join(' ');
}

/** Decode a #PF error code: "P=1 W/R=1 U/S=0 RSVD=0 I/D=0". */
export function formatPfErrorCode(code: number): string {
  const bit = (mask: number) => ((code & mask) !== 0 ? 1 : 0);
  return `P=${bit(PF_ERROR.P)} W/R=${bit(PF_ERROR.WR)} U/S=${bit(PF_ERROR.US)} RSVD=${bit(PF_ERROR.RSVD)} I/D=${bit(PF_ERROR.ID)}`;
}

function formatWalk(w: PageWalk, cr3: bigint): string {
  const la = w.linear;
  const idx = (shift: bigint) => Number((la >> shift) & 0x1ffn);
  const lines = [
    `linear ${hexLower(la, 16)}: PML4 ${idx(39n)}, PDPT ${idx(30n)}, PD ${idx(21n)}, PT ${idx(12n)}, offset ${hexLower(la & 0xfffn, 3)}`,
  ];
  if (w.steps.length > 0) lines.push(`CR3 ${hexLower(cr3)} → PML4 table at ${hexLower(w.steps[0]!.tableAddress)}`);
  for (const s of w.steps) {
    const head = `${`${s.level}[${s.index}]`.padEnd(11)} at ${hexLower(s.entryAddress)}`;
    if (s.entry === null) {
      lines.push(`${head}: unreadable`);
      continue;
    }
    let line = `${head} = ${hexLower(s.entry, 16)}  ${flagText(s.flags!)}`;
    if (s.reserved !== undefined) line += `  reserved bits ${hexLower(s.reserved)}`;
    if (s.next?.kind === 'table') line += `  → next table at ${hexLower(s.next.address)}`;
    if (s.next?.kind === 'page') line += `  → ${s.next.pageSize} page at ${hexLower(s.next.address)}`;
    if (s.flags!.P && !s.flags!.A && s.reserved === undefined) line += '  (the CPU sets A)';
    lines.push(line);
  }
  if (w.physical !== undefined) lines.push(`physical ${hexLower(w.physical)}${w.pageSize ? ` (${w.pageSize} page)` : ''}${w.dirtyOnWrite ? '; the write sets D in the leaf entry' : ''}`);
  if (w.fault !== undefined) {
    const name = w.fault.vector === 14 ? '#PF' : '#GP';
    const code = w.fault.vector === 14 ? ` error code ${hexLower(BigInt(w.fault.errorCode))} (${formatPfErrorCode(w.fault.errorCode)}), CR2 = ${hexLower(la)}` : '(0)';
    lines.push(`${name}${code}: ${w.fault.reason}. See ${w.fault.sdm}.`);
  }
  if (w.note !== undefined) lines.push(w.note);
  return lines.join('\n');
}
