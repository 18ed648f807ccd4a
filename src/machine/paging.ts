// IA-32e 4-level paging: the page walk behind every TLB miss.
// See SDM Vol. 3A, "4-Level Paging and 5-Level Paging", "Access Rights", "Accessed and Dirty Flags" and
// "Interrupt 14—Page-Fault Exception (#PF)".
//
// Paging-structure entries are read as two 32-bit halves, so no BigInt is needed. Physical addresses are
// plain numbers (< 2^52).

import { CR0, CR4, EFER } from '../x86/control-registers.ts';
import { PF_ERROR } from '../x86/exceptions.ts';
import { CpuFault } from './fault.ts';
import { modeNotImplementedReason } from './not-implemented.ts';
import type { LogicalProcessor } from './lp.ts';
import { PERM_ALL, PERM_EXEC_S, PERM_EXEC_U, PERM_LARGE, PERM_READ_S, PERM_READ_U, PERM_WRITE_S, PERM_WRITE_U } from './tlb.ts';
import { intelHex } from '../util/hex.ts';

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;
export type Access = 0 | 1 | 2;

/** Paging-structure entry bits (low dword). */
export const PTE = {
  P: 1 << 0,
  RW: 1 << 1,
  US: 1 << 2,
  PWT: 1 << 3,
  PCD: 1 << 4,
  A: 1 << 5,
  D: 1 << 6,
  PS: 1 << 7,
  G: 1 << 8,
} as const;
/** XD is bit 63 = bit 31 of the high dword. */
export const PTE_HI_XD = 1 << 31;

const TWO32 = 4294967296;
const AC_FLAG = 1 << 18;
const LEVEL_NAMES = ['PML4E', 'PDPTE', 'PDE', 'PTE'] as const;

/**
 * What the walker tells `lp.gpaTranslate` (EPT, in VMX non-root operation) about one guest-physical access, and what
 * it hears back. One object, reused: a TLB miss must not allocate.
 */
export interface GpaAccessInfo {
  /** The linear address whose translation makes the access. */
  linear: number;
  /** The access is to a guest paging-structure entry (a read during the walk or an A/D update), not the final page. */
  pagingStructure: boolean;
  /**
   * What guest paging says about the linear address (final-page accesses): a user-mode address (U/S = 1 at every
   * level), writable (R/W = 1 at every level), execute-disable. With CR0.PG = 0 every linear address is a user-mode,
   * read/write, executable address. See SDM Vol. 3C, "Exit Qualification for EPT Violations" (bits 9–11).
   */
  user: boolean;
  readWrite: boolean;
  executeDisable: boolean;
  /** Out: the TLB permission bits (PERM_*) the guest-physical translation allows for the page. */
  perm: number;
  /**
   * Out: the EPT leaf's memory type (bits 5:3) | its "ignore PAT" flag (bit 6) << 3, or -1 when the translation does
   * not tell. Only device pages use it (their memory type; src/machine/memtype/cache-model.ts).
   */
  memoryType: number;
}
const GPA_INFO: GpaAccessInfo = { linear: 0, pagingStructure: false, user: false, readWrite: false, executeDisable: false, perm: PERM_ALL, memoryType: -1 };

/** Translate guest-physical `gpa` (full address, offset included) through `lp.gpaTranslate`. */
function gpaAccess(lp: LogicalProcessor, gpa: number, access: Access, la: number, pagingStructure: boolean,
  user: boolean, readWrite: boolean, executeDisable: boolean): number {
  const info = GPA_INFO;
  info.linear = la;
  info.pagingStructure = pagingStructure;
  info.user = user;
  info.readWrite = readWrite;
  info.executeDisable = executeDisable;
  info.perm = PERM_ALL;
  info.memoryType = -1;
  return lp.gpaTranslate!(gpa, access, info);
}

/** One step of a walk, for the page-walk explainer in src/debug. */
export interface WalkStep {
  level: (typeof LEVEL_NAMES)[number];
  /** Physical address of the entry. */
  entryAddress: number;
  /** The entry's value. */
  entry: bigint;
}

