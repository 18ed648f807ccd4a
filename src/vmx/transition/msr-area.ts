// The MSR areas of VM entry (MSR-load) and VM exit (MSR-store, MSR-load): arrays of 16-byte entries in physical
// memory, and the MSRs an MSR-load area may not load. See SDM Vol. 3C, "VM-Entry Controls for MSRs", "VM-Exit
// Controls for MSRs" and "Loading MSRs".
import type { VmxCpu } from '../cpu-view.ts';
import { MSR_FS_BASE, MSR_GS_BASE, MSR_X2APIC_FIRST, MSR_X2APIC_LAST } from '../../x86/msr.ts';

/** Bytes per entry: MSR index (bits 31:0), reserved (bits 63:32), MSR value (bits 127:64). */
export const MSR_AREA_ENTRY_BYTES = 16;

/** One entry of an MSR area. */
export interface MsrAreaEntry {
  /** 1-based position in the area (what exit qualifications and diagnoses report). */
  readonly position: number;
  /** Bits 31:0: the MSR index. */
  readonly index: number;
  /** Bits 63:32: reserved. */
  readonly reserved: number;
  /** Bits 127:64: the value to load (or where a stored value goes). */
  readonly value: bigint;
}

/** Physical address of entry `i` (0-based) of the MSR area at `base`. */
export function msrAreaEntryAddress(base: bigint, i: number): bigint {
  return base + BigInt(MSR_AREA_ENTRY_BYTES * i);
}

/** Read entry `i` (0-based) of an MSR-load area. */
export function readMsrAreaEntry(cpu: Pick<VmxCpu, 'readPhysical32' | 'readPhysical64'>, base: bigint, i: number): MsrAreaEntry {
  const at = msrAreaEntryAddress(base, i);
  return { position: i + 1, index: cpu.readPhysical32(at), reserved: cpu.readPhysical32(at + 4n), value: cpu.readPhysical64(at + 8n) };
}

/** x2APIC MSRs (800H–8FFH) cannot be loaded or stored through an MSR area. */
export function isX2apicMsr(index: number): boolean {
  return index >= MSR_X2APIC_FIRST && index <= MSR_X2APIC_LAST;
}

/** IA32_FS_BASE and IA32_GS_BASE come from the guest/host-state area; an MSR-load area may not load them. */
export function isFsGsBaseMsr(index: number): boolean {
  return index === MSR_FS_BASE || index === MSR_GS_BASE;
}
