// Translating one guest-physical address through EPT: the walk, its three outcomes (a host-physical address, an EPT
// violation with its exit qualification, an EPT misconfiguration) and the accessed/dirty flags it sets. A pure
// function of its input and the two memory callbacks: the memory path, the TLBs and the VM exit are the caller's.
// See SDM Vol. 3C, "EPT Translation Mechanism", "EPT Misconfigurations", "EPT Violations", "Accessed and Dirty
// Flags for EPT", "EPT and Memory Typing" and "Exit Qualification for EPT Violations".
import type { VmxCapabilities } from '../capabilities.ts';
import { EPTP, eptWalkLengths } from '../eptp.ts';
import { EPT_VPID_CAP } from '../msrs.ts';
import { addressMask, bitOf, EPT_BIT, EPT_FORMATS, EPT_LEVELS, EPT_RWX_MASK, type EptEntryFormat, type EptLevel } from './entry.ts';
import { EPT_MISCONFIG_RULES, type EptMisconfigRuleId } from './misconfig.ts';
import { qualificationOf } from './qualification.ts';

export interface EptAccess {
  /** A data read (guest paging-structure reads are data reads). */
  readonly read: boolean;
  /** A data write (guest A/D-flag updates are data writes). A read-modify-write sets both. */
  readonly write: boolean;
  /** An instruction fetch. */
  readonly execute: boolean;
  /**
   * With mode-based execute control: is the linear address a user-mode address (guest paging U/S = 1 at every
   * level; every address when guest CR0.PG = 0)? Not CPL. Supervisor when absent.
   */
  readonly user?: boolean;
}

export interface EptTranslateInput {
  /** The EPT pointer, already accepted by VM entry (see eptp.ts). */
  readonly eptp: bigint;
  readonly gpa: bigint;
  readonly access: EptAccess;
  readonly caps: Pick<VmxCapabilities, 'eptVpidCap'>;
  readonly maxPhysAddr: number;
  /** The "mode-based execute control for EPT" VM-execution control (secondary bit 22). */
  readonly mbec: boolean;
  readPhys64(hpa: bigint): bigint;
  writePhys64(hpa: bigint, value: bigint): void;
  /**
   * The linear address whose translation made this access, if there is one (absent for the guest PDPTE loads of
   * MOV to CR with PAE paging). `isPagingStructureAccess`: the access is to a guest paging-structure entry (a walk or
   * an A/D update) rather than to the final page. `attributes`: what guest paging says about the linear address,
   * reported in bits 11:9 when the processor has advanced VM-exit information for EPT violations.
   */
  readonly guestLinear?: {
    readonly address: bigint;
    readonly isPagingStructureAccess: boolean;
    readonly attributes?: { readonly user: boolean; readonly readWrite: boolean; readonly executeDisable: boolean };
  };
  /** The access is part of an IRET that unblocked NMIs (qualification bit 12); the caller knows, the walk does not. */
  readonly nmiUnblockingIret?: boolean;
}

/** One entry the walk read, before any accessed/dirty update. */
export interface EptWalkEntry {
  readonly level: EptLevel;
  readonly address: bigint;
  readonly value: bigint;
}

export type EptTranslation =
  | {
    readonly kind: 'ok';
    readonly hpa: bigint;
    /** Bits 5:3 of the leaf: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB (combined with PAT by the caller unless `ignorePat`). */
    readonly memoryType: number;
    readonly ignorePat: boolean;
    readonly pageSize: number;
    /** Level of the leaf: 3 for a 1-GByte page, 2 for 2 MBytes, 1 for 4 KBytes. */
    readonly level: EptLevel;
    readonly entries: readonly EptWalkEntry[];
  }
  | { readonly kind: 'violation'; readonly qualification: bigint; readonly entries: readonly EptWalkEntry[] }
  | {
    readonly kind: 'misconfig';
    readonly level: EptLevel;
    readonly entryAddress: bigint;
    readonly entryValue: bigint;
    readonly rule: EptMisconfigRuleId;
    /** The offending bits of the entry. */
    readonly bits: bigint;
    readonly entries: readonly EptWalkEntry[];
  };

