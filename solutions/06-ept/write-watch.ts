// A write-watched page: map the guest identically, make one 4-KByte page read-only, catch the write
// (EPT violation, exit 48), log it, let it through, and re-protect the page when the guest asks (VMCALL). The
// processor caches guest-physical mappings, tagged by the EPT PML4 address, across VM exits and entries: after
// REMOVING a permission, the hypervisor must INVEPT or the old, writable translation keeps being used.
// See SDM Vol. 3C, "Caching Translation Information", "Invalidating Cached Translation Information" and
// "INVEPT—Invalidate Translations Derived from EPT".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmread, vmwrite, vmxStatusOf } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, SKIP, stop, type SetupResult, type Vcpu, type VmmPart } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from './eptp.ts';
import {
  allocEptTable, buildIdentityMap, EPT_ADDRESS_MASK, EPT_EXECUTE, EPT_PAGE_SIZE, EPT_READ, EPT_RWX, freeEptTables,
  maxPhysAddrOf, type EptTables,
} from './identity-map.ts';
import { decodeEptViolation } from './violation.ts';

/** INVEPT types (the register operand). */
export const INVEPT_SINGLE_CONTEXT = 1n;
export const INVEPT_ALL_CONTEXT = 2n;
/** IA32_VMX_EPT_VPID_CAP bit 20: INVEPT; bit 25: single-context INVEPT; bit 26: all-context INVEPT. */
const CAP_INVEPT = 20;
const CAP_SINGLE_CONTEXT = 25;
const CAP_ALL_CONTEXT = 26;

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

export type InveptTypeResult = { readonly ok: true; readonly type: bigint } | { readonly ok: false; readonly error: string };

/**
 * Single-context (1) if cap bits 20 and 25, else all-context (2) if bits 20 and 26; otherwise an error: an INVEPT
 * type the processor does not report fails with VMfailValid, VM-instruction error 28 (without bit 20, INVEPT is #UD).
 */
export function inveptType(cap: bigint): InveptTypeResult {
  if (!bit(cap, CAP_INVEPT)) return { ok: false, error: `IA32_VMX_EPT_VPID_CAP ${hex(cap)}: bit 20 is 0, no INVEPT instruction (#UD)` };
  if (bit(cap, CAP_SINGLE_CONTEXT)) return { ok: true, type: INVEPT_SINGLE_CONTEXT };
  if (bit(cap, CAP_ALL_CONTEXT)) return { ok: true, type: INVEPT_ALL_CONTEXT };
  return { ok: false, error: `IA32_VMX_EPT_VPID_CAP ${hex(cap)}: neither bit 25 (single-context) nor bit 26 (all-context): any INVEPT type fails with error 28` };
}

/** The 128-bit INVEPT descriptor: bits 63:0 the EPTP (single-context; ignored for all-context), bits 127:64 reserved, 0. */
export function inveptDescriptor(eptp: bigint): readonly [low: bigint, high: bigint] {
  return [eptp, 0n];
}

/** INVEPT with the type the capability allows, for `eptp`; the VMX outcome as a result. */
export function invalidateEpt(cpu: HostCpu, cap: bigint, eptp: bigint): SetupResult {
  const t = inveptType(cap);
  if (!t.ok) return { ok: false, error: t.error };
  const [low] = inveptDescriptor(eptp);
  cpu.invept(t.type, low);
  const s = vmxStatusOf(cpu);
  return s.ok ? SETUP_OK : { ok: false, error: `INVEPT type ${t.type}: ${describeVmxError(s.error)}` };
}

/**
 * The kernel address of the EPT PTE that maps `gpa`, splitting a 1-GByte or 2-MByte page on the way into a table of
 * 512 smaller pages with the same permissions and memory type (a new zeroed table page each, recorded in
 * `tables`). Null when out of memory or when `gpa` is not mapped at all.
 */
