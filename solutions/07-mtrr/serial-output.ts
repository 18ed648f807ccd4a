// The guest's serial output goes missing. A hypervisor maps all of guest-physical memory WB — the quick identity map
// of chapter 6, as many tutorials write it — and runs a guest that prints through the memory-mapped UART at
// FEB00000H. On bare metal the MTRRs make that page UC, and the guest's own page tables (PAT entry 0, WB) rely on
// it. Under EPT the MTRRs are not consulted: the EPT type WB takes their place, the guest's stores to the transmit
// register stay in a dirty cache line, and its reads of the line status register hit a stale copy. The fix: give
// the EPT leaf that maps a device page the MTRR type of that page (UC), splitting a large page where one type does
// not cover it, with "ignore PAT" clear — and INVEPT, because a cached mapping keeps the type it was filled with.
// See SDM Vol. 3C, "EPT and Memory Typing" and "Invalidating Cached Translation Information"; Vol. 3A, "Large Page
// Size Considerations".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmwrite } from '../02-vmcs/vmx-access.ts';
import { SKIP, stop, type SetupResult, type Vcpu, type VmmPart } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from '../06-ept/eptp.ts';
import {
  allocEptTable, buildIdentityMap, EPT_ADDRESS_MASK, EPT_PAGE_SIZE, EPT_RWX, freeEptTables, maxPhysAddrOf, PAGE_4K,
  type EptTables,
} from '../06-ept/identity-map.ts';
import { invalidateEpt } from '../06-ept/write-watch.ts';
import { EPT_IGNORE_PAT, EPT_MAP_BYTES, eptMemoryTypeBits } from './ept-memory-types.ts';
import { memoryTypeRuns, type MtrrType } from './mtrr-type.ts';
import { readMtrrs, type MtrrMap } from './read-mtrrs.ts';

/** The kit's memory-mapped 16550 UART (src/machine/devices/mmio-uart.ts), in the firmware's UC MMIO hole. */
export const MMIO_UART_GPA = 0xfeb00000n;
/** Bits 5:3 of an EPT leaf: the memory type. */
export const EPT_MEMORY_TYPE_MASK = 7n << 3n;

export type FixResult =
  | {
    readonly ok: true;
    /** Kernel address of the leaf that now maps the page. */
    readonly slot: bigint;
    /** The size of the page that leaf maps (4 KBytes, 2 MBytes or 1 GByte). */
    readonly pageSize: bigint;
    /** The MTRR type written into it. */
    readonly type: MtrrType;
  }
  | { readonly ok: false; readonly error: string };

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * Give the EPT leaf that maps guest-physical `gpa` the memory type the MTRRs give that address, with "ignore PAT"
 * clear. A leaf whose page holds more than one MTRR type is split first into 512 pages of the next size down, each
 * with the address, permissions and type of the page it came from (a split changes no other page), and the one that
 * holds `gpa` is looked at again. Every other bit of the leaf stays as it was. The caller must INVEPT afterwards.
 */
