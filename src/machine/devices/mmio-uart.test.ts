import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../memory.ts';
import { attachMmioUart, MMIO_UART_BASE } from './mmio-uart.ts';
import { LSR, UART_REG } from './uart16550.ts';

const setup = () => {
  const memory = new PhysicalMemory({ ramBytes: 1 << 20 });
  return { memory, uart: attachMmioUart(memory) };
};
const reg = (r: number) => MMIO_UART_BASE + r;

describe('memory-mapped 16550 at FEB00000H', () => {
  it('transmits a byte written to THR; LSR reads THRE|TEMT; reserved offsets read 0', () => {
    const { memory, uart } = setup();
    for (const ch of 'ok') memory.write8(reg(UART_REG.RBR_THR_DLL), ch.charCodeAt(0));
    expect(uart.text()).toBe('ok');
    expect(memory.read8(reg(UART_REG.LSR))).toBe(LSR.THRE | LSR.TEMT);
    expect(memory.read(reg(8), 4)).toBe(0n);
    expect(uart.writes[UART_REG.RBR_THR_DLL]).toBe(2);
  });

  it('an 8-byte access reaches all eight registers in ascending order (a line fill pops RBR)', () => {
    const { memory, uart } = setup();
    uart.pushInput('xy');
    const v = memory.read(reg(0), 8);
    expect(Number(v & 0xffn)).toBe('x'.charCodeAt(0)); // RBR, taken from the receiver
    expect(Number((v >> 40n) & 0xffn)).toBe(LSR.THRE | LSR.TEMT | LSR.DR); // LSR after the read: 'y' still waits
    expect(uart.reads.slice(0, 8)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    memory.write(reg(0), 8, 0x41n); // THR = 'A', IER..SCR = 0
    expect(uart.text()).toBe('A');
  });
});
