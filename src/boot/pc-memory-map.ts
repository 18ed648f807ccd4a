// The physical address map a PC's firmware reports (INT 15H, E820H), as QEMU's pc machine with SeaBIOS does for a
// guest with `ramBytes` of RAM: conventional memory up to the EBDA, the EBDA and the BIOS ROM reserved, RAM from
// 1 MiB, and the BIOS flash below 4 GiB reserved. The multiboot memory map is this list.
// See ACPI 6.5, "INT 15H, E820H - Query System Address Map", and "Address Range Types".

export const E820_RAM = 1;
export const E820_RESERVED = 2;

export interface AddressRange {
  readonly base: number;
  readonly length: number;
  /** E820_RAM (usable) or E820_RESERVED. */
  readonly type: typeof E820_RAM | typeof E820_RESERVED;
}

/** The fixed landmarks of the PC's first megabyte and of the top of the 32-bit space. */
export const PC_LAYOUT = {
  /** The Extended BIOS Data Area: the last KiB of conventional memory. */
  ebda: 0x9fc00,
  /** VGA memory and option ROMs start here: conventional memory ends. */
  conventionalEnd: 0xa0000,
  /** The system BIOS ROM, 64 KiB below 1 MiB (the boot GDT lives here; ACPI's RSDP will too). */
  biosRom: 0xf0000,
  /** Extended memory starts at 1 MiB. */
  extendedBase: 0x100000,
  /** The BIOS flash mapped just below 4 GiB (256 KiB on QEMU). */
  biosFlash: 0xfffc0000,
  top32: 0x100000000,
} as const;

/** Smallest and largest RAM the boot path supports: RAM is one range from 0, below the LAPIC/IOAPIC window. */
export const MIN_RAM_BYTES = 2 * 1024 * 1024;
export const MAX_RAM_BYTES = 3 * 1024 * 1024 * 1024;

export function pcMemoryMap(ramBytes: number): AddressRange[] {
  const L = PC_LAYOUT;
  return [
    { base: 0, length: L.ebda, type: E820_RAM },
    { base: L.ebda, length: L.conventionalEnd - L.ebda, type: E820_RESERVED },
    { base: L.biosRom, length: L.extendedBase - L.biosRom, type: E820_RESERVED },
    { base: L.extendedBase, length: ramBytes - L.extendedBase, type: E820_RAM },
    { base: L.biosFlash, length: L.top32 - L.biosFlash, type: E820_RESERVED },
  ];
}