/** Result of an inspection walk (no side effects). */
export interface WalkResult {
  steps: WalkStep[];
  /** Physical address, or null if the walk stops at a non-present or reserved-bit entry. */
  physical: number | null;
  pageSize: 4096 | 2097152 | 1073741824 | null;
  fault: string | null;
}

/**
 * Translate `la` for an access, set A/D bits, fill the LP's TLB, and return the physical address.
 * Throws #PF with the SDM error code and CR2 = la on failure.
 */
export function walk(lp: LogicalProcessor, la: number, access: Access, user: number): number {
  const vpn = Math.floor(la / 4096);
  if (!(lp.cr0 & CR0.PG)) {
    // No paging: linear = physical (32 bits outside IA-32e mode). See SDM Vol. 3A, "Paging Modes and Control Bits".
    const gpa = la >>> 0;
    if (lp.gpaTranslate === null) {
      lp.fillTlb(vpn, gpa - (gpa & 0xfff), PERM_ALL);
      return gpa;
    }
    const hpa = gpaAccess(lp, gpa, access, la, false, true, true, false);
    lp.fillTlb(vpn, hpa - (hpa & 0xfff), PERM_ALL & GPA_INFO.perm, -1, GPA_INFO.memoryType, gpa - (gpa & 0xfff));
    return hpa;
  }
  if (!(lp.efer & EFER.LMA)) {
    throw new CpuFault(13, 0, modeNotImplementedReason('legacy-paging', 'CR0.PG = 1 outside IA-32e mode (32-bit or PAE paging)'));
  }
  const hiAddr = Math.floor(la / TWO32) | 0;
  const loAddr = la >>> 0;
  const idx = [
    (hiAddr >>> 7) & 0x1ff,
    ((hiAddr & 0x7f) << 2) | (loAddr >>> 30),
    (loAddr >>> 21) & 0x1ff,
    (loAddr >>> 12) & 0x1ff,
  ];
  const nxe = (lp.efer & EFER.NXE) !== 0;
  const wp = (lp.cr0 & CR0.WP) !== 0;
  const physHiMask = physHighMask(lp.maxPhysAddr);
  const fetchBit = access === ACCESS_EXEC && (nxe || (lp.cr4 & CR4.SMEP) !== 0) ? PF_ERROR.ID : 0;
  const baseError = (access === ACCESS_WRITE ? PF_ERROR.WR : 0) | (user ? PF_ERROR.US : 0) | fetchBit;

  let table = lp.cr3Base();
  let rw = true, us = true, xd = false;
  const entryAddrs: number[] = [0, 0, 0, 0];
  /** The entries' guest-physical addresses (equal to entryAddrs without EPT). */
  const guestEntryAddrs: number[] = [0, 0, 0, 0];
  let level = 0;
  let pageBase = 0;
  /** The leaf entry's low dword: its PAT, PCD and PWT flags select the page's PAT entry. */
  let leafLo = 0;
  let large = false;
  // In VMX non-root operation with EPT, every guest-physical address (each paging-structure entry and the
  // final page) is translated again. See SDM Vol. 3C, "EPT Translation Mechanism".
  const xlate = lp.gpaTranslate;
  for (; level < 4; level++) {
    const gEa = table + idx[level]! * 8;
    // Reads of guest paging structures are data reads. See SDM Vol. 3C, "EPT Violations".
    const ea = xlate ? gpaAccess(lp, gEa, ACCESS_READ, la, true, false, false, false) : gEa;
    entryAddrs[level] = ea;
    guestEntryAddrs[level] = gEa;
    const lo = lp.memory.read32(ea);
    const hi = lp.memory.read32(ea + 4);
    if (!(lo & PTE.P)) {
      throw pageFault(lp, la, baseError, `${LEVEL_NAMES[level]} not present (entry at physical ${intelHex(ea)})`);
    }
    // Reserved bits: physical-address bits at or above MAXPHYADDR, XD without EFER.NXE, PS in a PML4E,
    // and the low address bits of a large-page entry. See SDM Vol. 3A, "Formats of Paging Structures".
    let rsvd = (hi & physHiMask) !== 0 || (!nxe && (hi & PTE_HI_XD) !== 0);
    const ps = (lo & PTE.PS) !== 0 && level > 0 && level < 3;
    if (level === 0 && lo & PTE.PS) rsvd = true;
    if (ps && level === 1 && (lo & 0x3fffe000) !== 0) rsvd = true;
    if (ps && level === 2 && (lo & 0x001fe000) !== 0) rsvd = true;
    if (rsvd) {
      throw pageFault(lp, la, baseError | PF_ERROR.P | PF_ERROR.RSVD,
        `reserved bit set in ${LEVEL_NAMES[level]} ${intelHex(hi * TWO32 + (lo >>> 0))} at physical ${intelHex(ea)}`);
    }
    rw &&= (lo & PTE.RW) !== 0;
    us &&= (lo & PTE.US) !== 0;
    xd ||= nxe && (hi & PTE_HI_XD) !== 0;
    const addr = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
    leafLo = lo;
    if (ps) {
      large = true;
      const size = level === 1 ? 1073741824 : 2097152;
      const frame = addr - (addr % size);
      pageBase = frame + ((la - size * Math.floor(la / size)) - (la & 0xfff));
      break;
    }
    if (level === 3) {
      pageBase = addr;
      break;
    }
    table = addr;
  }
  const lastLevel = Math.min(level, 3);

  // Access rights. See SDM Vol. 3A, "Access Rights".
  let ok: boolean;
  let why = '';
  // SMAP: supervisor data accesses to user pages fault unless RFLAGS.AC = 1. (Every supervisor access is
  // treated as explicit here.) See SDM Vol. 3A, "Access Rights" (supervisor-mode access prevention).
  const smap = !user && us && access !== ACCESS_EXEC && (lp.cr4 & CR4.SMAP) !== 0;
  if (smap && !(lp.getRflags() & AC_FLAG)) {
    ok = false;
    why = 'supervisor data access to a user page with CR4.SMAP = 1 and RFLAGS.AC = 0';
  } else if (access === ACCESS_READ) {
    ok = !user || us;
    if (!ok) why = 'user-mode read of a supervisor page';
  } else if (access === ACCESS_WRITE) {
    ok = user ? us && rw : rw || !wp;
    if (!ok) why = user ? (us ? 'user-mode write to a read-only page' : 'user-mode write to a supervisor page') : 'supervisor write to a read-only page with CR0.WP = 1';
  } else {
    ok = !xd && (!user || us) && !(!user && us && (lp.cr4 & CR4.SMEP));
    if (!ok) why = xd ? 'instruction fetch from an execute-disable (XD) page' : user ? 'user-mode fetch from a supervisor page' : 'supervisor fetch from a user page with CR4.SMEP = 1';
  }
  if (!ok) throw pageFault(lp, la, baseError | PF_ERROR.P, why);

  // Accessed and dirty flags, set only once the access is known to succeed.
  // The final guest-physical page (EPT may refuse it: that aborts the access before any A/D update).
  // The access is translated with its full guest-physical address (GUEST_PHYSICAL_ADDRESS reports it).
  let hostPage = pageBase;
  let eptPerm = PERM_ALL;
  let eptType = -1;
  if (xlate) {
    const hpa = gpaAccess(lp, pageBase + (la & 0xfff), access, la, false, us, rw, xd);
    hostPage = hpa - (hpa & 0xfff);
    eptPerm = GPA_INFO.perm;
    eptType = GPA_INFO.memoryType;
  }
  for (let l = 0; l <= lastLevel; l++) {
    let ea = entryAddrs[l]!;
    const lo = lp.memory.read32(ea);
    let nlo = lo | PTE.A;
    if (l === lastLevel && access === ACCESS_WRITE) nlo |= PTE.D;
    if (nlo === lo) continue;
    // Under EPT the flag update is a write to the guest paging structure, translated again (it may cause an EPT
    // violation of its own: a locked read-modify-write, reported as a read and a write). See SDM Vol. 3C, "EPT
    // Violations" ("Writes by the logical processor to guest paging structures to update accessed and dirty flags
    // are considered to be data writes").
    if (xlate) ea = gpaAccess(lp, guestEntryAddrs[l]!, ACCESS_WRITE, la, true, false, false, false);
    lp.memory.write32(ea, nlo);
  }
  const dirty = (lp.memory.read32(entryAddrs[lastLevel]!) & PTE.D) !== 0;
  // With SMAP, supervisor access to a user page depends on RFLAGS.AC at the time: never cache it.
  const smapPage = us && (lp.cr4 & CR4.SMAP) !== 0;
  let perm = smapPage ? 0 : PERM_READ_S;
  if (us) perm |= PERM_READ_U;
  if (dirty && (rw || !wp) && !smapPage) perm |= PERM_WRITE_S;
  if (dirty && rw && us) perm |= PERM_WRITE_U;
  if (!xd && !(us && lp.cr4 & CR4.SMEP)) perm |= PERM_EXEC_S;
  if (!xd && us) perm |= PERM_EXEC_U;
  // A combined (linear → host-physical) entry allows only what both guest paging and EPT allow. See SDM Vol. 3C,
  // "Information That May Be Cached When Using EPT".
  perm &= eptPerm | PERM_LARGE;
  if (large) perm |= PERM_LARGE;
  lp.fillTlb(vpn, hostPage, perm, leafLo, eptType, pageBase);
  return hostPage + (la & 0xfff);
}

