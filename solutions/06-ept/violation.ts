// EPT violations (exit reason 48): decode the exit qualification, and a part that starts the guest
// with an EMPTY EPT and maps each 4-KByte page the first time the guest touches it. The guest never notices: an EPT
// violation is fault-like, GUEST_RIP still points at the access, and RESUME runs it again, now mapped. An EPT
// misconfiguration (exit reason 49) is different: the entry itself is illegal, the same access would fail again
// forever, so the part reports it and stops the guest.
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
  const q = qualification;
  const linearValid = bit(q, 7);
  return {
    read: bit(q, 0), write: bit(q, 1), fetch: bit(q, 2),
    readable: bit(q, 3), writable: bit(q, 4), executable: bit(q, 5),
    linearValid,
    translation: linearValid ? (bit(q, 8) ? 'final' : 'paging-structure') : null,
  };
}

/**
 * Map the 4-KByte guest-physical page of `gpa` to host-physical `hpa` with `permissions` (bits 2:0) and memory
 * type WB, allocating the PDPT, PD and PT on the way (each a zeroed page recorded in `tables`). False when out of
 * memory, or when a 1-GByte or 2-MByte page already maps `gpa` (this function does not split pages).
 */
export function mapPage4k(k: Kernel, tables: EptTables, gpa: bigint, hpa: bigint, permissions: bigint): boolean {
  let table = k.phys_to_virt(tables.pml4);
  for (const shift of [39n, 30n, 21n]) {
    const slot = table + 8n * ((gpa >> shift) & 0x1ffn);
    let entry = k.read64(slot);
    if ((entry & EPT_RWX) === 0n) {
      const next = allocEptTable(k, tables);
      if (next === null) return false;
      entry = k.virt_to_phys(next) | EPT_RWX;
      k.write64(slot, entry);
    } else if ((entry & (1n << 7n)) !== 0n) {
      return false;
    }
    table = k.phys_to_virt(entry & EPT_ADDRESS_MASK);
  }
  k.write64(table + 8n * ((gpa >> 12n) & 0x1ffn), (hpa & ~0xfffn) | (permissions & EPT_RWX) | EPT_MEMORY_TYPE_WB);
  return true;
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
      const cap = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!cap.ok) return { ok: false, error: cap.error };
      const pml4 = v.k.get_zeroed_page();
      if (pml4 === 0n) return { ok: false, error: 'out of memory for the EPT PML4 table' };
      tables = { pml4: v.k.virt_to_phys(pml4), pages: [pml4] };
      const eptp = eptpFromCapabilities(cap.cap, tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!eptp.ok) return { ok: false, error: eptp.error };
      const w = vmwrite(v.cpu, 'EPT_POINTER', eptp.eptp);
      return w.ok ? SETUP_OK : { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
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
        const access = info.fetch ? 'instruction fetch' : info.write ? 'data write' : 'data read';
        if (gpa.value >= opts.limit) {
          return stop(`EPT violation at guest-physical ${hex(gpa.value)} (${access}, qualification ${hex(exit.qualification)}): not guest memory (limit ${hex(opts.limit)})`);
        }
        faults.push({ gpa: gpa.value, qualification: exit.qualification });
        if (tables === null || !mapPage4k(v.k, tables, gpa.value, gpa.value, EPT_RWX)) {
          return stop(`EPT violation at guest-physical ${hex(gpa.value)}: cannot map the page`);
        }
        // Nothing was cached for a not-present page, so no INVEPT is needed: the retry walks EPT again.
        return RESUME;
      },
      [EXIT_REASON.EXIT_REASON_EPT_MISCONFIG]: (v) => {
        const gpa = vmread(v.cpu, 'GUEST_PHYSICAL_ADDRESS');
        const where = gpa.ok ? hex(gpa.value) : '(unreadable)';
        return stop(`EPT misconfiguration at guest-physical ${where}: an EPT entry on its walk is illegal (write without read, a reserved bit, a reserved memory type); resuming would fail again`);
      },
    },
  };
}