export function splitToPte(k: Kernel, tables: EptTables, gpa: bigint): bigint | null {
  let table = k.phys_to_virt(tables.pml4);
  for (const shift of [39n, 30n, 21n]) {
    const slot = table + 8n * ((gpa >> shift) & 0x1ffn);
    let entry = k.read64(slot);
    if ((entry & EPT_RWX) === 0n) return null;
    if ((entry & EPT_PAGE_SIZE) !== 0n) {
      // A large page: 512 entries of the next size down, covering the same range, with the same low bits
      // (permissions, memory type, IPAT); bit 7 stays set for 2-MByte pages and is cleared for 4-KByte PTEs.
      const next = allocEptTable(k, tables);
      if (next === null) return null;
      const size = 1n << (shift - 9n);
      const base = entry & EPT_ADDRESS_MASK & ~((1n << shift) - 1n);
      const low = entry & 0xfffn & (shift - 9n === 12n ? ~EPT_PAGE_SIZE : ~0n);
      for (let i = 0n; i < 512n; i++) k.write64(next + 8n * i, (base + i * size) | low);
      entry = k.virt_to_phys(next) | EPT_RWX;
      k.write64(slot, entry);
    }
    table = k.phys_to_virt(entry & EPT_ADDRESS_MASK);
  }
  return table + 8n * ((gpa >> 12n) & 0x1ffn);
}

/** One write the part caught. */
export interface WatchedWrite {
  readonly gpa: bigint;
  readonly rip: bigint;
}

export interface WriteWatchOptions {
  /** The guest-physical address of the page to watch (any address inside it). */
  watch(v: Vcpu): bigint;
}

/**
 * Identity-map the guest, watch one page. Exit 48 with a write to the watched page: log it, make the page writable
 * (RWX), RESUME (the write is retried and succeeds; granting a permission needs no INVEPT). VMCALL: re-protect
 * (read/execute only), INVEPT, SKIP — without the INVEPT the cached writable mapping would let the next write through.
 * Any other EPT violation: stop.
 */
export function writeWatchPart(opts: WriteWatchOptions): VmmPart & { readonly writes: readonly WatchedWrite[] } {
  const writes: WatchedWrite[] = [];
  let tables: EptTables | null = null;
  let pte = 0n, page = 0n, cap = 0n, eptp = 0n;
  const protect = (k: Kernel): void => k.write64(pte, (k.read64(pte) & ~EPT_RWX) | EPT_READ | EPT_EXECUTE);
  return {
    name: 'ept-write-watch',
    writes,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      const c = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!c.ok) return { ok: false, error: c.error };
      cap = c.cap;
      const map = buildIdentityMap(v.k, cap, BigInt(v.k.ramBytes));
      if (!map.ok) return { ok: false, error: map.error };
      tables = map.tables;
      page = opts.watch(v) & ~0xfffn;
      const at = splitToPte(v.k, tables, page);
      if (at === null) return { ok: false, error: `cannot split the EPT down to the 4-KByte page ${hex(page)}` };
      pte = at;
      protect(v.k);
      const e = eptpFromCapabilities(cap, tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!e.ok) return { ok: false, error: e.error };
      eptp = e.eptp;
      const w = vmwrite(v.cpu, 'EPT_POINTER', eptp);
      if (!w.ok) return { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
      // Mappings of an EPTP used before (by an earlier guest with the same PML4 address) could still be cached.
      return invalidateEpt(v.cpu, cap, eptp);
    },
    release(k) {
      if (tables !== null) freeEptTables(k, tables);
      tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_EPT_VIOLATION]: (v, exit) => {
        const gpa = vmread(v.cpu, 'GUEST_PHYSICAL_ADDRESS');
        if (!gpa.ok) return stop(`VMREAD GUEST_PHYSICAL_ADDRESS: ${describeVmxError(gpa.error)}`);
        const info = decodeEptViolation(exit.qualification);
        if ((gpa.value & ~0xfffn) !== page || !info.write) {
          return stop(`unexpected EPT violation at guest-physical ${hex(gpa.value)}, qualification ${hex(exit.qualification)}`);
        }
        const rip = vmread(v.cpu, 'GUEST_RIP');
        writes.push({ gpa: gpa.value, rip: rip.ok ? rip.value : 0n });
        v.k.write64(pte, v.k.read64(pte) | EPT_RWX);
        return RESUME;
      },
      [EXIT_REASON.EXIT_REASON_VMCALL]: (v) => {
        protect(v.k);
        const r = invalidateEpt(v.cpu, cap, eptp);
        return r.ok ? SKIP : stop(r.error);
      },
    },
  };
}