function pageFault(lp: LogicalProcessor, la: number, code: number, why: string): CpuFault {
  lp.pendingCr2 = la;
  return new CpuFault(14, code, `page fault at linear ${intelHex(la)}: ${why}`,
    'SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)"');
}

/** Mask of the high-dword bits that are reserved for MAXPHYADDR (bits 51:MAXPHYADDR). */
function physHighMask(maxPhys: number): number {
  let m = 0;
  for (let b = maxPhys; b < 52; b++) m |= 1 << (b - 32);
  return m;
}


/** Walk without side effects, for inspectors (`src/debug`'s page-walk explanation). */
export function inspectWalk(lp: LogicalProcessor, linear: bigint): WalkResult {
  const steps: WalkStep[] = [];
  if (!(lp.cr0 & CR0.PG)) return { steps, physical: Number(linear & 0xffffffffn), pageSize: null, fault: null };
  const la = BigInt.asUintN(64, linear);
  const idx = [(la >> 39n) & 0x1ffn, (la >> 30n) & 0x1ffn, (la >> 21n) & 0x1ffn, (la >> 12n) & 0x1ffn];
  let table = BigInt(lp.cr3Base());
  const addrMask = ((1n << BigInt(lp.maxPhysAddr)) - 1n) & ~0xfffn;
  for (let level = 0; level < 4; level++) {
    const ea = table + idx[level]! * 8n;
    const e = lp.memory.read64(Number(ea));
    steps.push({ level: LEVEL_NAMES[level]!, entryAddress: Number(ea), entry: e });
    if (!(e & 1n)) return { steps, physical: null, pageSize: null, fault: `${LEVEL_NAMES[level]} not present` };
    if ((e & 0x80n) && (level === 1 || level === 2)) {
      const size = level === 1 ? 1n << 30n : 1n << 21n;
      const pa = (e & addrMask & ~(size - 1n)) | (la & (size - 1n));
      return { steps, physical: Number(pa), pageSize: level === 1 ? 1073741824 : 2097152, fault: null };
    }
    table = e & addrMask;
  }
  return { steps, physical: Number(table | (la & 0xfffn)), pageSize: 4096, fault: null };
}
