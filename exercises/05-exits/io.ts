// Exercise 5.4 — port I/O: the exit qualification of IN/OUT, the I/O bitmaps that choose which ports exit, and a virtual 16550
// UART at COM1 (3F8H–3FFH) the guest prints through. With "use I/O bitmaps" = 1, bitmap A covers ports 0000H–7FFFH
// and bitmap B ports 8000H–FFFFH, one bit per port; an access exits if the bit of any byte it touches is set — and
// always if it wraps around from FFFFH to 0000H. Every other port (the debug console at E9H, POST codes at 80H)
// goes to the hardware without a VM exit.
// Read chapters/05-exits/README.md, section "Port I/O and a virtual serial port". Given: the UART's registers
// (createUart). Yours: the qualification, the bitmaps and the serial part's setup and handler.
// See SDM Vol. 3C, "I/O-Bitmap Addresses", "Instructions That Cause VM Exits Conditionally" and "Exit
// Qualification for I/O Instructions"; the UART follows the PC16550D datasheet ("Register Description").
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { describeVmxError, vmwrite } from '../02-vmcs/vmx-access.ts';
import { SETUP_OK, SKIP, stop, type ExitAction, type SetupResult, type Vcpu, type VmExit, type VmmPart } from './hypervisor.ts';

/** An I/O instruction, as the exit qualification describes it. */
export interface IoAccess {
  /** Bits 31:16. */
  readonly port: number;
  /** Bits 2:0 + 1: 1, 2 or 4 bytes. */
  readonly size: 1 | 2 | 4;
  /** Bit 3: 0 = OUT, 1 = IN. */
  readonly direction: 'in' | 'out';
  /** Bit 4: INS or OUTS. */
  readonly string: boolean;
  /** Bit 5: REP prefix. */
  readonly rep: boolean;
  /** Bit 6: the port was an immediate (else DX). */
  readonly immediate: boolean;
}

/** Decode the exit qualification of an I/O instruction (exit reason 30). */
export function decodeIoQualification(q: bigint): IoAccess {
  // TODO
  throw new Error('TODO: decodeIoQualification');
}

/** The first port of I/O bitmap B. */
export const IO_BITMAP_B_FIRST_PORT = 0x8000;

/** Where the bit for `port` lives: bitmap A or B, byte and bit (port n: bit n mod 8 of byte (n mod 8000H) / 8). */
export function ioBitmapPosition(port: number): { readonly bitmap: 'A' | 'B'; readonly byte: number; readonly bit: number } {
  // TODO
  throw new Error('TODO: ioBitmapPosition');
}

/**
 * With "use I/O bitmaps" = 1: does an access of `size` bytes at `port` cause a VM exit? Yes if the bit of any of
 * the ports port … port + size − 1 is set (`isSet`), and yes whatever the bits if that range wraps past FFFFH.
 */
export function ioAccessExits(isSet: (port: number) => boolean, port: number, size: 1 | 2 | 4): boolean {
  // TODO
  throw new Error('TODO: ioAccessExits');
}

/** COM1: eight registers from 3F8H. */
export const COM1_BASE = 0x3f8;
export const UART_PORTS = 8;

/** Register offsets; 0 and 1 are the divisor latch while LCR.DLAB = 1. */
const THR_RBR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const LCR_DLAB = 0x80;
const LSR_THRE = 0x20, LSR_TEMT = 0x40;
const MCR_LOOP = 0x10;
/** MSR with a terminal attached and ready: CTS, DSR and DCD. */
const MSR_READY = 0x10 | 0x20 | 0x80;
const IIR_NO_INTERRUPT = 0x01, IIR_FIFOS_ENABLED = 0xc0;

/**
 * The UART's registers as the guest sees them. Transmission is instantaneous (THR is always empty: LSR reads
 * THRE | TEMT), nothing is ever received (RBR reads 0, LSR.DR = 0), and no interrupt is ever pending.
 */
