// PCI configuration mechanism #1 (ports CF8H and CFCH–CFFH) with an empty bus: the CONFIG_ADDRESS register latches
// what a 32-bit write puts there (bit 31 enable, bus, device, function, register), and every configuration read
// returns all ones, which is what a read of an absent device returns — vendor ID FFFFH, "no device here". So a
// kernel's bus scan finds nothing instead of hanging or faulting.
// See the PCI Local Bus Specification 3.0, "Configuration Mechanism #1", and "Configuration Space Header" (vendor ID).

import type { PortDevice } from '../../machine/io.ts';

export const PCI_CONFIG_ADDRESS = 0xcf8;
export const PCI_CONFIG_DATA = 0xcfc;
/** CONFIG_ADDRESS bits software can set: enable (31), bus (23:16), device (15:11), function (10:8), register (7:2). */
const CONFIG_ADDRESS_WRITABLE = 0x80fffffc;

export class PciHostEmptyBus implements PortDevice {
  readonly name = 'pci-host (empty bus)';
  /** The latched CONFIG_ADDRESS. */
  address = 0;

  in(port: number, size: 1 | 2 | 4): number {
    // Only a doubleword access at CF8H is CONFIG_ADDRESS; byte and word accesses there are other chipset registers.
    if (port === PCI_CONFIG_ADDRESS && size === 4) return this.address >>> 0;
    return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    if (port === PCI_CONFIG_ADDRESS && size === 4) this.address = (value & CONFIG_ADDRESS_WRITABLE) >>> 0;
    // Configuration writes have no device to go to.
  }
}
