// Exercise 7.3 — chapter 6's identity map, with the memory type the MTRRs give each range. Under EPT the
// processor no longer consults the MTRRs for guest accesses: the EPT memory type (bits 5:3 of the leaf) takes
// their place and is combined with the guest's PAT type. So the hypervisor must write, per page, the type the MTRRs would have given
// that address — WB for RAM, UC for the VGA hole and the MMIO hole — and leave "ignore PAT" (bit 6) clear, so the
// guest's own PAT/PCD/PWT choices still count as they would on bare metal. A large page may map only a range of
// one type: a 1-GByte page over two types is split into 2-MByte pages, a 2-MByte page over two types into
// 4-KByte pages (every MTRR boundary is 4-KByte aligned).
// Read chapters/07-mtrr/README.md. Yours to write: eptMemoryTypeBits, setIdentityLeaf, buildMtrrIdentityMap and
// the setup of mtrrEptPart; your chapter 6 code does the rest.
// See SDM Vol. 3C, "EPT and Memory Typing", and Vol. 3A, "MTRR Precedences" and "Large Page Size Considerations".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmwrite } from '../02-vmcs/vmx-access.ts';
import { SETUP_OK, type VmmPart } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from '../06-ept/eptp.ts';
import {
  allocEptTable, EPT_ADDRESS_MASK, EPT_PAGE_SIZE, EPT_RWX, freeEptTables, largestEptPage, maxPhysAddrOf, PAGE_1G, PAGE_2M,
  PAGE_4K, type EptTables, type IdentityMapResult,
} from '../06-ept/identity-map.ts';
import { memoryTypeRuns, type MtrrType } from './mtrr-type.ts';
import { readMtrrs, type MtrrMap } from './read-mtrrs.ts';

/** Bits 5:3 of an EPT leaf: the memory type. */
export const EPT_MEMORY_TYPE_SHIFT = 3n;
/** Bit 6 of an EPT leaf: ignore PAT (this chapter leaves it 0). */
export const EPT_IGNORE_PAT = 1n << 6n;
/** The part maps at least the first 4 GiB: RAM, and the MMIO hole below 4 GiB where the APICs are. */
export const EPT_MAP_BYTES = 1n << 32n;

const UC = 0;

/**
 * The leaf bits 5:3 for an MTRR type. Where overlapping MTRRs leave the type undefined, UC is the one choice that
 * cannot lose a device's reads or writes.
 */
export function eptMemoryTypeBits(type: MtrrType): bigint {
  // TODO: BigInt(type) << EPT_MEMORY_TYPE_SHIFT; 'undefined' as UC.
  throw new Error('TODO: eptMemoryTypeBits');
}

/**
 * Write the leaf that maps [gpa, gpa + pageSize) to the same host-physical addresses, RWX, with `type`: a PTE for
 * 4 KBytes, a PDE with bit 7 for 2 MBytes, a PDPTE with bit 7 for 1 GByte; the tables on the way are allocated
 * when missing. False when out of memory.
 */
export function setIdentityLeaf(k: Kernel, tables: EptTables, gpa: bigint, pageSize: bigint, type: MtrrType): boolean {
  // TODO: chapter 6's walk from the PML4 (allocEptTable for a missing table, entry = virt_to_phys | EPT_RWX), down to
  // the level of pageSize; the leaf is gpa | EPT_RWX | eptMemoryTypeBits(type) | (EPT_PAGE_SIZE unless 4 KBytes).
  throw new Error('TODO: setIdentityLeaf');
}

/**
 * Map guest-physical [0, bytes) identically, RWX, each page with its MTRR type, with the largest pages the model
 * allows wherever one type covers the page, and smaller pages where it does not.
 */
export function buildMtrrIdentityMap(k: Kernel, cap: bigint, map: MtrrMap, bytes: bigint): IdentityMapResult {
  // TODO: chapter 6's buildIdentityMap, but each page of largestEptPage(cap) asks memoryTypeRuns first: one run → one
  // leaf of that type; several → the page in smaller pages (1 GByte → 2 MBytes → 4 KBytes), each asked again.
  throw new Error('TODO: buildMtrrIdentityMap');
}

/**
 * The part: "enable EPT", this processor's MTRRs read with exercise 7.1, an identity map of the first 4 GiB (or all
 * of RAM if there is more) with the MTRR types, and EPT_POINTER.
 */
export function mtrrEptPart(): VmmPart & { readonly state: { tables: EptTables | null; eptp: bigint | null } } {
  const state: { tables: EptTables | null; eptp: bigint | null } = { tables: null, eptp: null };
  return {
    name: 'ept-mtrr',
    state,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      // TODO: readEptCapability; readMtrrs((msr) => v.cpu.rdmsr(msr), maxPhysAddrOf(v)); buildMtrrIdentityMap of
      // EPT_MAP_BYTES (or all of RAM, k.ramBytes, if that is more) — keep the tables in state.tables —;
      // eptpFromCapabilities; state.eptp; VMWRITE EPT_POINTER. Return { ok: false, error } at the first step that fails.
      throw new Error('TODO: mtrrEptPart setup');
    },
    release(k) {
      if (state.tables !== null) freeEptTables(k, state.tables);
      state.tables = null;
    },
    handlers: {},
  };
}
