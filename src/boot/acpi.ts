// The ACPI tables a PC's firmware leaves in memory, for kernels that discover processors and interrupt
// controllers through them: the RSDP in the BIOS ROM area (found by its 16-byte-aligned "RSD PTR " signature),
// an RSDT and an XSDT, a MADT with one Processor Local APIC entry per logical processor, and a hardware-reduced FADT
// with an empty DSDT (this PC has no ACPI fixed hardware: no PM timer, no SCI, no sleep registers).
// See ACPI 6.5, "Root System Description Pointer (RSDP)", "System Description Table Header", "Multiple APIC
// Description Table (MADT)", "Fixed ACPI Description Table (FADT)" and "Hardware-Reduced ACPI".
//
// The MADT lists the I/O APIC and the ISA interrupt source overrides (the PIT's IRQ 0 is the I/O APIC's input 2, as
// on every PC), and sets PCAT_COMPAT: the 8259 PICs are there too.

import type { PhysicalMemory } from '../machine/memory.ts';
import { PC_LAYOUT } from './pc-memory-map.ts';

/** Where the tables go: after the boot GDT in the BIOS ROM area (reserved in the memory map). */
export const ACPI_BASE = PC_LAYOUT.biosRom + 0x100;
/** The local APICs' physical address, as the MADT reports it (IA32_APIC_BASE's default). */
export const LAPIC_ADDRESS = 0xfee00000;

const OEM_ID = 'VMXLAB';
const OEM_TABLE_ID = 'VMXLABPC';
const CREATOR_ID = 'VMXL';

/** System description table header fields ("System Description Table Header"). */
const SDT = { signature: 0, length: 4, revision: 8, checksum: 9, oemId: 10, oemTableId: 16, oemRevision: 24, creatorId: 28, creatorRevision: 32, size: 36 } as const;
/** RSDP fields, ACPI 2.0 and later ("Root System Description Pointer (RSDP) Structure"). */
const RSDP = { signature: 0, checksum: 8, oemId: 9, revision: 15, rsdtAddress: 16, length: 20, xsdtAddress: 24, extendedChecksum: 32, size: 36, v1Size: 20 } as const;
/** FADT fields this PC fills (ACPI 6.5, "Fixed ACPI Description Table (FADT)"); the rest are 0. */
const FADT = { firmwareCtrl: 36, dsdt: 40, century: 108, iapcBootArch: 109, flags: 112, minorVersion: 131, xDsdt: 140, size: 276 } as const;
/** The CMOS RAM index of the RTC's century register (see devices/cmos-rtc.ts). */
const CMOS_CENTURY_INDEX = 0x32;
const FADT_REVISION = 6;
const FADT_MINOR_VERSION = 5;
const FADT_FLAGS = { WBINVD: 1 << 0, HW_REDUCED_ACPI: 1 << 20 } as const;
/** IA-PC boot architecture flags: legacy ISA devices (PIT, RTC, UART), no 8042, no VGA. */
const IAPC_BOOT_ARCH = { LEGACY_DEVICES: 1 << 0, VGA_NOT_PRESENT: 1 << 2 } as const;
/** MADT: the header, then the local interrupt controller address and flags, then the entries. */
const MADT = { localApicAddress: 36, flags: 40, entries: 44, revision: 5 } as const;
const MADT_TYPE_LOCAL_APIC = 0;
const MADT_LOCAL_APIC_ENABLED = 1 << 0;
const MADT_LOCAL_APIC_ENTRY_BYTES = 8;
const MADT_TYPE_IO_APIC = 1;
const MADT_IO_APIC_ENTRY_BYTES = 12;
const MADT_TYPE_INTERRUPT_SOURCE_OVERRIDE = 2;
const MADT_ISO_ENTRY_BYTES = 10;
const MADT_PCAT_COMPAT = 1 << 0;

export interface AcpiConfig {
  /** Logical processors: APIC IDs 0 … cpus − 1. */
  cpus: number;
  /** The I/O APIC, if the PC has one: its ID and MMIO address (its inputs are GSIs 0 … 23). */
  ioApic?: { id: number; address: number };
  /** ISA IRQs that reach the I/O APIC on another input (edge-triggered, active high: "conforms to the bus"). */
  isaOverrides?: readonly { irq: number; gsi: number }[];
}

export interface AcpiTables {
  readonly rsdp: number;
  readonly rsdt: number;
  readonly xsdt: number;
  readonly fadt: number;
  readonly dsdt: number;
  readonly madt: number;
  /** First byte after the tables. */
  readonly end: number;
}