export function fixMemoryType(k: Kernel, tables: EptTables, map: MtrrMap, gpa: bigint): FixResult {
  let table = k.phys_to_virt(tables.pml4);
  for (let shift = 39n; shift >= 12n; shift -= 9n) {
    const slot = table + 8n * ((gpa >> shift) & 0x1ffn);
    const entry = k.read64(slot);
    if ((entry & EPT_RWX) === 0n) return { ok: false, error: `guest-physical ${hex(gpa)} is not mapped: the EPT entry at level ${(shift - 3n) / 9n} is not present` };
    const leaf = shift === 12n || (shift <= 30n && (entry & EPT_PAGE_SIZE) !== 0n);
    if (!leaf) {
      table = k.phys_to_virt(entry & EPT_ADDRESS_MASK);
      continue;
    }
    const size = 1n << shift;
    const runs = memoryTypeRuns(map, gpa & ~(size - 1n), size);
    if (runs.length === 1) {
      const type = runs[0]!.type;
      k.write64(slot, (entry & ~(EPT_MEMORY_TYPE_MASK | EPT_IGNORE_PAT)) | eptMemoryTypeBits(type));
      return { ok: true, slot, pageSize: size, type };
    }
    // The page holds several MTRR types: split it. The new entries keep every bit but the address (and bit 7 for
    // 4-KByte PTEs), so the pages the fix is not about keep their type.
    const next = allocEptTable(k, tables);
    if (next === null) return { ok: false, error: `out of memory for the EPT table that splits the page at ${hex(gpa & ~(size - 1n))}` };
    const small = size >> 9n;
    const base = entry & EPT_ADDRESS_MASK & ~(size - 1n);
    const keep = entry & ~EPT_ADDRESS_MASK & (small === PAGE_4K ? ~EPT_PAGE_SIZE : ~0n);
    for (let i = 0n; i < 512n; i++) k.write64(next + 8n * i, (base + i * small) | keep);
    k.write64(slot, k.virt_to_phys(next) | EPT_RWX);
    table = next;
  }
  return { ok: false, error: `kit bug: the walk for ${hex(gpa)} found no leaf` };
}

export interface SerialFixOptions {
  /** Device pages to fix in setup, before the guest runs (default: the MMIO UART's page). */
  readonly devicePages?: readonly bigint[];
}

/**
 * The part: the tutorial's quick map (chapter 6's buildIdentityMap of the first 4 GiB, all WB), then the fix — the
 * MTRRs read with exercise 7.1, fixMemoryType for every page of `devicePages`, INVEPT. VMCALL with RBX = a
 * guest-physical address: a device page the guest announces while it runs (the mapping may already be cached):
 * fixMemoryType, INVEPT, skip.
 */
export function serialFixPart(opts: SerialFixOptions = {}): VmmPart & { readonly state: { tables: EptTables | null; eptp: bigint | null } } {
  const state: { tables: EptTables | null; eptp: bigint | null } = { tables: null, eptp: null };
  let cap = 0n;
  let mtrrs: MtrrMap | null = null;
  const fix = (v: Vcpu, gpa: bigint): SetupResult => {
    if (state.tables === null || state.eptp === null || mtrrs === null) return { ok: false, error: 'no EPT to fix' };
    const r = fixMemoryType(v.k, state.tables, mtrrs, gpa);
    if (!r.ok) return { ok: false, error: r.error };
    // A cached guest-physical or combined mapping keeps the memory type it was filled with.
    return invalidateEpt(v.cpu, cap, state.eptp);
  };
  return {
    name: 'serial-fix',
    state,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      const c = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!c.ok) return { ok: false, error: c.error };
      cap = c.cap;
      // The tutorial's quick map: every page of the first 4 GiB WB.
      const map = buildIdentityMap(v.k, cap, EPT_MAP_BYTES);
      if (!map.ok) return { ok: false, error: map.error };
      state.tables = map.tables;
      const eptp = eptpFromCapabilities(cap, map.tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!eptp.ok) return { ok: false, error: eptp.error };
      state.eptp = eptp.eptp;
      const w = vmwrite(v.cpu, 'EPT_POINTER', eptp.eptp);
      if (!w.ok) return { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
      // The fix: the MTRR type for each device page.
      mtrrs = readMtrrs((msr) => v.cpu.rdmsr(msr), maxPhysAddrOf(v));
      for (const page of opts.devicePages ?? [MMIO_UART_GPA]) {
        const r = fixMemoryType(v.k, map.tables, mtrrs, page);
        if (!r.ok) return { ok: false, error: r.error };
      }
      // Mappings of an EPTP used before (an earlier guest with the same PML4 address) could still be cached.
      return invalidateEpt(v.cpu, cap, eptp.eptp);
    },
    release(k) {
      if (state.tables !== null) freeEptTables(k, state.tables);
      state.tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_VMCALL]: (v) => {
        const r = fix(v, v.cpu.readGpr('rbx'));
        return r.ok ? SKIP : stop(r.error);
      },
    },
  };
}
