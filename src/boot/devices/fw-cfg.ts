// QEMU's firmware configuration device (fw_cfg), the traditional I/O-port interface of the PC machine: a 16-bit
// write to the selector port 510H picks an item and rewinds it; each byte read from the data port 511H returns the
// item's next byte (0 past its end). Items are numbered as QEMU numbers them; the DMA interface (514H) is not
// offered, so FW_CFG_ID reports only the traditional interface.
// See QEMU's docs/specs/fw_cfg.rst, "Selector (Control) Register", "Data Register" and "Firmware Configuration Items".

import type { PortDevice } from '../../machine/io.ts';

export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;

/** Selector keys of the items this device holds (QEMU's include/standard-headers/linux/qemu_fw_cfg.h). */
export const FW_CFG = {
  SIGNATURE: 0x00,
  ID: 0x01,
  UUID: 0x02,
  RAM_SIZE: 0x03,
  NOGRAPHIC: 0x04,
  NB_CPUS: 0x05,
  MAX_CPUS: 0x0f,
  CMDLINE_SIZE: 0x14,
  CMDLINE_DATA: 0x15,
  FILE_DIR: 0x19,
} as const;

/** FW_CFG_ID bit 0: the traditional (port) interface. Bit 1 (DMA) stays 0. */
const FW_CFG_VERSION_TRADITIONAL = 1 << 0;

export interface FwCfgConfig {
  ramBytes: number;
  cpus: number;
  /** The kernel command line (QEMU's -append), offered as CMDLINE_SIZE/CMDLINE_DATA. */
  cmdline?: string;
}

export class FwCfg implements PortDevice {
  readonly name = 'fw_cfg';
  private readonly items = new Map<number, Uint8Array>();
  private selected: Uint8Array | undefined = undefined;
  private offset = 0;

  constructor(config: FwCfgConfig) {
    const cmdline = config.cmdline === undefined || config.cmdline === '' ? new Uint8Array(0) : cString(config.cmdline);
    this.items.set(FW_CFG.SIGNATURE, new TextEncoder().encode('QEMU'));
    this.items.set(FW_CFG.ID, le(FW_CFG_VERSION_TRADITIONAL, 4));
    this.items.set(FW_CFG.UUID, new Uint8Array(16));
    this.items.set(FW_CFG.RAM_SIZE, le(config.ramBytes, 8));
    this.items.set(FW_CFG.NOGRAPHIC, le(1, 2));
    this.items.set(FW_CFG.NB_CPUS, le(config.cpus, 2));
    this.items.set(FW_CFG.MAX_CPUS, le(config.cpus, 2));
    this.items.set(FW_CFG.CMDLINE_SIZE, le(cmdline.length, 4));
    this.items.set(FW_CFG.CMDLINE_DATA, cmdline);
    // The file directory: a big-endian count of files, then the entries. No files yet.
    this.items.set(FW_CFG.FILE_DIR, new Uint8Array(4));
    this.select(FW_CFG.SIGNATURE);
  }

  /** Pick an item (an unknown key selects nothing: its data reads as 0) and rewind it. */
  select(key: number): void {
    this.selected = this.items.get(key & 0xffff);
    this.offset = 0;
  }

  in(_port: number, size: 1 | 2 | 4): number {
    // Only byte reads are decoded (at either port, as QEMU's combined 510H–511H region does); wider reads see
    // all ones.
    if (size !== 1) return size === 4 ? 0xffffffff : 0xffff;
    const item = this.selected;
    if (item === undefined || this.offset >= item.length) return 0;
    return item[this.offset++]!;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    // A word write at 510H selects. Byte writes are data writes, which QEMU no longer accepts: ignored.
    if (port === FW_CFG_PORT_SEL && size === 2) this.select(value);
  }
}

function le(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = BigInt(value);
  for (let i = 0; i < bytes; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function cString(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}
