// Is an EPT pointer one the processor accepts? VM entry with "enable EPT" = 1 checks the EPTP field, and
// single-context INVEPT checks the EPTP in its descriptor, by the same rules: this file is the only place they are
// written. See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)", "VM-Execution Control Fields" (in "Checks on VMX
// Controls") and "INVEPT—Invalidate Translations Derived from EPT".
import type { VmxCapabilities } from './capabilities.ts';
import { EPT_VPID_CAP } from './msrs.ts';
import { MEMORY_TYPE } from '../x86/memory-types.ts';

/** Extended-page-table pointer fields. */
export const EPTP = {
  MEMORY_TYPE_MASK: 0x7n,
  WALK_LENGTH_SHIFT: 3n,
  WALK_LENGTH_MASK: 0x7n << 3n,
  ACCESSED_DIRTY: 1n << 6n,
  /** Bits 11:7 are reserved (bit 7 only has a meaning with supervisor shadow-stack control, not modelled). */
  RESERVED_LOW: 0xf80n,
} as const;

/** The parts of an EPTP the processor checks, in the order VM entry checks them. */
export const EPTP_PARTS = ['memory-type', 'walk-length', 'accessed-dirty', 'reserved'] as const;
export type EptpPart = (typeof EPTP_PARTS)[number];

/** What is wrong with an EPTP, for the explanation channel. */
export interface EptpProblem {
  readonly part: EptpPart;
  /** What that part should hold on this processor. */
  readonly expected: string;
  readonly message: string;
}

/**
 * Null if the EPTP is valid on this processor, else the first problem (checking only `parts`, in the order of
 * EPTP_PARTS). `maxPhysAddr` is the processor's physical-address width.
 */
export function eptpProblem(eptp: bigint, caps: VmxCapabilities, maxPhysAddr: number,
  parts: readonly EptpPart[] = EPTP_PARTS): EptpProblem | null {
  for (const part of EPTP_PARTS) {
    if (!parts.includes(part)) continue;
    const problem = PART_CHECKS[part](eptp, caps, maxPhysAddr);
    if (problem !== null) return { part, ...problem };
  }
  return null;
}

/** The EPT page-walk lengths this processor supports: 4 if IA32_VMX_EPT_VPID_CAP[6], 5 if bit 7. */
export function eptWalkLengths(caps: VmxCapabilities): number[] {
  const out: number[] = [];
  if (has(caps, EPT_VPID_CAP.VMX_EPT_PAGE_WALK_4_BIT)) out.push(4);
  if (has(caps, EPT_VPID_CAP.VMX_EPT_PAGE_WALK_5_BIT)) out.push(5);
  return out;
}

const has = (caps: VmxCapabilities, bit: bigint): boolean => (caps.eptVpidCap & bit) !== 0n;

/** The memory types the EPT paging structures may have, each with the capability bit that allows it. */
const EPT_STRUCTURE_TYPES = [
  { name: 'UC', type: MEMORY_TYPE.UC, capBit: EPT_VPID_CAP.VMX_EPTP_UC_BIT },
  { name: 'WB', type: MEMORY_TYPE.WB, capBit: EPT_VPID_CAP.VMX_EPTP_WB_BIT },
] as const;

type PartCheck = (eptp: bigint, caps: VmxCapabilities, maxPhysAddr: number) => Omit<EptpProblem, 'part'> | null;

const PART_CHECKS: Readonly<Record<EptpPart, PartCheck>> = {
  // Bits 2:0: the memory type of the EPT paging structures: UC if IA32_VMX_EPT_VPID_CAP[8], WB if bit 14.
  'memory-type': (eptp, caps) => {
    const type = Number(eptp & EPTP.MEMORY_TYPE_MASK);
    const allowed = EPT_STRUCTURE_TYPES.filter((t) => has(caps, t.capBit));
    if (allowed.some((t) => t.type === type)) return null;
    return {
      expected: `bits 2:0 = ${allowed.map((t) => `${t.type} (${t.name})`).join(' or ') || 'none'} (UC if IA32_VMX_EPT_VPID_CAP[8], WB if bit 14)`,
      message: `memory type ${type} (bits 2:0) is not one IA32_VMX_EPT_VPID_CAP allows for the EPT paging structures`,
    };
  },
  // Bits 5:3: the page-walk length minus 1: 4-level if IA32_VMX_EPT_VPID_CAP[6], 5-level if bit 7.
  'walk-length': (eptp, caps) => {
    const walk = Number((eptp & EPTP.WALK_LENGTH_MASK) >> EPTP.WALK_LENGTH_SHIFT) + 1;
    const lengths = eptWalkLengths(caps);
    if (lengths.includes(walk)) return null;
    const allowed = lengths.map((n) => `${n - 1} (${n}-level)`).join(' or ') || 'none';
    return {
      expected: `bits 5:3 = ${allowed} (4-level if IA32_VMX_EPT_VPID_CAP[6], 5-level if bit 7)`,
      message: `page-walk length ${walk} (bits 5:3 hold length − 1) is not supported by this processor`,
    };
  },
  // Bit 6: accessed and dirty flags for EPT, only if IA32_VMX_EPT_VPID_CAP[21].
  'accessed-dirty': (eptp, caps) =>
    (eptp & EPTP.ACCESSED_DIRTY) === 0n || has(caps, EPT_VPID_CAP.VMX_EPT_AD_BIT) ? null : {
      expected: 'bit 6 clear (IA32_VMX_EPT_VPID_CAP[21] = 0)',
      message: 'bit 6 (enable accessed and dirty flags) is set but IA32_VMX_EPT_VPID_CAP[21] = 0',
    },
  // Bits 11:7 and bits 63:MAXPHYADDR are reserved.
  reserved: (eptp, _caps, maxPhysAddr) => {
    if ((eptp & EPTP.RESERVED_LOW) !== 0n) return { expected: 'bits 11:7 clear', message: 'reserved bits 11:7 are not 0' };
    if (eptp >> BigInt(maxPhysAddr) !== 0n) return { expected: `< 2^${maxPhysAddr}`, message: `bits 63:${maxPhysAddr} (beyond MAXPHYADDR) are not 0` };
    return null;
  },
};
