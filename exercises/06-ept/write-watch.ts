// Exercise 6.4 — a write-watched page: map the guest identically, make one 4-KByte page read-only, catch the write
// (EPT violation, exit 48), log it, let it through, and re-protect the page when the guest asks (VMCALL). The
// processor caches guest-physical mappings, tagged by the EPT PML4 address, across VM exits and entries: after
// REMOVING a permission, the hypervisor must INVEPT or the old, writable translation keeps being used.
// Read chapters/06-ept/README.md. Yours to write: inveptType, inveptDescriptor, invalidateEpt, splitToPte, and the
// setup and handlers of writeWatchPart.
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
  // TODO
  throw new Error('TODO: inveptType');
}

/** The 128-bit INVEPT descriptor: bits 63:0 the EPTP (single-context; ignored for all-context), bits 127:64 reserved, 0. */
export function inveptDescriptor(eptp: bigint): readonly [low: bigint, high: bigint] {
  // TODO
  throw new Error('TODO: inveptDescriptor');
}

/** INVEPT with the type the capability allows, for `eptp`; the VMX outcome as a result. */
export function invalidateEpt(cpu: HostCpu, cap: bigint, eptp: bigint): SetupResult {
  // TODO
  throw new Error('TODO: invalidateEpt');
}

/**
 * The kernel address of the EPT PTE that maps `gpa`, splitting a 1-GByte or 2-MByte page on the way into a table of
 * 512 smaller pages with the same permissions and memory type (a new zeroed table page each, recorded in
 * `tables`). Null when out of memory or when `gpa` is not mapped at all.
 */
export function splitToPte(k: Kernel, tables: EptTables, gpa: bigint): bigint | null {
  // TODO
  throw new Error('TODO: splitToPte');
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
      // TODO: readEptCapability (keep cap), buildIdentityMap of all of RAM (keep tables), page = opts.watch(v) &
      // ~0xfffn, pte = splitToPte(...), protect(v.k), eptpFromCapabilities (keep eptp), VMWRITE EPT_POINTER, then
      // invalidateEpt(v.cpu, cap, eptp).
      throw new Error('TODO: writeWatchPart setup');
    },
    release(k) {
      if (tables !== null) freeEptTables(k, tables);
      tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_EPT_VIOLATION]: (v, exit) => {
        // TODO: a write (decodeEptViolation) to the watched page (GUEST_PHYSICAL_ADDRESS): writes.push({ gpa, rip:
        // GUEST_RIP }), make the PTE RWX again, RESUME. Anything else: stop(why).
        throw new Error('TODO: write-watch EPT violation handler');
      },
      [EXIT_REASON.EXIT_REASON_VMCALL]: (v) => {
        // TODO: protect(v.k) again, then invalidateEpt — the step public hypervisors forget — and SKIP the VMCALL.
        throw new Error('TODO: write-watch VMCALL handler');
      },
    },
  };
}
