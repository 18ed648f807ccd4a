// The current VMCS as VM entries and VM exits read and write it: by Linux field name, through the processor's
// cached copy (ActiveVmcs). This is the processor at work, not VMREAD/VMWRITE: no field-existence or read-only
// checks apply. See SDM Vol. 3C, "VMCS Life Cycle" ("the processor may cache VMCS data").
import type { VmcsFullFieldName } from '../fields.ts';
import type { ActiveVmcs } from '../vmcs.ts';
import { SLOT_BY_NAME, SLOT_FIELDS } from '../vmcs.ts';

/**
 * The current VMCS, by Linux field name (a full field: the processor has no use for HIGH accesses). Names are
 * typed, so an unknown one is a compile error. Values are raw, zero-extended to 64 bits (a 16-bit selector reads
 * as 0n..0xFFFFn). Writes of read-only (VM-exit information) fields are allowed here: this is the processor writing.
 */
export interface VmcsAccess {
  read(field: VmcsFullFieldName): bigint;
  write(field: VmcsFullFieldName, value: bigint): void;
  /** Optional fast path: bits 31:0 of a field as an unsigned number, without creating a BigInt. */
  read32?(field: VmcsFullFieldName): number;
  /** Optional fast path: write a 16/32-bit field (truncated to its width) from a number. */
  write32?(field: VmcsFullFieldName, value: number): void;
}

/** Write a 16/32-bit field from a number, through the fast path when the accessor has one. */
export function writeField32(vmcs: VmcsAccess, field: VmcsFullFieldName, value: number): void {
  if (vmcs.write32) vmcs.write32(field, value);
  else vmcs.write(field, BigInt(value >>> 0));
}
/** Read bits 31:0 of a field as a number, through the fast path when the accessor has one. */
export function readField32(vmcs: VmcsAccess, field: VmcsFullFieldName): number {
  return vmcs.read32 ? vmcs.read32(field) : Number(vmcs.read(field) & 0xffffffffn);
}

/**
 * The current VMCS by slot (src/vmx/vmcs.ts): how VM exits and VM entries move state, with each field's slot looked
 * up once when the module loads instead of by name on every transition. The processor's cached copy (ActiveVmcs)
 * is one; `slotsOf` adapts any other accessor.
 */
export interface VmcsSlots {
  read(slot: number): bigint;
  /** Store a value truncated to the field's width. */
  write(slot: number, value: bigint): void;
  /** Bits 31:0 as an unsigned number. */
  readLow(slot: number): number;
  /** A 16/32-bit field (truncated to its width), or a wider one with bits 63:32 cleared. */
  writeLow(slot: number, value: number): void;
  /** Bits 63:32 of a 64-bit or natural-width field (bits 31:0 kept). */
  writeHigh(slot: number, value: number): void;
}

/** The slot view of `vmcs`: its cached VMCS itself when it has one, else an adapter by field name. */
export function slotsOf(vmcs: VmcsAccess): VmcsSlots {
  return vmcs instanceof ActiveVmcsAccess ? vmcs.vmcs : new NamedSlots(vmcs);
}

/**
 * The `VmcsAccess` view of an active VMCS cache entry (the current VMCS of an LP). One view per entry, made once:
 * every VM exit and VM entry asks for it, and a fresh object of closures each time is garbage on the exit path.
 */
export function vmcsAccessOf(vmcs: ActiveVmcs): VmcsAccess {
  let view = VIEWS.get(vmcs);
  if (view === undefined) {
    view = new ActiveVmcsAccess(vmcs);
    VIEWS.set(vmcs, view);
  }
  return view;
}

const VIEWS = new WeakMap<ActiveVmcs, VmcsAccess>();

class ActiveVmcsAccess implements VmcsAccess {
  constructor(readonly vmcs: ActiveVmcs) {}
  read(field: VmcsFullFieldName): bigint {
    return this.vmcs.read(SLOT_BY_NAME.get(field)!);
  }
  write(field: VmcsFullFieldName, value: bigint): void {
    this.vmcs.write(SLOT_BY_NAME.get(field)!, value);
  }
  read32(field: VmcsFullFieldName): number {
    return this.vmcs.readLow(SLOT_BY_NAME.get(field)!) >>> 0;
  }
  write32(field: VmcsFullFieldName, value: number): void {
    this.vmcs.writeLow(SLOT_BY_NAME.get(field)!, value);
  }
}

/** Slots over a by-name accessor (one that is not a view of the processor's cache, e.g. a test's recorder). */
class NamedSlots implements VmcsSlots {
  constructor(private readonly vmcs: VmcsAccess) {}
  read(slot: number): bigint {
    return this.vmcs.read(nameOf(slot));
  }
  write(slot: number, value: bigint): void {
    this.vmcs.write(nameOf(slot), value);
  }
  readLow(slot: number): number {
    return readField32(this.vmcs, nameOf(slot));
  }
  writeLow(slot: number, value: number): void {
    writeField32(this.vmcs, nameOf(slot), value);
  }
  writeHigh(slot: number, value: number): void {
    const name = nameOf(slot);
    this.vmcs.write(name, (this.vmcs.read(name) & 0xffffffffn) | (BigInt(value >>> 0) << 32n));
  }
}

function nameOf(slot: number): VmcsFullFieldName {
  return SLOT_FIELDS[slot]!.name;
}
