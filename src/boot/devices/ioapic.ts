// An I/O APIC (the 82093AA and its successors in PC chipsets) at FEC00000H: an index register (IOREGSEL) and a data
// window (IOWIN), behind which are the ID, version and arbitration registers and 24 redirection-table entries. An
// input that is asserted and not masked sends the entry's interrupt message to the local APICs, by the entry's
// destination mode and destination, as an interrupt from a device would.
// See the Intel 82093AA I/O APIC datasheet, "Register Description", and SDM Vol. 3A, "Message Signalled Interrupts"
// for the message fields. The version (20H) is the one QEMU's I/O APIC reports: it has the EOI register at 40H.
//
// What drives the inputs: nothing yet (no PIT, no UART interrupt line); `setIrq` is the seam those devices will
// use. Level-triggered entries set Remote IRR when they send; it is cleared by the EOI register. The local APIC's
// EOI broadcast does not reach this device yet.

import type { MmioDevice } from '../../machine/memory.ts';
import type { ApicBus, ApicDeliveryMode } from '../../machine/apic.ts';

export const IOAPIC_BASE = 0xfec00000;
export const IOAPIC_MMIO_BYTES = 0x1000;
export const IOAPIC_PINS = 24;
/** MMIO offsets: the index register, the data window, the EOI register (version 20H). */
export const IOAPIC_MMIO = { IOREGSEL: 0x00, IOWIN: 0x10, EOI: 0x40 } as const;
/** Indirect registers (selected by IOREGSEL). */
export const IOAPIC_REG = { ID: 0x00, VER: 0x01, ARB: 0x02, REDTBL: 0x10 } as const;
const IOAPIC_VERSION = 0x20;
/** Redirection-entry bits (low dword). */
export const IOREDTBL = {
  VECTOR_MASK: 0xff,
  DELIVERY_MODE_SHIFT: 8,
  DEST_LOGICAL: 1 << 11,
  DELIVERY_STATUS: 1 << 12,
  POLARITY_LOW: 1 << 13,
  REMOTE_IRR: 1 << 14,
  TRIGGER_LEVEL: 1 << 15,
  MASKED: 1 << 16,
} as const;
/** Bits software can write in the low dword (delivery status and Remote IRR are read-only). */
const LOW_WRITABLE = 0x1afff;
const DELIVERY_MODES: readonly (ApicDeliveryMode | undefined)[] = ['fixed', 'lowest', 'smi', undefined, 'nmi', 'init', undefined, undefined];

export class IoApic implements MmioDevice {
  readonly name = 'ioapic';
  private select = 0;
  private id: number;
  /** Redirection entries: low and high dwords. */
  private readonly low = new Uint32Array(IOAPIC_PINS).fill(IOREDTBL.MASKED);
  private readonly high = new Uint32Array(IOAPIC_PINS);
  /** Current input levels (true = asserted, after polarity). */
  private readonly asserted = new Array<boolean>(IOAPIC_PINS).fill(false);

  constructor(private readonly bus: ApicBus | null, apicId: number) {
    this.id = apicId & 0xf;
  }

  read(offset: number, size: 1 | 2 | 4 | 8): bigint {
    let v = 0;
    if (offset === IOAPIC_MMIO.IOREGSEL) v = this.select;
    else if (offset === IOAPIC_MMIO.IOWIN) v = this.readRegister(this.select);
    else return size === 8 ? 0xffffffffffffffffn : BigInt((2 ** (size * 8) - 1) >>> 0);
    return BigInt((size === 4 || size === 8 ? v : v & ((1 << (size * 8)) - 1)) >>> 0);
  }

  write(offset: number, _size: 1 | 2 | 4 | 8, value: bigint): void {
    const v = Number(value & 0xffffffffn);
    if (offset === IOAPIC_MMIO.IOREGSEL) this.select = v & 0xff;
    else if (offset === IOAPIC_MMIO.IOWIN) this.writeRegister(this.select, v);
    else if (offset === IOAPIC_MMIO.EOI) this.eoi(v & 0xff);
  }

  /** A device raises (true) or lowers (false) input `pin`. */
  setIrq(pin: number, asserted: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const was = this.asserted[pin]!;
    this.asserted[pin] = asserted;
    const level = (this.low[pin]! & IOREDTBL.TRIGGER_LEVEL) !== 0;
    // Edge: the rising edge sends once. Level: an asserted input sends while Remote IRR is clear.
    if (asserted && (level || !was)) this.service(pin);
  }

  masked(pin: number): boolean {
    return (this.low[pin]! & IOREDTBL.MASKED) !== 0;
  }

  /** The redirection entry of `pin` (for inspectors and tests). */
  entry(pin: number): bigint {
    return (BigInt(this.high[pin]!) << 32n) | BigInt(this.low[pin]!);
  }

  private readRegister(reg: number): number {
    if (reg === IOAPIC_REG.ID) return (this.id << 24) >>> 0;
    if (reg === IOAPIC_REG.VER) return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
    if (reg === IOAPIC_REG.ARB) return (this.id << 24) >>> 0;
    const pin = (reg - IOAPIC_REG.REDTBL) >> 1;
    if (reg >= IOAPIC_REG.REDTBL && pin < IOAPIC_PINS) return (reg & 1) === 0 ? this.low[pin]! : this.high[pin]!;
    return 0;
  }

  private writeRegister(reg: number, v: number): void {
    if (reg === IOAPIC_REG.ID) {
      this.id = (v >>> 24) & 0xf;
      return;
    }
    const pin = (reg - IOAPIC_REG.REDTBL) >> 1;
    if (reg < IOAPIC_REG.REDTBL || pin >= IOAPIC_PINS) return; // VER, ARB and the rest are read-only
    if ((reg & 1) === 1) {
      this.high[pin] = v & 0xff000000;
      return;
    }
    this.low[pin] = ((this.low[pin]! & ~LOW_WRITABLE) | (v & LOW_WRITABLE)) >>> 0;
    // Unmasking a level-triggered entry whose input is still asserted sends it now.
    if ((this.low[pin]! & IOREDTBL.TRIGGER_LEVEL) !== 0 && this.asserted[pin]) this.service(pin);
  }

  /** EOI register: clear Remote IRR of every level-triggered entry with this vector, and resend what is still asserted. */
  private eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      if ((this.low[pin]! & IOREDTBL.VECTOR_MASK) !== vector || (this.low[pin]! & IOREDTBL.REMOTE_IRR) === 0) continue;
      this.low[pin] = (this.low[pin]! & ~IOREDTBL.REMOTE_IRR) >>> 0;
      if (this.asserted[pin]) this.service(pin);
    }
  }

  private service(pin: number): void {
    const low = this.low[pin]!;
    if ((low & IOREDTBL.MASKED) !== 0 || (low & IOREDTBL.REMOTE_IRR) !== 0) return;
    const deliveryMode = DELIVERY_MODES[(low >> IOREDTBL.DELIVERY_MODE_SHIFT) & 7];
    if (deliveryMode === undefined || this.bus === null) return;
    const level = (low & IOREDTBL.TRIGGER_LEVEL) !== 0;
    if (level) this.low[pin] = (low | IOREDTBL.REMOTE_IRR) >>> 0;
    this.bus.sendIpi(-1, {
      vector: low & IOREDTBL.VECTOR_MASK,
      deliveryMode,
      destMode: (low & IOREDTBL.DEST_LOGICAL) !== 0 ? 'logical' : 'physical',
      destination: this.high[pin]! >>> 24,
      shorthand: 'none',
      level: true,
      trigger: level ? 'level' : 'edge',
    });
  }
}
