// The PC's two cascaded 8259A programmable interrupt controllers: the master at 20H/21H (IRQ 0–7) and the slave at
// A0H/A1H (IRQ 8–15) on the master's IRQ 2. Each has a request register (IRR), an in-service register (ISR) and a
// mask (IMR); the initialization sequence ICW1–ICW4 sets the vector base, cascading and automatic EOI; OCW1 is the
// mask, OCW2 the end-of-interrupt commands, OCW3 selects which register a read of the command port returns.
// Priorities are fixed (IRQ 0 highest; rotation and special mask mode are not modeled).
// See the Intel 8259A datasheet, "Interrupt Sequence", "Initialization Command Words" and "Operation Command Words".

import type { PortDevice } from '../../machine/io.ts';

export const PIC_MASTER = 0x20;
export const PIC_SLAVE = 0xa0;
/** The master input the slave's INT output drives. */
export const PIC_CASCADE_IRQ = 2;

const ICW1 = { IC4: 1 << 0, SINGLE: 1 << 1, LTIM: 1 << 3, INIT: 1 << 4 } as const;
const ICW4 = { AEOI: 1 << 1 } as const;
const OCW3 = { SELECT: 1 << 3, READ_REGISTER: 1 << 1, READ_ISR: 1 << 0, POLL: 1 << 2 } as const;
const OCW2_COMMAND_SHIFT = 5;
/** OCW2 commands (bits 7:5): non-specific EOI (and its rotating form), specific EOI (and its rotating form). */
const OCW2 = { NONSPECIFIC_EOI: 1, SPECIFIC_EOI: 3, ROTATE_NONSPECIFIC_EOI: 5, ROTATE_SPECIFIC_EOI: 7 } as const;

/** One 8259A. */
class Pic {
  irr = 0;
  isr = 0;
  imr = 0xff; // masked until the kernel programs it (what a BIOS that does not use them leaves)
  vectorBase = 0;
  levelTriggered = false;
  autoEoi = false;
  single = false;
  /** The initialization word expected next: 0 = none (operating), 2, 3 or 4. */
  expect = 0;
  needIcw4 = false;
  readIsr = false;
  /** Input levels, for edge detection. */
  lines = 0;

  /** The IRQ (0–7) this chip would signal, or −1: the highest-priority unmasked request above everything in service. */
  best(extraRequests = 0): number {
    const requests = (this.irr | extraRequests) & ~this.imr & 0xff;
    for (let irq = 0; irq < 8; irq++) {
      if ((this.isr & (1 << irq)) !== 0) return -1; // something of higher or equal priority is in service
      if ((requests & (1 << irq)) !== 0) return irq;
    }
    return -1;
  }

  setLine(irq: number, level: boolean): void {
    const bit = 1 << irq;
    const was = (this.lines & bit) !== 0;
    if (level) this.lines |= bit;
    else this.lines &= ~bit;
    // Edge mode latches a rising edge; level mode requests while the line is high.
    if (level && (this.levelTriggered || !was)) this.irr |= bit;
    if (!level && this.levelTriggered) this.irr &= ~bit;
  }

  writeCommand(v: number): void {
    if ((v & ICW1.INIT) !== 0) {
      // ICW1: start initialization. The IMR and ISR are cleared, edge detection restarts, reads return IRR.
      this.levelTriggered = (v & ICW1.LTIM) !== 0;
      this.single = (v & ICW1.SINGLE) !== 0;
      this.needIcw4 = (v & ICW1.IC4) !== 0;
      this.autoEoi = false;
      this.imr = 0;
      this.isr = 0;
      this.irr = 0;
      this.lines = 0;
      this.readIsr = false;
      this.expect = 2;
      return;
    }
    if ((v & OCW3.SELECT) !== 0) {
      if ((v & OCW3.READ_REGISTER) !== 0) this.readIsr = (v & OCW3.READ_ISR) !== 0;
      return;
    }
    const command = v >> OCW2_COMMAND_SHIFT;
    if (command === OCW2.NONSPECIFIC_EOI || command === OCW2.ROTATE_NONSPECIFIC_EOI) {
      for (let irq = 0; irq < 8; irq++) if ((this.isr & (1 << irq)) !== 0) { this.isr &= ~(1 << irq); break; }
    } else if (command === OCW2.SPECIFIC_EOI || command === OCW2.ROTATE_SPECIFIC_EOI) {
      this.isr &= ~(1 << (v & 7));
    }
  }

