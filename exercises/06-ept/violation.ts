// Exercise 6.3 — EPT violations (exit reason 48): decode the exit qualification, and a part that starts the guest
// with an EMPTY EPT and maps each 4-KByte page the first time the guest touches it. The guest never notices: an EPT
// violation is fault-like, GUEST_RIP still points at the access, and RESUME runs it again, now mapped. An EPT
// misconfiguration (exit reason 49) is different: the entry itself is illegal, the same access would fail again
// forever, so the part reports it and stops the guest.
// Read chapters/06-ept/README.md. Yours to write: decodeEptViolation, mapPage4k, and the setup and handlers of
// demandPagingPart.
// See SDM Vol. 3C, "EPT Violations", "Exit Qualification for EPT Violations", "EPT Misconfigurations" and
// "Basic VM-Exit Information".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, stop, type VmmPart } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from './eptp.ts';
import {
  allocEptTable, EPT_ADDRESS_MASK, EPT_MEMORY_TYPE_WB, EPT_RWX, freeEptTables, maxPhysAddrOf, type EptTables,
} from './identity-map.ts';

/** The exit qualification of an EPT violation, decoded. */
export interface EptViolationInfo {
  /** Bits 0–2: the access was a data read, a data write, an instruction fetch (a read-modify-write sets 0 and 1). */
  readonly read: boolean;
  readonly write: boolean;
  readonly fetch: boolean;
  /** Bits 3–5: what the translation allowed — the AND of bits 0, 1, 2 of the EPT entries used (0 if not present). */
  readonly readable: boolean;
  readonly writable: boolean;
  readonly executable: boolean;
  /** Bit 7: GUEST_LINEAR_ADDRESS is valid. */
  readonly linearValid: boolean;
  /**
   * Bit 8, defined only when bit 7 is 1: 'final' (1) if the access was to the translation of the linear address,
   * 'paging-structure' (0) if it was to a guest paging-structure entry; null when bit 7 is 0.
   */
  readonly translation: 'final' | 'paging-structure' | null;
}

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

export function decodeEptViolation(qualification: bigint): EptViolationInfo {
  // TODO
  throw new Error('TODO: decodeEptViolation');
}

/**
 * Map the 4-KByte guest-physical page of `gpa` to host-physical `hpa` with `permissions` (bits 2:0) and memory
 * type WB, allocating the PDPT, PD and PT on the way (each a zeroed page recorded in `tables`). False when out of
 * memory, or when a 1-GByte or 2-MByte page already maps `gpa` (this function does not split pages).
 */
export function mapPage4k(k: Kernel, tables: EptTables, gpa: bigint, hpa: bigint, permissions: bigint): boolean {
  // TODO
  throw new Error('TODO: mapPage4k');
}

/** One EPT violation the part handled. */
export interface EptFault {
  readonly gpa: bigint;
  readonly qualification: bigint;
}

export interface DemandPagingOptions {
  /** Guest-physical addresses from `limit` up are not guest memory: a violation there stops the guest. */
  readonly limit: bigint;
}

/**
 * A part with "enable EPT" and an EPT that maps nothing at first. Exit 48 below `limit`: record the fault, map the
 * page identically (RWX, WB), RESUME. Exit 48 at or above `limit`: stop, naming the address and the access. Exit
 * 49: stop, naming the guest-physical address — never resume a misconfiguration.
 */
export function demandPagingPart(opts: DemandPagingOptions): VmmPart & { readonly faults: readonly EptFault[] } {
  const faults: EptFault[] = [];
  let tables: EptTables | null = null;
  return {
    name: 'ept-demand-paging',
    faults,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      // TODO: readEptCapability, an EMPTY EPT (one zeroed PML4 page: tables = { pml4: its physical address, pages:
      // [its kernel address] }), eptpFromCapabilities, VMWRITE EPT_POINTER.
      throw new Error('TODO: demandPagingPart setup');
    },
    release(k) {
      if (tables !== null) freeEptTables(k, tables);
      tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_EPT_VIOLATION]: (v, exit) => {
        // TODO: VMREAD GUEST_PHYSICAL_ADDRESS; decodeEptViolation(exit.qualification); at or above opts.limit →
        // stop(a message with the address in hex and the access: "data read", "data write", "instruction fetch");
        // else faults.push({ gpa, qualification }), mapPage4k(identity, EPT_RWX), RESUME (not SKIP: a fault).
        throw new Error('TODO: EPT violation handler');
      },
      [EXIT_REASON.EXIT_REASON_EPT_MISCONFIG]: (v) => {
        // TODO: stop(...) with "misconfiguration" and GUEST_PHYSICAL_ADDRESS in hex. Never RESUME.
        throw new Error('TODO: EPT misconfiguration handler');
      },
    },
  };
}
