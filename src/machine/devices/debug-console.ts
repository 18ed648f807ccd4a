// The port E9H debug console (the "port E9 hack" of Bochs and QEMU's isa-debugcon): every byte a guest writes to
// port E9H is appended to this machine's console text. Reading the port returns E9H, so a guest can check that the
// console exists before using it.

import type { PortDevice } from '../io.ts';

export const DEBUG_CONSOLE_PORT = 0xe9;
/** The value a read of port E9H returns when the console is present. */
export const DEBUG_CONSOLE_READBACK = 0xe9;

export class DebugConsole implements PortDevice {
  readonly name = 'debug-console';
  private bytes: number[] = [];
  private readonly decoder = new TextDecoder();
  /** Called with each byte as it is written (e.g. the CLI echoes the guest's output live). */
  onByte: ((byte: number) => void) | undefined = undefined;

  in(_port: number, size: 1 | 2 | 4): number {
    // Only port E9H is decoded; the bytes a wider read takes from EAH and up read as all ones (no device there).
    if (size === 1) return DEBUG_CONSOLE_READBACK;
    return ((size === 2 ? 0xff00 : 0xffffff00) | DEBUG_CONSOLE_READBACK) >>> 0;
  }

  out(_port: number, _size: 1 | 2 | 4, value: number): void {
    // A wider OUT sends its higher bytes to ports EAH and up, which the console does not decode.
    const byte = value & 0xff;
    this.bytes.push(byte);
    this.onByte?.(byte);
  }

  /** Everything written so far, decoded as UTF-8 (ASCII in practice). */
  text(): string {
    return this.decoder.decode(new Uint8Array(this.bytes));
  }

  /** The raw bytes written so far. */
  raw(): Uint8Array {
    return new Uint8Array(this.bytes);
  }

  clear(): void {
    this.bytes = [];
  }
}
