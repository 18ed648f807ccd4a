// PAE paging's four page-directory-pointer-table entries on VM transitions. With PAE paging (CR0.PG = CR4.PAE = 1,
// not IA-32e mode) the processor holds them in registers: VM entry loads them (from GUEST_PDPTR0–3 with EPT, else
// from memory at CR3), VM exit saves them (with EPT) and loads the host's from memory at HOST_CR3.
// See SDM Vol. 3C, "Loading Page-Directory-Pointer-Table Entries", "Saving Non-Register State" and "Loading Host State".
import type { VmxCpu } from '../cpu-view.ts';

/** The guest-state fields of the four PDPTEs, in order. */
export const GUEST_PDPTR_FIELDS = ['GUEST_PDPTR0', 'GUEST_PDPTR1', 'GUEST_PDPTR2', 'GUEST_PDPTR3'] as const;

/** The four PDPTEs in physical memory at CR3[31:5] (the 32-byte-aligned table a PAE CR3 names). */
export function pdptesAt(cpu: Pick<VmxCpu, 'readPhysical64'>, cr3: bigint): bigint[] {
  const base = cr3 & 0xffffffe0n;
  return [0, 1, 2, 3].map((i) => cpu.readPhysical64(base + BigInt(8 * i)));
}
