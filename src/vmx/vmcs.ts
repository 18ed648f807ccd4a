// VMCS storage: the region in emulated physical memory, and the processor's copy of an active VMCS.
//
// The SDM fixes only the first 8 bytes of a VMCS region: the revision identifier (bits 30:0) with the
// shadow-VMCS indicator (bit 31) at offset 0, and the VMX-abort indicator at offset 4. "The remainder of the region
// is used for VMCS data; the format is implementation-specific" — software must use VMREAD/VMWRITE, never plain
// loads and stores. See SDM Vol. 3C, "Format of the VMCS Region".
//
// This emulator's implementation-specific layout (so that you can see it in a memory dump, not so that you use it):
//   offset 0   revision identifier + shadow-VMCS indicator (architectural)
//   offset 4   VMX-abort indicator (architectural)
//   offset 8   format marker 'VMXL' (4C584D56H): the region was initialised by VMCLEAR
//   offset 12  launch state: 0 clear, 1 launched, 2 launched when VMXOFF ran (VMRESUME then fails with error 6)
//   offset 16  field data, packed in the order of VMCS_FIELDS (SDM appendix order), each at its width
//              (2, 4 or 8 bytes; natural width is 8 bytes on this 64-bit processor); HIGH accesses have no slot
//              of their own.
// While a VMCS is active, the processor works on a cached copy (ActiveVmcs, a Uint32Array of lo/hi pairs indexed
// by slot); VMCLEAR writes it back. See SDM Vol. 3C, "VMCS Life Cycle" ("the processor may cache VMCS data").
import { ENC_ACCESS_HIGH, VMCS_FIELDS, isFullField, type VmcsFullField, type VmcsFullFieldName } from './fields.ts';

/** Offsets of the architectural and implementation-specific header words. */
export const VMCS_REVISION_OFFSET = 0;
export const VMCS_ABORT_OFFSET = 4;
export const VMCS_FORMAT_OFFSET = 8;
export const VMCS_LAUNCH_STATE_OFFSET = 12;
export const VMCS_DATA_OFFSET = 16;
/** 'VMXL' little-endian: written by VMCLEAR so VMPTRLD can tell an initialised region from arbitrary memory. */
export const VMCS_FORMAT_MARKER = 0x4c584d56;
/** Bits 30:0 of the first dword: the VMCS revision identifier. See SDM Vol. 3C, "Format of the VMCS Region". */
export const VMCS_REVISION_ID_MASK = 0x7fffffff;
/** Bit 31 of the first dword: shadow-VMCS indicator. See SDM Vol. 3C, "VMCS Types: Ordinary and Shadow". */
export const SHADOW_VMCS_INDICATOR = 2 ** 31;

/**
 * Launch state of a VMCS. See SDM Vol. 3C, "VMCS Life Cycle" ("clear" after VMCLEAR, "launched" after a
 * successful VMLAUNCH). 'launched-before-vmxoff' is a launched VMCS that was still active when VMXOFF executed;
 * 'uninitialised' is a region VMPTRLD loaded without a VMCLEAR first (its launch state is unknown).
 */
export type LaunchState = 'clear' | 'launched' | 'launched-before-vmxoff' | 'uninitialised';
const LAUNCH_STATE_CODE: Readonly<Record<Exclude<LaunchState, 'uninitialised'>, number>> = {
  clear: 0,
  launched: 1,
  'launched-before-vmxoff': 2,
};

// ---------------------------------------------------------------------------------------------------------------
// Slots: one per field (HIGH accesses share their field's slot).
// ---------------------------------------------------------------------------------------------------------------

/** The full (non-HIGH) fields, one slot each, in table order. */
export const SLOT_FIELDS: readonly VmcsFullField[] = VMCS_FIELDS.filter(isFullField);
export const VMCS_SLOT_COUNT = SLOT_FIELDS.length;