export interface VirtualUart {
  /** IN from register `offset` (0–7). */
  read(offset: number): number;
  /** OUT to register `offset` (0–7). */
  write(offset: number, value: number): void;
  /** Everything written to THR, as text. */
  output(): string;
}

/** The UART (given). */
export function createUart(): VirtualUart {
  const regs = { ier: 0, lcr: 0, mcr: 0, scr: 0, fcr: 0, dll: 0, dlm: 0 };
  const out: number[] = [];
  const dlab = (): boolean => (regs.lcr & LCR_DLAB) !== 0;
  return {
    read(offset) {
      switch (offset & 7) {
        case THR_RBR: return dlab() ? regs.dll : 0;
        case IER: return dlab() ? regs.dlm : regs.ier;
        case IIR_FCR: return IIR_NO_INTERRUPT | ((regs.fcr & 1) !== 0 ? IIR_FIFOS_ENABLED : 0);
        case LCR: return regs.lcr;
        case MCR: return regs.mcr;
        case LSR: return LSR_THRE | LSR_TEMT;
        case MSR: return (regs.mcr & MCR_LOOP) !== 0 ? 0 : MSR_READY;
        default: return regs.scr;
      }
    },
    write(offset, value) {
      const v = value & 0xff;
      switch (offset & 7) {
        case THR_RBR: if (dlab()) regs.dll = v; else out.push(v); break;
        case IER: if (dlab()) regs.dlm = v; else regs.ier = v & 0x0f; break;
        case IIR_FCR: regs.fcr = v; break;
        case LCR: regs.lcr = v; break;
        case MCR: regs.mcr = v & 0x1f; break;
        case LSR: case MSR: break; // read-only here (factory test registers on a real 16550)
        default: regs.scr = v;
      }
    },
    output: () => new TextDecoder().decode(new Uint8Array(out)),
  };
}

/** What an IN from a port no device claims reads on a PC: all ones. */
const UNCLAIMED = 0xff;

export interface SerialPort {
  readonly part: VmmPart;
  readonly uart: VirtualUart;
}

/**
 * The serial part: I/O bitmaps that intercept exactly COM1 (3F8H–3FFH); an I/O handler that gives each byte of an
 * IN/OUT to the UART register it addresses (ports outside COM1, reached by a wide or wrapping access, read FFH and
 * ignore writes); IN results go to AL, AX or EAX the way IN writes them — AL and AX keep the rest of RAX, EAX
 * clears RAX[63:32]. String I/O (INS/OUTS) is not emulated: stop.
 */
export function serialPart(): SerialPort {
  const uart = createUart();
  let bitmapA = 0n, bitmapB = 0n;

  /**
   * Two zeroed pages for bitmaps A and B (keep their kernel addresses in bitmapA/bitmapB: release frees them), the
   * bits of COM1_BASE … COM1_BASE + 7 set (ioBitmapPosition), IO_BITMAP_A/IO_BITMAP_B = their physical addresses.
   */
  function setup(v: Vcpu): SetupResult {
    // TODO
    throw new Error('TODO: setup');
  }

  /**
   * An I/O exit: decode the qualification; string I/O → stop. OUT: byte i of RAX goes to port + i (to the UART if
   * that port is COM1's, else nowhere). IN: byte i comes from port + i (the UART, or UNCLAIMED); write AL, AX or
   * EAX into RAX as IN does. Then SKIP.
   */
  function handle(v: Vcpu, exit: VmExit): ExitAction {
    // TODO
    throw new Error('TODO: the I/O handler');
  }

  return {
    uart,
    part: {
      name: 'serial',
      controls: { proc: { want: VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS, avoid: VMX_CONTROL.CPU_BASED_UNCOND_IO_EXITING } },
      setup,
      release(k) {
        for (const va of [bitmapA, bitmapB]) if (va !== 0n) k.free_page(va);
        bitmapA = bitmapB = 0n;
      },
      handlers: { [EXIT_REASON.EXIT_REASON_IO_INSTRUCTION]: handle },
    },
  };
}

function isCom1(port: number): boolean {
  return port >= COM1_BASE && port < COM1_BASE + UART_PORTS;
}
