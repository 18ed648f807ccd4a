// Chapter 6's identity map, with the memory type the MTRRs give each range. Under EPT the processor no longer
// consults the MTRRs for guest accesses: the EPT memory type (bits 5:3 of the leaf) takes their place and is
// combined with the guest's PAT type. So the hypervisor must write, per page, the type the MTRRs would have given
// that address — WB for RAM, UC for the VGA hole and the MMIO hole — and leave "ignore PAT" (bit 6) clear, so the
// guest's own PAT/PCD/PWT choices still count as they would on bare metal. A large page may map only a range of
// one type: a 1-GByte page over two types is split into 2-MByte pages, a 2-MByte page over two types into
// 4-KByte pages (every MTRR boundary is 4-KByte aligned).
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
  return BigInt(type === 'undefined' ? UC : type) << EPT_MEMORY_TYPE_SHIFT;
}

/**
 * Write the leaf that maps [gpa, gpa + pageSize) to the same host-physical addresses, RWX, with `type`: a PTE for
 * 4 KBytes, a PDE with bit 7 for 2 MBytes, a PDPTE with bit 7 for 1 GByte; the tables on the way are allocated
 * when missing. False when out of memory.
 */
export function setIdentityLeaf(k: Kernel, tables: EptTables, gpa: bigint, pageSize: bigint, type: MtrrType): boolean {
  const leafShift = pageSize === PAGE_1G ? 30n : pageSize === PAGE_2M ? 21n : 12n;
  let table = k.phys_to_virt(tables.pml4);
  for (let shift = 39n; shift > leafShift; shift -= 9n) {
    const slot = table + 8n * ((gpa >> shift) & 0x1ffn);
    let entry = k.read64(slot);
    if ((entry & EPT_RWX) === 0n) {
      const next = allocEptTable(k, tables);
      if (next === null) return false;
      entry = k.virt_to_phys(next) | EPT_RWX;
      k.write64(slot, entry);
    }
    table = k.phys_to_virt(entry & EPT_ADDRESS_MASK);
  }
  const leaf = gpa | EPT_RWX | eptMemoryTypeBits(type) | (pageSize === PAGE_4K ? 0n : EPT_PAGE_SIZE);
  k.write64(table + 8n * ((gpa >> leafShift) & 0x1ffn), leaf);
  return true;
}

/**
 * Map guest-physical [0, bytes) identically, RWX, each page with its MTRR type, with the largest pages the model
 * allows wherever one type covers the page, and smaller pages where it does not.
 */
export function buildMtrrIdentityMap(k: Kernel, cap: bigint, map: MtrrMap, bytes: bigint): IdentityMapResult {
  const pageSize = largestEptPage(cap);
  const pml4va = k.get_zeroed_page();
  if (pml4va === 0n) return { ok: false, error: 'out of memory for the EPT PML4 table' };
  const tables: EptTables = { pml4: k.virt_to_phys(pml4va), pages: [pml4va] };
  const place = (gpa: bigint, size: bigint): boolean => {
    const runs = memoryTypeRuns(map, gpa, size);
    if (runs.length === 1) return setIdentityLeaf(k, tables, gpa, size, runs[0]!.type);
    if (size === PAGE_2M) {
      // Split to 4-KByte pages, each with the type of the run that holds it.
      for (const run of runs) for (let g = run.base; g < run.end; g += PAGE_4K) if (!setIdentityLeaf(k, tables, g, PAGE_4K, run.type)) return false;
      return true;
    }
    for (let g = gpa; g < gpa + size; g += PAGE_2M) if (!place(g, PAGE_2M)) return false;
    return true;
  };
  for (let gpa = 0n; gpa < bytes; gpa += pageSize) {
    if (!place(gpa, pageSize)) {
      freeEptTables(k, tables);
      return { ok: false, error: 'out of memory for an EPT table' };
    }
  }
  return { ok: true, tables, pageSize };
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
      const cap = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!cap.ok) return { ok: false, error: cap.error };
      const mtrrs = readMtrrs((msr) => v.cpu.rdmsr(msr), maxPhysAddrOf(v));
      const ram = BigInt(v.k.ramBytes);
      const map = buildMtrrIdentityMap(v.k, cap.cap, mtrrs, ram > EPT_MAP_BYTES ? ram : EPT_MAP_BYTES);
      if (!map.ok) return { ok: false, error: map.error };
      state.tables = map.tables;
      const eptp = eptpFromCapabilities(cap.cap, map.tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!eptp.ok) return { ok: false, error: eptp.error };
      state.eptp = eptp.eptp;
      const w = vmwrite(v.cpu, 'EPT_POINTER', eptp.eptp);
      return w.ok ? SETUP_OK : { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
    },
    release(k) {
      if (state.tables !== null) freeEptTables(k, state.tables);
      state.tables = null;
    },
    handlers: {},
  };
}
