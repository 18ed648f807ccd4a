// A minimal 16550A UART (the PC's COM1 at 3F8H–3FFH). Register names and bits follow the National Semiconductor
// PC16550D datasheet ("Register Description" and "Table II: Summary of Registers").
//
// What is modeled: the register file, the divisor latch (DLAB), the scratch register, loopback, and the interrupt
// identification priorities. Transmission is instantaneous: a byte written to THR is captured at once, so THRE and
// TEMT always read 1. Received bytes come from a host-side input queue; an overrun cannot happen (the host is
// assumed to wait), so the line-status error bits stay 0. Word length, parity and stop bits are recorded in LCR but
// do not change the captured bytes.

import type { PortDevice } from '../io.ts';

export const COM1_BASE = 0x3f8;
export const UART_PORT_COUNT = 8;

/** Register offsets from the base port. Offsets 0 and 1 select the divisor latch while LCR.DLAB = 1. */
export const UART_REG = {
  RBR_THR_DLL: 0, // Receiver Buffer (read) / Transmitter Holding (write) / Divisor Latch LSB
  IER_DLM: 1, // Interrupt Enable / Divisor Latch MSB
  IIR_FCR: 2, // Interrupt Identification (read) / FIFO Control (write)
  LCR: 3, // Line Control
  MCR: 4, // Modem Control
  LSR: 5, // Line Status
  MSR: 6, // Modem Status
  SCR: 7, // Scratch
} as const;

export const IER = { ERBFI: 1 << 0, ETBEI: 1 << 1, ELSI: 1 << 2, EDSSI: 1 << 3 } as const;
export const LCR = { DLAB: 1 << 7 } as const;
export const MCR = { DTR: 1 << 0, RTS: 1 << 1, OUT1: 1 << 2, OUT2: 1 << 3, LOOP: 1 << 4 } as const;
export const LSR = { DR: 1 << 0, OE: 1 << 1, PE: 1 << 2, FE: 1 << 3, BI: 1 << 4, THRE: 1 << 5, TEMT: 1 << 6 } as const;
export const MSR = { DCTS: 1 << 0, DDSR: 1 << 1, TERI: 1 << 2, DDCD: 1 << 3, CTS: 1 << 4, DSR: 1 << 5, RI: 1 << 6, DCD: 1 << 7 } as const;
export const FCR = { FIFO_ENABLE: 1 << 0, RCVR_RESET: 1 << 1, XMIT_RESET: 1 << 2 } as const;
/** IIR bit 0 is 0 while an interrupt is pending; bits 3:1 name the highest-priority one; bits 7:6 = 11 with FIFOs. */
export const IIR = {
  NO_INTERRUPT: 0x01,
  MODEM_STATUS: 0x00,
  THR_EMPTY: 0x02,
  RX_DATA: 0x04,
  RX_LINE_STATUS: 0x06,
  FIFOS_ENABLED: 0xc0,
} as const;

/** Inputs seen on the modem-status pins when not in loopback: a terminal that is present and ready. */
const MODEM_INPUTS = MSR.CTS | MSR.DSR | MSR.DCD;

export class Uart16550 implements PortDevice {
  readonly name = 'uart16550';
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private fcr = 0;
  private dll = 0;
  private dlm = 0;
  private msrDeltas = 0;
  /** THRE interrupt latch: set when THR becomes empty, cleared by reading IIR (when it is the source) or writing THR. */
  private thrEmptyPending = false;
  private readonly input: number[] = [];
  private output: number[] = [];
  private readonly decoder = new TextDecoder();
  /** Called with each transmitted byte (not for loopback, where bytes go to the receiver instead). */
  onTransmit: ((byte: number) => void) | undefined = undefined;

  constructor(readonly base = COM1_BASE) {}

