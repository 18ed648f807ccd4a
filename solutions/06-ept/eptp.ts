// Is there EPT at all, and an EPT pointer this processor accepts. The EPTP names the PML4 table and
// says how the processor walks it: the memory type of the paging-structure accesses (bits 2:0), the page-walk
// length minus 1 (bits 5:3) and "enable accessed and dirty flags" (bit 6). Every one of them must be allowed by
// IA32_VMX_EPT_VPID_CAP, or VMLAUNCH fails with VM-instruction error 7. A request the processor cannot meet is an
// error that says which bit is missing, never a silent downgrade.
// See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)", and Vol. 3D, "VPID and EPT Capabilities".
import {
  MSR_IA32_VMX_EPT_VPID_CAP, MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS2,
} from '../../src/vmx/msrs.ts';

/** Reads a model-specific register; reading one the processor does not implement raises #GP. */
export type Rdmsr = (msr: number) => bigint;

/** EPTP bits 2:0: memory type of the EPT paging structures (UC if cap bit 8, WB if cap bit 14). */
export const EPTP_MEMORY_TYPE_UC = 0n;
export const EPTP_MEMORY_TYPE_WB = 6n;
/** EPTP bits 5:3: page-walk length − 1; a 4-level walk is 3. */
export const EPTP_WALK_LENGTH_4 = 3n << 3n;
/** EPTP bit 6: enable accessed and dirty flags for EPT (only if cap bit 21). */
export const EPTP_ACCESSED_DIRTY = 1n << 6n;

/** IA32_VMX_EPT_VPID_CAP bits this file reads. See SDM Vol. 3D, "VPID and EPT Capabilities". */
export const CAP_WALK_LENGTH_4 = 6;
export const CAP_MEMORY_TYPE_UC = 8;
export const CAP_MEMORY_TYPE_WB = 14;
export const CAP_ACCESSED_DIRTY = 21;

/** Bit 63 of IA32_VMX_PROCBASED_CTLS: "activate secondary controls" may be 1. */
const ACTIVATE_SECONDARY_ALLOWED1 = 63;
/** Bit 33 of IA32_VMX_PROCBASED_CTLS2: "enable EPT" (secondary bit 1) may be 1. */
const ENABLE_EPT_ALLOWED1 = 33;

export type EptCapability = { readonly ok: true; readonly cap: bigint } | { readonly ok: false; readonly error: string };

export interface EptpRequest {
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]): the PML4 address must fit in this many bits. */
  readonly maxPhysAddr: number;
  /** Ask for accessed and dirty flags (EPTP bit 6). Default false. */
  readonly accessedDirty?: boolean;
}

export type EptpResult =
  | { readonly ok: true; readonly eptp: bigint; readonly memoryType: 'WB' | 'UC' }
  | { readonly ok: false; readonly error: string };

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * IA32_VMX_EPT_VPID_CAP if this processor can enable EPT; otherwise an error saying which capability is missing.
 * PROCBASED_CTLS2 exists only if PROCBASED_CTLS bit 63 is 1 (reading it otherwise is a #GP), and "enable EPT" must be
 * allowed-1 (PROCBASED_CTLS2 bit 33) before IA32_VMX_EPT_VPID_CAP says anything about EPT.
 */
export function readEptCapability(rdmsr: Rdmsr): EptCapability {
  if (!bit(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS), ACTIVATE_SECONDARY_ALLOWED1)) {
    return { ok: false, error: 'this processor has no EPT: IA32_VMX_PROCBASED_CTLS bit 63 is 0 ("activate secondary controls" cannot be 1)' };
  }
  if (!bit(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2), ENABLE_EPT_ALLOWED1)) {
    return { ok: false, error: 'this processor has no EPT: IA32_VMX_PROCBASED_CTLS2 bit 33 is 0 ("enable EPT" cannot be 1)' };
  }
  return { ok: true, cap: rdmsr(MSR_IA32_VMX_EPT_VPID_CAP) };
}

/**
 * The EPTP for a 4-level EPT whose PML4 table is at physical address `pml4`: WB if cap bit 14, else UC if cap bit 8;
 * page-walk length 4 (bits 5:3 = 3) if cap bit 6; bit 6 only if asked for, and then only if cap bit 21 — else an
 * error. The PML4 address must be 4-KByte aligned and below 2^MAXPHYADDR.
 */
export function eptpFromCapabilities(cap: bigint, pml4: bigint, req: EptpRequest): EptpResult {
  if (!bit(cap, CAP_WALK_LENGTH_4)) return { ok: false, error: `IA32_VMX_EPT_VPID_CAP ${hex(cap)}: bit 6 is 0, no 4-level EPT page walk (EPTP bits 5:3 = 3)` };
  let memoryType: 'WB' | 'UC';
  if (bit(cap, CAP_MEMORY_TYPE_WB)) memoryType = 'WB';
  else if (bit(cap, CAP_MEMORY_TYPE_UC)) memoryType = 'UC';
  else return { ok: false, error: `IA32_VMX_EPT_VPID_CAP ${hex(cap)}: neither bit 14 (WB) nor bit 8 (UC): no memory type for EPTP bits 2:0` };
  const ad = req.accessedDirty === true;
  if (ad && !bit(cap, CAP_ACCESSED_DIRTY)) {
    return { ok: false, error: `accessed and dirty flags asked for, but IA32_VMX_EPT_VPID_CAP ${hex(cap)} bit 21 is 0: EPTP bit 6 would fail VM entry (error 7)` };
  }
  if ((pml4 & 0xfffn) !== 0n) return { ok: false, error: `PML4 table at ${hex(pml4)} is not 4-KByte aligned (EPTP bits 11:0 are not address bits)` };
  if (pml4 < 0n || pml4 >> BigInt(req.maxPhysAddr) !== 0n) return { ok: false, error: `PML4 table at ${hex(pml4)} is beyond MAXPHYADDR (${req.maxPhysAddr} bits)` };
  const eptp = pml4 | (memoryType === 'WB' ? EPTP_MEMORY_TYPE_WB : EPTP_MEMORY_TYPE_UC) | EPTP_WALK_LENGTH_4 | (ad ? EPTP_ACCESSED_DIRTY : 0n);
  return { ok: true, eptp, memoryType };
}
