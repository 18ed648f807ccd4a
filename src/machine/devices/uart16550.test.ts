import { describe, expect, it } from 'vitest';
import { IoSpace } from '../io.ts';
import { COM1_BASE, IER, IIR, LCR, LSR, MCR, MSR, UART_PORT_COUNT, Uart16550 } from './uart16550.ts';

const THR = COM1_BASE + 0;
const DLL = COM1_BASE + 0;
const DLM = COM1_BASE + 1;
const IER_PORT = COM1_BASE + 1;
const IIR_PORT = COM1_BASE + 2;
const FCR_PORT = COM1_BASE + 2;
const LCR_PORT = COM1_BASE + 3;
const MCR_PORT = COM1_BASE + 4;
const LSR_PORT = COM1_BASE + 5;
const MSR_PORT = COM1_BASE + 6;
const SCR = COM1_BASE + 7;

function setup() {
  const io = new IoSpace();
  const uart = new Uart16550();
  io.register(COM1_BASE, UART_PORT_COUNT, uart);
  return { io, uart };
}

describe('16550 UART at 3F8H', () => {
  it('has its reset state: LSR = THRE|TEMT, IIR = no interrupt, LCR/MCR/IER = 0', () => {
    const { io } = setup();
    expect(io.in(LSR_PORT, 1)).toBe(0x60);
    expect(io.in(IIR_PORT, 1)).toBe(0x01);
    expect(io.in(LCR_PORT, 1)).toBe(0);
    expect(io.in(MCR_PORT, 1)).toBe(0);
    expect(io.in(IER_PORT, 1)).toBe(0);
  });

  it('captures transmitted bytes; THRE and TEMT stay set', () => {
    const { io, uart } = setup();
    io.out(LCR_PORT, 1, 0x03); // 8N1
    for (const ch of 'COM1 ok') {
      expect(io.in(LSR_PORT, 1) & LSR.THRE).toBe(LSR.THRE);
      io.out(THR, 1, ch.charCodeAt(0));
    }
    expect(uart.text()).toBe('COM1 ok');
    expect(io.in(LSR_PORT, 1) & (LSR.THRE | LSR.TEMT)).toBe(LSR.THRE | LSR.TEMT);
    uart.clear();
    expect(uart.text()).toBe('');
  });

  it('switches offsets 0 and 1 to the divisor latch while LCR.DLAB = 1', () => {
    const { io, uart } = setup();
    io.out(IER_PORT, 1, IER.ERBFI);
    io.out(LCR_PORT, 1, LCR.DLAB | 0x03);
    io.out(DLL, 1, 0x01); // 115200 baud
    io.out(DLM, 1, 0x00);
    expect(io.in(DLL, 1)).toBe(0x01);
    expect(io.in(DLM, 1)).toBe(0x00);
    expect(uart.text()).toBe(''); // the DLL write was not transmitted
    io.out(DLL, 1, 0x0c);
    io.out(DLM, 1, 0x02);
    expect(uart.divisor()).toBe(0x020c);
    io.out(LCR_PORT, 1, 0x03);
    expect(io.in(IER_PORT, 1)).toBe(IER.ERBFI); // IER unchanged by the DLM writes
    io.out(THR, 1, 0x41);
    expect(uart.text()).toBe('A');
    expect(uart.divisor()).toBe(0x020c);
  });

  it('keeps the scratch register', () => {
    const { io } = setup();
    for (const v of [0x00, 0x55, 0xaa, 0xff]) {
      io.out(SCR, 1, v);
      expect(io.in(SCR, 1)).toBe(v);
    }
  });

  it('receives queued input: LSR.DR while data waits, RBR in order', () => {
    const { io, uart } = setup();
    expect(io.in(LSR_PORT, 1) & LSR.DR).toBe(0);
    uart.pushInput('hi');
    expect(io.in(LSR_PORT, 1) & LSR.DR).toBe(LSR.DR);
    expect(io.in(THR, 1)).toBe(0x68);
    expect(io.in(LSR_PORT, 1) & LSR.DR).toBe(LSR.DR);
    expect(io.in(THR, 1)).toBe(0x69);
    expect(io.in(LSR_PORT, 1) & LSR.DR).toBe(0);
  });

  it('identifies interrupts by priority: received data over THR empty; reading IIR clears THRE', () => {
    const { io, uart } = setup();
    io.out(FCR_PORT, 1, 0x07); // enable and reset FIFOs
    io.out(IER_PORT, 1, IER.ERBFI | IER.ETBEI);
    uart.pushInput([0x31]);
    expect(io.in(IIR_PORT, 1)).toBe(IIR.FIFOS_ENABLED | IIR.RX_DATA);
    expect(uart.interruptPending()).toBe(true);
    io.in(THR, 1);
    expect(io.in(IIR_PORT, 1)).toBe(IIR.FIFOS_ENABLED | IIR.THR_EMPTY);
    expect(io.in(IIR_PORT, 1)).toBe(IIR.FIFOS_ENABLED | IIR.NO_INTERRUPT); // cleared by the read
    io.out(THR, 1, 0x41); // THR empties again at once
    expect(io.in(IIR_PORT, 1) & 0x0f).toBe(IIR.THR_EMPTY);
    expect(uart.interruptPending()).toBe(false);
  });

  it('loops transmitter to receiver and modem outputs to inputs in loopback (the 8250 probe)', () => {
    const { io, uart } = setup();
    io.out(MCR_PORT, 1, MCR.LOOP | MCR.RTS | MCR.OUT2);
    expect(io.in(MSR_PORT, 1) & 0xf0).toBe(MSR.CTS | MSR.DCD);
    io.out(THR, 1, 0x5a);
    expect(uart.text()).toBe('');
    expect(io.in(LSR_PORT, 1) & LSR.DR).toBe(LSR.DR);
    expect(io.in(THR, 1)).toBe(0x5a);
    io.out(MCR_PORT, 1, MCR.LOOP);
    expect(io.in(MSR_PORT, 1)).toBe(MSR.DCTS | MSR.DDCD); // deltas, then cleared by the read
    expect(io.in(MSR_PORT, 1)).toBe(0);
    io.out(MCR_PORT, 1, 0);
    expect(io.in(MSR_PORT, 1) & 0xf0).toBe(MSR.CTS | MSR.DSR | MSR.DCD);
  });

  it('splits a word access into consecutive registers', () => {
    const { io } = setup();
    io.out(LCR_PORT, 2, 0x0b03); // LCR = 03H, MCR = 0BH
    expect(io.in(LCR_PORT, 1)).toBe(0x03);
    expect(io.in(MCR_PORT, 1)).toBe(0x0b);
    expect(io.in(LCR_PORT, 2)).toBe(0x0b03);
  });
});