/** Write the tables at ACPI_BASE. */
export function writeAcpiTables(memory: PhysicalMemory, config: AcpiConfig): AcpiTables {
  const { cpus, ioApic } = config;
  const overrides = ioApic ? config.isaOverrides ?? [] : [];
  const at = { rsdp: ACPI_BASE, rsdt: 0, xsdt: 0, fadt: 0, dsdt: 0, madt: 0, end: 0 };
  let next = ACPI_BASE + RSDP.size;
  const place = (length: number): number => {
    const addr = align16(next);
    next = addr + length;
    return addr;
  };
  // DSDT: the header alone, an empty AML definition block.
  at.dsdt = place(SDT.size);
  const dsdt = table('DSDT', 2, SDT.size);
  // FADT: hardware-reduced, pointing at the DSDT (both the 32-bit and the 64-bit field).
  at.fadt = place(FADT.size);
  const fadt = table('FACP', FADT_REVISION, FADT.size);
  put32(fadt, FADT.dsdt, at.dsdt);
  put64(fadt, FADT.xDsdt, at.dsdt);
  fadt[FADT.century] = CMOS_CENTURY_INDEX;
  fadt[FADT.iapcBootArch] = IAPC_BOOT_ARCH.LEGACY_DEVICES | IAPC_BOOT_ARCH.VGA_NOT_PRESENT;
  put32(fadt, FADT.flags, FADT_FLAGS.WBINVD | FADT_FLAGS.HW_REDUCED_ACPI);
  fadt[FADT.minorVersion] = FADT_MINOR_VERSION;
  // MADT: one enabled Processor Local APIC per LP (ACPI processor UID = APIC ID), then the I/O APIC.
  const madtLength = MADT.entries + cpus * MADT_LOCAL_APIC_ENTRY_BYTES + (ioApic ? MADT_IO_APIC_ENTRY_BYTES : 0) + overrides.length * MADT_ISO_ENTRY_BYTES;
  at.madt = place(madtLength);
  const madt = table('APIC', MADT.revision, madtLength);
  put32(madt, MADT.localApicAddress, LAPIC_ADDRESS);
  put32(madt, MADT.flags, MADT_PCAT_COMPAT); // dual 8259s: an OS that uses the I/O APIC masks them
  for (let i = 0; i < cpus; i++) {
    const e = MADT.entries + i * MADT_LOCAL_APIC_ENTRY_BYTES;
    madt[e] = MADT_TYPE_LOCAL_APIC;
    madt[e + 1] = MADT_LOCAL_APIC_ENTRY_BYTES;
    madt[e + 2] = i; // ACPI processor UID
    madt[e + 3] = i; // APIC ID
    put32(madt, e + 4, MADT_LOCAL_APIC_ENABLED);
  }
  if (ioApic) {
    const e = MADT.entries + cpus * MADT_LOCAL_APIC_ENTRY_BYTES;
    madt[e] = MADT_TYPE_IO_APIC;
    madt[e + 1] = MADT_IO_APIC_ENTRY_BYTES;
    madt[e + 2] = ioApic.id;
    put32(madt, e + 4, ioApic.address);
    put32(madt, e + 8, 0); // global system interrupt base
  }
  overrides.forEach((o, i) => {
    const e = MADT.entries + cpus * MADT_LOCAL_APIC_ENTRY_BYTES + MADT_IO_APIC_ENTRY_BYTES + i * MADT_ISO_ENTRY_BYTES;
    madt[e] = MADT_TYPE_INTERRUPT_SOURCE_OVERRIDE;
    madt[e + 1] = MADT_ISO_ENTRY_BYTES;
    madt[e + 2] = 0; // bus: ISA
    madt[e + 3] = o.irq;
    put32(madt, e + 4, o.gsi);
    madt[e + 8] = 0; // MPS INTI flags: polarity and trigger conform to the bus
    madt[e + 9] = 0;
  });
  // RSDT (32-bit pointers) and XSDT (64-bit pointers) list the FADT and the MADT.
  const listed = [at.fadt, at.madt];
  at.rsdt = place(SDT.size + 4 * listed.length);
  const rsdt = table('RSDT', 1, SDT.size + 4 * listed.length);
  listed.forEach((p, i) => put32(rsdt, SDT.size + 4 * i, p));
  at.xsdt = place(SDT.size + 8 * listed.length);
  const xsdt = table('XSDT', 1, SDT.size + 8 * listed.length);
  listed.forEach((p, i) => put64(xsdt, SDT.size + 8 * i, p));
  at.end = next;
  // RSDP, revision 2 (ACPI 2.0+): the first checksum covers the ACPI 1.0 part, the extended one all 36 bytes.
  const rsdp = new Uint8Array(RSDP.size);
  ascii(rsdp, RSDP.signature, 'RSD PTR ');
  ascii(rsdp, RSDP.oemId, OEM_ID);
  rsdp[RSDP.revision] = 2;
  put32(rsdp, RSDP.rsdtAddress, at.rsdt);
  put32(rsdp, RSDP.length, RSDP.size);
  put64(rsdp, RSDP.xsdtAddress, at.xsdt);
  rsdp[RSDP.checksum] = checksumByte(rsdp.subarray(0, RSDP.v1Size));
  rsdp[RSDP.extendedChecksum] = checksumByte(rsdp);
  for (const [addr, bytes] of [[at.rsdp, rsdp], [at.dsdt, seal(dsdt)], [at.fadt, seal(fadt)], [at.madt, seal(madt)], [at.rsdt, seal(rsdt)], [at.xsdt, seal(xsdt)]] as const) {
    memory.writeBytes(addr, bytes);
  }
  return at;
}

/** A table with its header filled in (checksum still 0). */
function table(signature: string, revision: number, length: number): Uint8Array {
  const t = new Uint8Array(length);
  ascii(t, SDT.signature, signature);
  put32(t, SDT.length, length);
  t[SDT.revision] = revision;
  ascii(t, SDT.oemId, OEM_ID);
  ascii(t, SDT.oemTableId, OEM_TABLE_ID);
  put32(t, SDT.oemRevision, 1);
  ascii(t, SDT.creatorId, CREATOR_ID);
  put32(t, SDT.creatorRevision, 1);
  return t;
}

/** Set the checksum byte so that all bytes of the table sum to 0 (mod 256). */
function seal(t: Uint8Array): Uint8Array {
  t[SDT.checksum] = 0;
  t[SDT.checksum] = checksumByte(t);
  return t;
}

/** The byte that makes `bytes` (whose checksum byte is still 0) sum to 0 mod 256. */
export function checksumByte(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

function ascii(t: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) t[off + i] = s.charCodeAt(i);
}
function put32(t: Uint8Array, off: number, v: number): void {
  new DataView(t.buffer, t.byteOffset).setUint32(off, v >>> 0, true);
}
function put64(t: Uint8Array, off: number, v: number): void {
  new DataView(t.buffer, t.byteOffset).setBigUint64(off, BigInt(v), true);
}
function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}
