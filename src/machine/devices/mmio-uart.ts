// A memory-mapped 16550A UART: the same register file as COM1 (uart16550.ts), decoded by physical address instead of
// I/O port, as on boards whose serial port sits in the MMIO window (Linux's "ns16550a" with reg-shift 0, QEMU's
// serial-mm). It exists so that memory types matter to a device: an IN/OUT to COM1 has no memory type, but a MOV to
// this page has one, and a wrong one (WB from an EPT entry, say) makes the output go missing or a status read go
// stale. See src/machine/memtype/README.md ("A cache model that makes memory types visible").
//
// Where: one 4-KByte page at MMIO_UART_BASE (FEB00000H), in the pc board's MMIO hole that the firmware's MTRRs make
// UC (C0000000H–FFFFFFFFH), below the I/O APIC (FEC00000H) and the local APIC (FEE00000H). src/kernel/boot-host.ts
// attaches one to every host; attachMmioUart does it for any Machine.
//
// Registers: one byte apart (reg-shift 0), at the offsets of the PC16550D's "Table II: Summary of Registers", so all
// eight lie in the first 64-byte cache line of the page:
//
//   offset  read                          write
//   0       RBR  receiver buffer          THR  transmitter holding (the byte is sent at once)     DLAB = 0
//   0, 1    DLL, DLM divisor latch        DLL, DLM                                                DLAB = 1
//   1       IER  interrupt enable         IER
//   2       IIR  interrupt identification FCR  FIFO control
//   3       LCR  line control (bit 7 DLAB)
//   4       MCR  modem control (bit 4 LOOP: THR goes to the receiver instead of the output)
//   5       LSR  line status: bit 0 DR (a received byte waits in RBR), bits 5, 6 THRE, TEMT (always 1)   (read-only)
//   6       MSR  modem status                                                                      (read-only)
//   7       SCR  scratch
//   8–FFFH  reserved: read 0, writes ignored
//
// Reads with side effects, which a cached mapping repeats or hides: reading RBR takes the byte from the receiver
// (LSR.DR clears when none is left), reading IIR while it reports "THR empty" clears that interrupt, reading MSR
// clears its delta bits. An access wider than a byte reaches consecutive registers, lowest offset first (the bus
// splits it), as a cache-line fill or write-back does: 8 bytes at offset 0 read or write all eight registers.

import type { MmioDevice, PhysicalMemory } from '../memory.ts';
import { Uart16550, UART_PORT_COUNT } from './uart16550.ts';

export const MMIO_UART_BASE = 0xfeb00000;
/** The page it decodes. */
export const MMIO_UART_BYTES = 0x1000;

export class MmioUart implements MmioDevice {
  readonly name = 'mmio-uart16550';
  /** The register file (the 16550 of COM1, at base 0): input queue, output, LCR/MCR/IER state. */
  readonly uart = new Uart16550(0);
  /** Accesses that reached the device, by register (index 8: a reserved offset): what a cached mapping hides. */
  readonly reads: number[] = new Array<number>(UART_PORT_COUNT + 1).fill(0);
  readonly writes: number[] = new Array<number>(UART_PORT_COUNT + 1).fill(0);

  read(offset: number, size: 1 | 2 | 4 | 8): bigint {
    let v = 0n;
    for (let i = 0; i < size; i++) {
      const reg = offset + i;
      this.reads[Math.min(reg, UART_PORT_COUNT)]! += 1;
      const byte = reg < UART_PORT_COUNT ? this.uart.in(reg, 1) : 0;
      v |= BigInt(byte) << BigInt(8 * i);
    }
    return v;
  }

  write(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    for (let i = 0; i < size; i++) {
      const reg = offset + i;
      this.writes[Math.min(reg, UART_PORT_COUNT)]! += 1;
      if (reg < UART_PORT_COUNT) this.uart.out(reg, 1, Number((value >> BigInt(8 * i)) & 0xffn));
    }
  }

  /** Every byte transmitted (written to THR with DLAB = 0 and LOOP = 0), decoded as UTF-8. */
  text(): string {
    return this.uart.text();
  }

  /** The transmitted bytes. */
  raw(): Uint8Array {
    return this.uart.raw();
  }

  /** Queue bytes for the guest to receive (LSR.DR = 1 until RBR has returned them all). */
  pushInput(data: string | ArrayLike<number>): void {
    this.uart.pushInput(data);
  }
}

/** Put an MmioUart at MMIO_UART_BASE in `memory` (a Machine's `memory`) and return it. */
export function attachMmioUart(memory: PhysicalMemory, base = MMIO_UART_BASE): MmioUart {
  const device = new MmioUart();
  memory.addMmio(base, MMIO_UART_BYTES, device);
  return device;
}
