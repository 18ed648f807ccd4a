// CR0 on VM transitions: VM entry and VM exit load CR0 from the VMCS (GUEST_CR0, HOST_CR0), except for the bits
// no VM transition changes. See SDM Vol. 3C, "Loading Guest Control Registers, Debug Registers, and MSRs" and
// "Loading Host Control Registers, Debug Registers, MSRs".
import { CR0 } from '../../x86/control-registers.ts';

/** CR0 bits VM transitions never change: ET (4), NW (29), CD (30) and the reserved bits 15:6, 17, 28:19 (and 63:32). */
export const CR0_KEPT_ON_VM_TRANSITION = ~BigInt(CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.NE | CR0.WP | CR0.AM | CR0.PG) & 0xffffffffffffffffn;

/** Merge a CR0 value from the VMCS with the bits a VM transition keeps from the current CR0. */
export function mergeCr0(current: bigint, fromVmcs: bigint): bigint {
  return (current & CR0_KEPT_ON_VM_TRANSITION) | (fromVmcs & ~CR0_KEPT_ON_VM_TRANSITION);
}
