// Exercise 6.2 — an identity map of guest memory (guest-physical = host-physical) with the largest pages the model
// allows, and the part that turns EPT on with it. EPT paging structures are read by the processor by physical
// address: each table must be one physically contiguous, 4-KByte aligned page. get_zeroed_page gives exactly that
// (and zeroed: a not-present entry is 0); vmalloc does not — its virt_to_phys is a meaningless number.
// Read chapters/06-ept/README.md. Yours to write: largestEptPage, buildIdentityMap and the setup of
// eptIdentityPart (allocEptTable, freeEptTables and maxPhysAddrOf are given).
// See SDM Vol. 3C, "EPT Translation Mechanism" and "EPT and Memory Typing".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmwrite } from '../02-vmcs/vmx-access.ts';
import { SETUP_OK, type Vcpu, type VmmPart } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from './eptp.ts';

/** EPT entry bits. See SDM Vol. 3C, "EPT Translation Mechanism" (the entry-format tables). */
export const EPT_READ = 1n << 0n;
export const EPT_WRITE = 1n << 1n;
export const EPT_EXECUTE = 1n << 2n;
export const EPT_RWX = EPT_READ | EPT_WRITE | EPT_EXECUTE;
/** Bits 5:3 of a leaf: memory type; 6 is WB (chapter 7 takes it from the MTRRs). */
export const EPT_MEMORY_TYPE_WB = 6n << 3n;
/** Bit 7 of a PDPTE (1 GByte) or PDE (2 MBytes): this entry maps a page. */
export const EPT_PAGE_SIZE = 1n << 7n;
/** Bits 51:12: the address of the next table or the page (bits above MAXPHYADDR must be 0). */
export const EPT_ADDRESS_MASK = 0x000ffffffffff000n;

export const PAGE_4K = 1n << 12n;
export const PAGE_2M = 1n << 21n;
export const PAGE_1G = 1n << 30n;

/** IA32_VMX_EPT_VPID_CAP bit 16: a PDE may map a 2-MByte page; bit 17: a PDPTE may map a 1-GByte page. */
const CAP_2M = 16;
const CAP_1G = 17;

/** The EPT paging structures of one guest. */
export interface EptTables {
  /** Physical address of the PML4 table (EPTP bits 51:12). */
  readonly pml4: bigint;
  /** Kernel (direct-map) addresses of every table page, the PML4 first, to free them all. */
  readonly pages: bigint[];
}

export type IdentityMapResult =
  | { readonly ok: true; readonly tables: EptTables; readonly pageSize: bigint }
  | { readonly ok: false; readonly error: string };

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

/** 1 GByte if cap bit 17, else 2 MBytes if cap bit 16, else 4 KBytes. */
export function largestEptPage(cap: bigint): bigint {
  // TODO
  throw new Error('TODO: largestEptPage');
}

/** A zeroed, physically contiguous table page, recorded in `tables.pages`; null when out of memory. */
export function allocEptTable(k: Kernel, tables: EptTables): bigint | null {
  const va = k.get_zeroed_page();
  if (va === 0n) return null;
  tables.pages.push(va);
  return va;
}

/** Free every table page (given). */
export function freeEptTables(k: Kernel, tables: EptTables): void {
  for (const va of tables.pages) k.free_page(va);
  tables.pages.length = 0;
}

/**
 * Map guest-physical [0, bytes) to the same host-physical addresses, read/write/execute, WB, with pages of
 * largestEptPage(cap) (the last page may reach past `bytes`). The tables come from get_zeroed_page only.
 */
export function buildIdentityMap(k: Kernel, cap: bigint, bytes: bigint): IdentityMapResult {
  // TODO
  throw new Error('TODO: buildIdentityMap');
}

/** MAXPHYADDR: CPUID.80000008H:EAX[7:0]. */
export function maxPhysAddrOf(v: Vcpu): number {
  return v.cpu.cpuid(0x80000008).eax & 0xff;
}

/**
 * A part that runs the guest under EPT: "enable EPT" (secondary control bit 1), an identity map of all of the host's
 * RAM (k.ramBytes) and EPT_POINTER. No handlers: with every guest-physical address mapped, no EPT exit happens.
 */
export function eptIdentityPart(): VmmPart & { readonly state: { tables: EptTables | null; eptp: bigint | null } } {
  const state: { tables: EptTables | null; eptp: bigint | null } = { tables: null, eptp: null };
  return {
    name: 'ept-identity',
    state,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      // TODO: readEptCapability (v.cpu.rdmsr), buildIdentityMap of all of RAM (BigInt(v.k.ramBytes)) — keep the
      // tables in state.tables so release() frees them —, eptpFromCapabilities (maxPhysAddrOf(v)), state.eptp, and
      // VMWRITE EPT_POINTER. Return { ok: false, error } with the reason at the first step that fails.
      throw new Error('TODO: eptIdentityPart setup');
    },
    release(k) {
      if (state.tables !== null) freeEptTables(k, state.tables);
      state.tables = null;
    },
    handlers: {},
  };
}