/** Translate `input.gpa` for `input.access`. Throws only for an EPTP walk length the processor does not support. */
export function eptTranslate(input: EptTranslateInput): EptTranslation {
  const { eptp, gpa, caps, maxPhysAddr } = input;
  const walkLength = Number((eptp & EPTP.WALK_LENGTH_MASK) >> EPTP.WALK_LENGTH_SHIFT) + 1;
  // (eptWalkLengths reads only eptVpidCap.)
  if (!eptWalkLengths(caps as VmxCapabilities).includes(walkLength)) {
    // VM entry refuses such an EPTP (eptp.ts), so reaching here is a bug in the caller.
    throw new RangeError(`EPTP page-walk length ${walkLength} is not supported; VM entry should have refused this EPTP`);
  }
  const access = effectiveAccess(input);
  const entries: EptWalkEntry[] = [];
  // Bits N−1:12 of the EPTP hold the PML4 (PML5) table's address. See "Extended-Page-Table Pointer (EPTP)".
  let table = eptp & addressMask(EPT_FORMATS.pml4e, maxPhysAddr);
  let leaf: { format: EptEntryFormat; level: EptLevel; value: bigint } | null = null;

  for (let level = walkLength as EptLevel; level >= 1; level = (level - 1) as EptLevel) {
    const index = (gpa >> BigInt(EPT_LEVELS[level].indexShift)) & 0x1ffn;
    const address = table + index * 8n;
    const value = input.readPhys64(address);
    entries.push({ level, address, value });
    // Not present: the walk stops here, whatever the other bits hold. See "EPT Translation Mechanism".
    if (!isPresent(value, input.mbec)) return violation(input, access, entries);
    const format = formatOf(value, level, caps);
    // A misconfiguration anywhere on the path wins over a permission violation: "an EPT violation occurs when there
    // is no EPT misconfiguration". See "EPT-Induced VM Exits".
    for (const rule of EPT_MISCONFIG_RULES) {
      const broken = rule.check({ value, level, format, caps, maxPhysAddr });
      if (broken !== null) {
        return { kind: 'misconfig', level, entryAddress: address, entryValue: value, rule: rule.id, bits: broken.bits, entries };
      }
    }
    if (format.leaf) { leaf = { format, level, value }; break; }
    table = value & addressMask(format, maxPhysAddr);
  }
  if (leaf === null) throw new Error('EPT walk ended without a leaf'); // unreachable: level 1 is always a leaf

  if (denied(input, access, entries)) return violation(input, access, entries);

  // Accessed and dirty flags, set once the access is known to succeed: A in every entry used, D in the leaf for a
  // write. See "Accessed and Dirty Flags for EPT".
  if ((eptp & EPTP.ACCESSED_DIRTY) !== 0n) {
    for (const e of entries) {
      let v = e.value | (1n << BigInt(EPT_BIT.ACCESSED));
      if (e.level === leaf.level && access.write) v |= 1n << BigInt(EPT_BIT.DIRTY);
      if (v !== e.value) input.writePhys64(e.address, v);
    }
  }
  const size = BigInt(leaf.format.pageSize);
  return {
    kind: 'ok',
    hpa: (leaf.value & addressMask(leaf.format, maxPhysAddr)) | (gpa & (size - 1n)),
    memoryType: Number((leaf.value >> BigInt(EPT_BIT.MEMORY_TYPE)) & 7n),
    ignorePat: bitOf(leaf.value, EPT_BIT.IGNORE_PAT),
    pageSize: leaf.format.pageSize,
    level: leaf.level,
    entries,
  };
}

/**
 * The access as EPT sees it. With EPT accessed/dirty flags enabled (EPTP bit 6), every access to a guest
 * paging-structure entry is treated as a write — for violations ("treated as writes with regard to EPT violations")
 * and for the dirty flag — and a violation it causes sets both qualification bits 0 and 1. The PDPTE loads of MOV to
 * CR (no guest linear address) stay reads. See "EPT Violations", "Accessed and Dirty Flags for EPT" and "Exit
 * Qualification for EPT Violations" (the note on bits 0 and 1).
 */