/**
 * Slot of each encoding below 8000H (the only encodings that can name a field: bits 31:15 are reserved), or -1.
 * A typed array, not a Map: VMREAD/VMWRITE are on the VM-exit path of every hypervisor.
 */
const ENCODING_SLOT = new Int16Array(0x8000).fill(-1);
/** Byte offset of each slot's data in the region, and its size in bytes. */
export const SLOT_OFFSET = new Uint16Array(VMCS_SLOT_COUNT);
export const SLOT_BYTES = new Uint8Array(VMCS_SLOT_COUNT);
/** Width code per slot: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit or natural width. */
export const SLOT_WIDTH = new Uint8Array(VMCS_SLOT_COUNT);
/** 1 when the slot is a VM-exit information (read-only) field. */
export const SLOT_READ_ONLY = new Uint8Array(VMCS_SLOT_COUNT);
export const WIDTH16 = 0, WIDTH32 = 1, WIDTH64 = 2;

let offset = VMCS_DATA_OFFSET;
SLOT_FIELDS.forEach((f, slot) => {
  ENCODING_SLOT[f.encoding] = slot;
  if (f.width === '64') ENCODING_SLOT[f.encoding | ENC_ACCESS_HIGH] = slot;
  const bytes = f.width === '16' ? 2 : f.width === '32' ? 4 : 8;
  SLOT_WIDTH[slot] = bytes === 2 ? WIDTH16 : bytes === 4 ? WIDTH32 : WIDTH64;
  SLOT_BYTES[slot] = bytes;
  SLOT_OFFSET[slot] = offset;
  SLOT_READ_ONLY[slot] = f.readOnly ? 1 : 0;
  offset += bytes;
});
/** First byte after the field data: the smallest region this layout needs. */
export const VMCS_LAYOUT_END = offset;

/** The slot an encoding selects, or -1 if it names no field. HIGH encodings select their field's slot. */
export function slotOfEncoding(enc: number): number {
  return enc >= 0 && enc < 0x8000 ? ENCODING_SLOT[enc]! : -1;
}
export function isHighEncoding(enc: number): boolean {
  return (enc & ENC_ACCESS_HIGH) !== 0;
}

/** Slots by Linux field name (full fields only), for lookups by a name held in a string. */
export const VMCS_SLOT: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(SLOT_FIELDS.map((f, i) => [f.name, i])),
);
/** The same slots with one typed property per field: `SLOT.GUEST_RIP` (hot paths: no string lookup, no `!`). */
export const SLOT = VMCS_SLOT as { readonly [N in VmcsFullFieldName]: number };
/**
 * The same slots in a Map, for a name held in a variable: with some 170 properties the objects above are hash
 * tables to V8, and a keyed lookup in one costs about twice a Map lookup (VM exits and entries make ~150 of them).
 */
export const SLOT_BY_NAME: ReadonlyMap<VmcsFullFieldName, number> = new Map(SLOT_FIELDS.map((f, i) => [f.name as VmcsFullFieldName, i]));

// ---------------------------------------------------------------------------------------------------------------
// The processor's copy of an active VMCS.
// ---------------------------------------------------------------------------------------------------------------

/** Physical-memory access the VMCS code needs (a subset of VmxCpu). */
export interface PhysicalAccess {
  readPhysical32(pa: bigint): number;
  writePhysical32(pa: bigint, value: number): void;
}

