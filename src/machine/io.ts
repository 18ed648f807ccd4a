// The I/O port space (IN/OUT, INS/OUTS): 64 K byte-addressed ports, decoded by devices.
// A port no device claims reads as all ones and ignores writes, as on a PC.

export interface PortDevice {
  readonly name: string;
  /** `size` is 1, 2 or 4 bytes. */
  in(port: number, size: 1 | 2 | 4): number;
  out(port: number, size: 1 | 2 | 4, value: number): void;
}

export class IoSpace {
  private readonly devices = new Map<number, PortDevice>();

  /** Claim `count` consecutive ports starting at `base` for `device`. */
  register(base: number, count: number, device: PortDevice): void {
    for (let p = base; p < base + count; p++) this.devices.set(p & 0xffff, device);
  }

  in(port: number, size: 1 | 2 | 4): number {
    const d = this.devices.get(port & 0xffff);
    if (d === undefined) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return d.in(port & 0xffff, size);
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    this.devices.get(port & 0xffff)?.out(port & 0xffff, size, value);
  }
}