export function effectiveAccess(input: EptTranslateInput): { read: boolean; write: boolean; execute: boolean; user: boolean; pagingAsWrite: boolean } {
  const pagingAsWrite = (input.eptp & EPTP.ACCESSED_DIRTY) !== 0n && input.guestLinear?.isPagingStructureAccess === true;
  const a = input.access;
  return { read: a.read || pagingAsWrite, write: a.write || pagingAsWrite, execute: a.execute, user: a.user === true, pagingAsWrite };
}

/**
 * Bits 2:0 not 000b; with mode-based execute control, bit 10 also makes the entry present ("an EPT paging-structure
 * entry is present if any of bits 2:0 or bit 10 is 1"). See "EPT Translation Mechanism".
 */
export function isPresent(value: bigint, mbec: boolean): boolean {
  return (value & EPT_RWX_MASK) !== 0n || (mbec && bitOf(value, EPT_BIT.USER_EXECUTE));
}

/** The format bit 7 selects at `level` (a page only where the capability allows it; else the rule reports it). */
export function formatOf(value: bigint, level: EptLevel, caps: Pick<VmxCapabilities, 'eptVpidCap'>): EptEntryFormat {
  const { table, large } = EPT_LEVELS[level];
  if (large !== null && bitOf(value, EPT_BIT.PAGE_SIZE) && (caps.eptVpidCap & large.capBit) !== 0n) return EPT_FORMATS[large.format];
  return EPT_FORMATS[table];
}

/** The logical AND of a permission bit over the entries used. */
const allHave = (entries: readonly EptWalkEntry[], bit: number): boolean => entries.every((e) => bitOf(e.value, bit));

/**
 * Does any entry deny the access? Reads need bit 0, writes bit 1, fetches bit 2 — or, with mode-based execute
 * control, bit 2 for a supervisor-mode and bit 10 for a user-mode linear address — in every entry. See "EPT Violations".
 */
function denied(input: EptTranslateInput, access: ReturnType<typeof effectiveAccess>, entries: readonly EptWalkEntry[]): boolean {
  if (access.read && !allHave(entries, EPT_BIT.READ)) return true;
  if (access.write && !allHave(entries, EPT_BIT.WRITE)) return true;
  if (access.execute) {
    const bit = input.mbec && access.user ? EPT_BIT.USER_EXECUTE : EPT_BIT.EXECUTE;
    if (!allHave(entries, bit)) return true;
  }
  return false;
}

/** The violation outcome and its exit qualification. See "Exit Qualification for EPT Violations". */
function violation(input: EptTranslateInput, access: ReturnType<typeof effectiveAccess>, entries: readonly EptWalkEntry[]): EptTranslation {
  const gl = input.guestLinear;
  // Bit 8 and bits 11:9 are defined only when bit 7 is 1; bits 11:9 only with advanced VM-exit information
  // (IA32_VMX_EPT_VPID_CAP[22]) and bit 8 = 1. Otherwise they are written as 0.
  const translated = gl !== undefined && !gl.isPagingStructureAccess;
  const advanced = translated && (input.caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_ADVANCED_EXIT_INFO_BIT) !== 0n && gl.attributes !== undefined;
  const attrs = advanced ? gl.attributes : undefined;
  const qualification = qualificationOf({
    READ: access.read,
    WRITE: access.write,
    FETCH: access.execute,
    // The AND over the entries used, including a not-present last one (whose bits 2:0 are 0, so 5:3 come out 0).
    READABLE: allHave(entries, EPT_BIT.READ),
    WRITABLE: allHave(entries, EPT_BIT.WRITE),
    EXECUTABLE: allHave(entries, EPT_BIT.EXECUTE),
    USER_EXECUTABLE: input.mbec && allHave(entries, EPT_BIT.USER_EXECUTE),
    GLA_VALID: gl !== undefined,
    GLA_TRANSLATED: translated,
    USER_LINEAR: attrs?.user === true,
    READ_WRITE_PAGE: attrs?.readWrite === true,
    EXECUTE_DISABLE_PAGE: attrs?.executeDisable === true,
    NMI_UNBLOCKING: input.nmiUnblockingIret === true,
  });
  return { kind: 'violation', qualification, entries };
}