  writeData(v: number): void {
    switch (this.expect) {
      case 2:
        this.vectorBase = v & 0xf8;
        this.expect = this.single ? (this.needIcw4 ? 4 : 0) : 3;
        return;
      case 3:
        this.expect = this.needIcw4 ? 4 : 0; // cascade wiring is fixed on a PC: slave on master IRQ 2
        return;
      case 4:
        this.autoEoi = (v & ICW4.AEOI) !== 0;
        this.expect = 0;
        return;
      default:
        this.imr = v & 0xff; // OCW1
    }
  }

  /** INTA: the request becomes in service (unless automatic EOI); an edge request is consumed. */
  acknowledge(irq: number): void {
    const bit = 1 << irq;
    if (!this.levelTriggered) this.irr &= ~bit;
    if (!this.autoEoi) this.isr |= bit;
  }
}

export class Pic8259Pair implements PortDevice {
  readonly name = 'i8259 (master and slave)';
  private readonly master = new Pic();
  private readonly slave = new Pic();

  /** Raise (true) or lower (false) IRQ line 0–15. An edge-triggered input requests on the rising edge. */
  setIrq(irq: number, level: boolean): void {
    if (irq < 8) this.master.setLine(irq, level);
    else if (irq < 16) this.slave.setLine(irq - 8, level);
  }

  /** Whether IRQ `irq` is masked (for a slave input: or the cascade input on the master). */
  masked(irq: number): boolean {
    if (irq < 8) return (this.master.imr & (1 << irq)) !== 0;
    return (this.slave.imr & (1 << (irq - 8))) !== 0 || (this.master.imr & (1 << PIC_CASCADE_IRQ)) !== 0;
  }

  /** The vector the pair would deliver at INTA now, or −1 (the INTR line is low). */
  pendingVector(): number {
    const irq = this.masterBest();
    if (irq < 0) return -1;
    if (irq === PIC_CASCADE_IRQ) return this.slave.vectorBase + this.slave.best();
    return this.master.vectorBase + irq;
  }

  /** The interrupt-acknowledge cycle: returns the vector and moves the request into service. */
  acknowledge(): number {
    const irq = this.masterBest();
    if (irq < 0) return this.master.vectorBase + 7; // a spurious IRQ 7: nothing goes in service
    this.master.acknowledge(irq);
    if (irq !== PIC_CASCADE_IRQ) return this.master.vectorBase + irq;
    const s = this.slave.best();
    this.slave.acknowledge(s);
    // The slave's output stays asserted while it has requests; the master's IRQ 2 edge was consumed above.
    return this.slave.vectorBase + s;
  }

  in(port: number, size: 1 | 2 | 4): number {
    if (size !== 1) return size === 4 ? 0xffffffff : 0xffff;
    const pic = port >= PIC_SLAVE ? this.slave : this.master;
    if ((port & 1) === 1) return pic.imr;
    return pic === this.master ? (pic.readIsr ? pic.isr : pic.irr | this.cascadeRequest()) : pic.readIsr ? pic.isr : pic.irr;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 1) return;
    const pic = port >= PIC_SLAVE ? this.slave : this.master;
    if ((port & 1) === 1) pic.writeData(value & 0xff);
    else pic.writeCommand(value & 0xff);
  }

  /** The master's best request, with the slave's INT output on IRQ 2. */
  private masterBest(): number {
    return this.master.best(this.cascadeRequest());
  }

  private cascadeRequest(): number {
    return this.slave.best() >= 0 ? 1 << PIC_CASCADE_IRQ : 0;
  }
}