  in(port: number, size: 1 | 2 | 4): number {
    // A wider access reads consecutive registers, as the bus splits it into byte cycles.
    let v = 0;
    for (let i = 0; i < size; i++) {
      const offset = port + i - this.base;
      const byte = offset < UART_PORT_COUNT ? this.readRegister(offset) : 0xff;
      v |= byte << (8 * i);
    }
    return v >>> 0;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) {
      const offset = port + i - this.base;
      if (offset < UART_PORT_COUNT) this.writeRegister(offset, (value >>> (8 * i)) & 0xff);
    }
  }

  /** Queue bytes (or a string, as UTF-8) for the guest to receive. */
  pushInput(data: string | ArrayLike<number>): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    for (let i = 0; i < bytes.length; i++) this.input.push(bytes[i]! & 0xff);
  }

  /** Everything transmitted so far, decoded as UTF-8. */
  text(): string {
    return this.decoder.decode(new Uint8Array(this.output));
  }

  raw(): Uint8Array {
    return new Uint8Array(this.output);
  }

  clear(): void {
    this.output = [];
  }

  /** Divisor latch value; the baud rate is 115200 / divisor with the PC's 1.8432 MHz clock. */
  divisor(): number {
    return (this.dlm << 8) | this.dll;
  }

  /** The INTR output. On a PC it reaches the interrupt controller only while MCR.OUT2 is 1. */
  interruptPending(): boolean {
    return this.interruptId() !== IIR.NO_INTERRUPT;
  }

  private dlab(): boolean {
    return (this.lcr & LCR.DLAB) !== 0;
  }

  private readRegister(offset: number): number {
    switch (offset) {
      case UART_REG.RBR_THR_DLL:
        if (this.dlab()) return this.dll;
        return this.input.shift() ?? 0;
      case UART_REG.IER_DLM:
        return this.dlab() ? this.dlm : this.ier;
      case UART_REG.IIR_FCR: {
        const id = this.interruptId();
        // Reading IIR while it reports "THR empty" clears that interrupt.
        if (id === IIR.THR_EMPTY) this.thrEmptyPending = false;
        return id | ((this.fcr & FCR.FIFO_ENABLE) !== 0 ? IIR.FIFOS_ENABLED : 0);
      }
      case UART_REG.LCR:
        return this.lcr;
      case UART_REG.MCR:
        return this.mcr;
      case UART_REG.LSR:
        return this.lineStatus();
      case UART_REG.MSR: {
        // Reading MSR clears the delta bits (and with them the modem-status interrupt).
        const v = this.msrDeltas | this.modemInputs();
        this.msrDeltas = 0;
        return v;
      }
      default:
        return this.scr;
    }
  }

  private writeRegister(offset: number, v: number): void {
    switch (offset) {
      case UART_REG.RBR_THR_DLL:
        if (this.dlab()) this.dll = v;
        else this.transmit(v);
        return;
      case UART_REG.IER_DLM:
        if (this.dlab()) {
          this.dlm = v;
          return;
        }
        // Enabling ETBEI while THR is empty raises the THRE interrupt at once.
        if ((v & IER.ETBEI) !== 0 && (this.ier & IER.ETBEI) === 0) this.thrEmptyPending = true;
        this.ier = v & 0x0f;
        return;
      case UART_REG.IIR_FCR:
        this.fcr = v & 0xc9; // trigger level (7:6), DMA mode (3), enable (0); bits 1 and 2 self-clear
        // Only an explicit receiver reset drops queued input: the host's queue stands for bytes still "on the wire".
        if ((v & FCR.RCVR_RESET) !== 0) this.input.length = 0;
        return;
      case UART_REG.LCR:
        this.lcr = v;
        return;
      case UART_REG.MCR: {
        const before = this.modemInputs();
        this.mcr = v & 0x1f;
        this.noteModemChange(before, this.modemInputs());
        return;
      }
      case UART_REG.LSR:
      case UART_REG.MSR:
        return; // read-only here (factory test use only on the real part)
      default:
        this.scr = v;
    }
  }

  private transmit(byte: number): void {
    if ((this.mcr & MCR.LOOP) !== 0) {
      // Loopback: the transmitter output is wired to the receiver input.
      this.input.push(byte);
    } else {
      this.output.push(byte);
      this.onTransmit?.(byte);
    }
    // The byte leaves at once, so THR is empty again.
    this.thrEmptyPending = true;
  }

  private lineStatus(): number {
    return LSR.THRE | LSR.TEMT | (this.input.length > 0 ? LSR.DR : 0);
  }

  /** In loopback DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD; otherwise the external pins. */
  private modemInputs(): number {
    if ((this.mcr & MCR.LOOP) === 0) return MODEM_INPUTS;
    return (
      ((this.mcr & MCR.DTR) !== 0 ? MSR.DSR : 0) |
      ((this.mcr & MCR.RTS) !== 0 ? MSR.CTS : 0) |
      ((this.mcr & MCR.OUT1) !== 0 ? MSR.RI : 0) |
      ((this.mcr & MCR.OUT2) !== 0 ? MSR.DCD : 0)
    );
  }

  private noteModemChange(before: number, after: number): void {
    const changed = before ^ after;
    if ((changed & MSR.CTS) !== 0) this.msrDeltas |= MSR.DCTS;
    if ((changed & MSR.DSR) !== 0) this.msrDeltas |= MSR.DDSR;
    if ((changed & MSR.DCD) !== 0) this.msrDeltas |= MSR.DDCD;
    // TERI: RI went from on to off.
    if ((before & MSR.RI) !== 0 && (after & MSR.RI) === 0) this.msrDeltas |= MSR.TERI;
  }

  /** Highest-priority pending interrupt (datasheet Table IV, "Interrupt Control Functions"). */
  private interruptId(): number {
    // Receiver line status (priority 1) cannot occur: no errors are modeled.
    if ((this.ier & IER.ERBFI) !== 0 && this.input.length > 0) return IIR.RX_DATA;
    if ((this.ier & IER.ETBEI) !== 0 && this.thrEmptyPending) return IIR.THR_EMPTY;
    if ((this.ier & IER.EDSSI) !== 0 && this.msrDeltas !== 0) return IIR.MODEM_STATUS;
    return IIR.NO_INTERRUPT;
  }
}
