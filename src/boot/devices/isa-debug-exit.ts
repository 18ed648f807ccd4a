// QEMU's isa-debug-exit device (`-device isa-debug-exit,iobase=0xf4`): a write of `value` to its port
// ends the emulator with exit status (value << 1) | 1. Test kernels use it to report pass/fail to the harness; the
// status is always odd, so it never looks like a clean 0 from the emulator itself.
// Here a write records the value and calls `onExit`, which powers the machine off (see pc.ts): no instruction after
// the OUT runs.

import type { PortDevice } from '../../machine/io.ts';

export const ISA_DEBUG_EXIT_PORT = 0xf4;
/** QEMU's default iosize (2): ports F4H and F5H, byte or word writes. */
export const ISA_DEBUG_EXIT_PORTS = 2;

/** The process exit status QEMU derives from the value written. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) >>> 0;
}

export class IsaDebugExit implements PortDevice {
  readonly name = 'isa-debug-exit';
  /** The value written, once the guest has written one. */
  value: number | undefined = undefined;

  constructor(private readonly onExit: (value: number) => void) {}

  in(_port: number, size: 1 | 2 | 4): number {
    // Reads are not decoded: all ones, as for an empty port.
    return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  }

  out(_port: number, size: 1 | 2 | 4, value: number): void {
    if (this.value !== undefined) return; // the machine is already off
    this.value = size === 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1);
    this.onExit(this.value);
  }
}