const TWO_32 = 2 ** 32;
/** Values with bits 63:32 below this are below 2^53: exact as a Number. */
const SAFE_HIGH = 2 ** 21;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class ActiveVmcs {
  /** Field values as lo/hi 32-bit pairs: slot s is data[2s] (bits 31:0) and data[2s+1] (bits 63:32). */
  readonly data = new Uint32Array(2 * VMCS_SLOT_COUNT);
  launchState: LaunchState = 'clear';
  /** The shadow-VMCS indicator in the region when VMPTRLD loaded it. */
  shadow = false;

  constructor(
    /** Physical address of the VMCS region. */
    readonly pa: bigint,
  ) {}

  /** Field value as a bigint (full access). */
  read(slot: number): bigint {
    const lo = this.data[2 * slot]!;
    const hi = this.data[2 * slot + 1]!;
    // Below 2^53 (almost every field value) one exact Number→BigInt conversion; BigInt shifts and ORs allocate.
    if (hi < SAFE_HIGH) return BigInt(hi * TWO_32 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Store a value truncated to the field's width. */
  write(slot: number, value: bigint): void {
    const w = SLOT_WIDTH[slot]!;
    let lo: number, hi: number;
    if (value >= 0n && value <= MAX_SAFE) {
      // The common case without BigInt arithmetic: one conversion, then exact double arithmetic.
      const n = Number(value);
      lo = n % TWO_32;
      hi = (n - lo) / TWO_32;
    } else {
      lo = Number(value & 0xffffffffn);
      hi = Number((value >> 32n) & 0xffffffffn);
    }
    this.data[2 * slot] = w === WIDTH16 ? lo & 0xffff : lo;
    this.data[2 * slot + 1] = w === WIDTH64 ? hi : 0;
  }

  /** `write(slot, BigInt(n))` for an integer 0 ≤ n ≤ 2^53 − 1, without the BigInt (VM exits save registers). */
  writeUint(slot: number, n: number): void {
    const w = SLOT_WIDTH[slot]!;
    const lo = n % TWO_32;
    this.data[2 * slot] = w === WIDTH16 ? lo & 0xffff : lo;
    this.data[2 * slot + 1] = w === WIDTH64 ? (n - lo) / TWO_32 : 0;
  }
  /** `Number(BigInt.asIntN(64, read(slot)))`: the value as a signed number (addresses; exact when canonical). */
  readSigned(slot: number): number {
    const lo = this.data[2 * slot]!;
    const hi = this.data[2 * slot + 1]!;
    if (hi < SAFE_HIGH) return hi * TWO_32 + lo;
    if (hi >= TWO_32 - SAFE_HIGH) return (hi - TWO_32) * TWO_32 + lo;
    return Number(BigInt.asIntN(64, this.read(slot)));
  }
  /** `Number(read(slot))`: the value as an unsigned number (exact below 2^53). */
  readUnsigned(slot: number): number {
    const hi = this.data[2 * slot + 1]!;
    return hi < SAFE_HIGH ? hi * TWO_32 + this.data[2 * slot]! : Number(this.read(slot));
  }

  /** Low 32 bits, without BigInt (hot paths: exit reason, controls, 32-bit guest state). */
  readLow(slot: number): number {
    return this.data[2 * slot]!;
  }
  readHigh(slot: number): number {
    return this.data[2 * slot + 1]!;
  }
  /** Write a 16/32-bit field (or the low half of a wider field, clearing the high half) without BigInt. */
  writeLow(slot: number, value: number): void {
    this.data[2 * slot] = SLOT_WIDTH[slot] === WIDTH16 ? value & 0xffff : value >>> 0;
    this.data[2 * slot + 1] = 0;
  }
  /** Write bits 63:32 of a 64-bit field (the HIGH access). */
  writeHigh(slot: number, value: number): void {
    this.data[2 * slot + 1] = value >>> 0;
  }

  /**
   * Read a field by Linux name (inspectors, VM entry's named view). The name is typed: an unknown one does not
   * compile. (Undefined only for a name that reached here untyped.)
   */
  readByName(name: VmcsFullFieldName): bigint | undefined {
    const slot = SLOT_BY_NAME.get(name);
    return slot === undefined ? undefined : this.read(slot);
  }
  writeByName(name: VmcsFullFieldName, value: bigint): boolean {
    const slot = SLOT_BY_NAME.get(name);
    if (slot === undefined) return false;
    this.write(slot, value);
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Region ⇄ cache.
// ---------------------------------------------------------------------------------------------------------------

/** Load a region into a fresh cache entry (VMPTRLD of a VMCS that is not active on this LP). */
export function loadVmcs(mem: PhysicalAccess, pa: bigint): ActiveVmcs {
  const v = new ActiveVmcs(pa);
  v.shadow = (mem.readPhysical32(pa + BigInt(VMCS_REVISION_OFFSET)) & SHADOW_VMCS_INDICATOR) !== 0;
  const initialised = mem.readPhysical32(pa + BigInt(VMCS_FORMAT_OFFSET)) >>> 0 === VMCS_FORMAT_MARKER;
  if (initialised) {
    const code = mem.readPhysical32(pa + BigInt(VMCS_LAUNCH_STATE_OFFSET));
    v.launchState = code === 1 ? 'launched' : code === 2 ? 'launched-before-vmxoff' : 'clear';
  } else {
    // Never VMCLEARed: the SDM requires VMCLEAR before the first VMPTRLD; the launch state is unknown and the
    // data is whatever the memory held (kmalloc memory is not zeroed).
    v.launchState = 'uninitialised';
  }
  for (let slot = 0; slot < VMCS_SLOT_COUNT; slot++) {
    const at = pa + BigInt(SLOT_OFFSET[slot]!);
    const bytes = SLOT_BYTES[slot]!;
    if (bytes === 2) v.data[2 * slot] = mem.readPhysical32(at) & 0xffff;
    else {
      v.data[2 * slot] = mem.readPhysical32(at) >>> 0;
      v.data[2 * slot + 1] = bytes === 8 ? mem.readPhysical32(at + 4n) >>> 0 : 0;
    }
  }
  return v;
}

/** Write a cached VMCS back to its region (VMCLEAR), with its launch state. */
export function storeVmcs(mem: PhysicalAccess, v: ActiveVmcs): void {
  writeHeader(mem, v.pa, v.launchState === 'uninitialised' ? 'clear' : v.launchState);
  for (let slot = 0; slot < VMCS_SLOT_COUNT; slot++) {
    const at = v.pa + BigInt(SLOT_OFFSET[slot]!);
    const bytes = SLOT_BYTES[slot]!;
    if (bytes === 2) {
      // Read-modify-write the 16-bit slot: the next slot may start 2 bytes later.
      const old = mem.readPhysical32(at);
      mem.writePhysical32(at, ((old & 0xffff0000) | v.data[2 * slot]!) >>> 0);
    } else {
      mem.writePhysical32(at, v.data[2 * slot]!);
      if (bytes === 8) mem.writePhysical32(at + 4n, v.data[2 * slot + 1]!);
    }
  }
}

/**
 * VMCLEAR of a VMCS that is not active on this LP: "initialize implementation-specific data in the VMCS region"
 * and set the launch state to clear. A region never initialised before gets all-zero field data; a region that
 * already holds VMCS data (e.g. written back by VMCLEAR on another LP) keeps it.
 */
export function initialiseRegion(mem: PhysicalAccess, pa: bigint): void {
  const initialised = mem.readPhysical32(pa + BigInt(VMCS_FORMAT_OFFSET)) >>> 0 === VMCS_FORMAT_MARKER;
  if (!initialised) {
    for (let at = VMCS_DATA_OFFSET; at < VMCS_LAYOUT_END; at += 4) mem.writePhysical32(pa + BigInt(at), 0);
  }
  writeHeader(mem, pa, 'clear');
}

/** Mark a region's launch state in memory (used by VMXOFF for VMCSs still active and launched). */
export function writeHeader(mem: PhysicalAccess, pa: bigint, state: Exclude<LaunchState, 'uninitialised'>): void {
  mem.writePhysical32(pa + BigInt(VMCS_FORMAT_OFFSET), VMCS_FORMAT_MARKER);
  mem.writePhysical32(pa + BigInt(VMCS_LAUNCH_STATE_OFFSET), LAUNCH_STATE_CODE[state]);
}
