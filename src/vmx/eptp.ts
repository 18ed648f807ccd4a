// Is an EPT pointer one that VM entry with "enable EPT" = 1 would accept? INVEPT single-context uses the same rule.
// See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)" and "VM-Execution Control Fields" (in "Checks on VMX
// Controls"), and "INVEPT—Invalidate Translations Derived from EPT".
import type { VmxCapabilities } from './capabilities.ts';
import { EPT_VPID_CAP } from './msrs.ts';

/** Extended-page-table pointer fields. See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)". */
export const EPTP = {
  MEMORY_TYPE_MASK: 0x7n,
  WALK_LENGTH_SHIFT: 3n,
  WALK_LENGTH_MASK: 0x7n << 3n,
  ACCESSED_DIRTY: 1n << 6n,
  /** Bits 11:7 are reserved (bit 7 only has a meaning with supervisor shadow-stack control, not modelled). */
  RESERVED_LOW: 0xf80n,
} as const;
export const MEMORY_TYPE_UC = 0n;
export const MEMORY_TYPE_WB = 6n;

/** Null if the EPTP is valid, else what is wrong with it. */
export function eptpProblem(eptp: bigint, caps: VmxCapabilities, maxPhysAddr: number): string | null {
  const type = eptp & EPTP.MEMORY_TYPE_MASK;
  const typeOk =
    (type === MEMORY_TYPE_UC && (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPTP_UC_BIT) !== 0n) ||
    (type === MEMORY_TYPE_WB && (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPTP_WB_BIT) !== 0n);
  if (!typeOk) return `memory type ${type} (bits 2:0) is not one IA32_VMX_EPT_VPID_CAP allows (UC = 0 if bit 8, WB = 6 if bit 14)`;
  const walk = ((eptp & EPTP.WALK_LENGTH_MASK) >> EPTP.WALK_LENGTH_SHIFT) + 1n;
  if (!(walk === 4n && (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_PAGE_WALK_4_BIT) !== 0n)) {
    return `page-walk length ${walk} (bits 5:3 hold length − 1) is not supported; use 4 (bits 5:3 = 3)`;
  }
  if ((eptp & EPTP.ACCESSED_DIRTY) !== 0n && (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_AD_BIT) === 0n) {
    return 'bit 6 (enable accessed and dirty flags) is set but IA32_VMX_EPT_VPID_CAP[21] = 0';
  }
  if ((eptp & EPTP.RESERVED_LOW) !== 0n) return 'reserved bits 11:7 are not 0';
  if (eptp >> BigInt(maxPhysAddr) !== 0n) return `bits 63:${maxPhysAddr} (beyond MAXPHYADDR) are not 0`;
  return null;
}
