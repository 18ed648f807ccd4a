// The PC's CMOS RAM and real-time clock (the MC146818A and its chipset successors) at ports 70H (index; bit 7
// disables NMI) and 71H (data): the time and date registers, status registers A–D, and the bytes the BIOS leaves in
// CMOS RAM that kernels read — base and extended memory sizes and, as QEMU stores it, the CPU count.
// See the MC146818A datasheet, "Address Map" and "Register A/B/C/D", and QEMU's hw/rtc/mc146818rtc.c and
// hw/i386/pc.c ("pc_cmos_init") for the memory-size bytes.
//
// Time is deterministic: the clock starts at `start` and advances one second per `instructionsPerSecond` retired
// instructions (the TSC counts retired instructions, so this is a 1 GHz machine by default). The update-in-progress
// bit is never set and no RTC interrupts are raised (status C reads 0). Writes to the time registers set the clock.

import type { PortDevice } from '../../machine/io.ts';

export const CMOS_PORT_INDEX = 0x70;
export const CMOS_PORT_DATA = 0x71;

/** CMOS register indexes. */
export const CMOS = {
  SECONDS: 0x00,
  MINUTES: 0x02,
  HOURS: 0x04,
  DAY_OF_WEEK: 0x06,
  DAY_OF_MONTH: 0x07,
  MONTH: 0x08,
  YEAR: 0x09,
  STATUS_A: 0x0a,
  STATUS_B: 0x0b,
  STATUS_C: 0x0c,
  STATUS_D: 0x0d,
  BASE_MEM_LO: 0x15,
  BASE_MEM_HI: 0x16,
  EXT_MEM_LO: 0x17,
  EXT_MEM_HI: 0x18,
  EXT_MEM2_LO: 0x30,
  EXT_MEM2_HI: 0x31,
  CENTURY: 0x32,
  HIGH_MEM_LO: 0x34,
  HIGH_MEM_HI: 0x35,
  CPU_COUNT_MINUS_ONE: 0x5f,
} as const;

/** Status register B bits. */
export const RTC_B = { SET: 1 << 7, DATA_MODE_BINARY: 1 << 2, HOURS_24: 1 << 1 } as const;
/** Status A at power-up: 32.768 kHz time base (010), 1024 Hz periodic rate (0110). */
const STATUS_A_DEFAULT = 0x26;
/** Status D: VRT, the RAM and time are valid (the battery is good). */
const STATUS_D_VRT = 0x80;
const HOUR_PM = 0x80;
const CMOS_BYTES = 128;

export interface CmosConfig {
  ramBytes: number;
  cpus: number;
  /** When the clock starts (default 2026-01-01T00:00:00Z). */
  start?: Date;
  /** The PC clock in nanoseconds (pc.ts's PcClock: retired instructions): the RTC's time base. */
  instructions?: () => number;
  /** Default 1e9. */
  instructionsPerSecond?: number;
}

export const DEFAULT_RTC_START = new Date(Date.UTC(2026, 0, 1, 0, 0, 0));

export class CmosRtc implements PortDevice {
  readonly name = 'cmos-rtc';
  private index = 0;
  /** Port 70H bit 7 as last written (NMI masking is not wired to the processors). */
  nmiDisabled = false;
  private readonly ram = new Uint8Array(CMOS_BYTES);
  private readonly startSeconds: number;
  private offsetSeconds = 0;
  private readonly instructions: () => number;
  private readonly ips: number;

  constructor(config: CmosConfig) {
    this.startSeconds = Math.floor((config.start ?? DEFAULT_RTC_START).getTime() / 1000);
    this.instructions = config.instructions ?? (() => 0);
    this.ips = config.instructionsPerSecond ?? 1e9;
    const r = this.ram;
    r[CMOS.STATUS_A] = STATUS_A_DEFAULT;
    r[CMOS.STATUS_B] = RTC_B.HOURS_24; // BCD, 24-hour: what a PC BIOS leaves
    r[CMOS.STATUS_D] = STATUS_D_VRT;
    // Memory sizes in KiB (base: below 640 KiB; extended: from 1 MiB, at most FFFFH) and, above 16 MiB, in 64 KiB.
    const kib = (n: number) => Math.floor(n / 1024);
    setWord(r, CMOS.BASE_MEM_LO, 640);
    const ext = Math.min(0xffff, Math.max(0, kib(config.ramBytes) - 1024));
    setWord(r, CMOS.EXT_MEM_LO, ext);
    setWord(r, CMOS.EXT_MEM2_LO, ext);
    setWord(r, CMOS.HIGH_MEM_LO, Math.min(0xffff, Math.max(0, Math.floor((config.ramBytes - 16 * 2 ** 20) / 65536))));
    r[CMOS.CPU_COUNT_MINUS_ONE] = (config.cpus - 1) & 0xff;
  }

  in(port: number, size: 1 | 2 | 4): number {
    if (size !== 1) return size === 4 ? 0xffffffff : 0xffff;
    if (port === CMOS_PORT_INDEX) return 0xff; // the index register is write-only
    return this.readRegister(this.index);
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 1) return;
    if (port === CMOS_PORT_INDEX) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & 0x80) !== 0;
    } else this.writeRegister(this.index, value & 0xff);
  }

  /** The clock's current time. */
  now(): Date {
    return new Date((this.startSeconds + this.offsetSeconds + Math.floor(this.instructions() / this.ips)) * 1000);
  }

  private readRegister(reg: number): number {
    if (reg <= CMOS.YEAR || reg === CMOS.CENTURY) {
      const t = timeFields(this.now());
      const field = reg === CMOS.CENTURY ? t.century : ({ 0: t.seconds, 2: t.minutes, 4: t.hours, 6: t.dayOfWeek, 7: t.day, 8: t.month, 9: t.year } as Record<number, number>)[reg];
      if (field === undefined) return this.ram[reg]!; // the alarm registers
      return reg === CMOS.HOURS ? this.hourRegister(field) : this.encode(field);
    }
    if (reg === CMOS.STATUS_C) return 0; // no interrupt flags: no RTC interrupts are raised
    return this.ram[reg]!;
  }

  private writeRegister(reg: number, v: number): void {
    const t = timeFields(this.now());
    const fields: Partial<Record<number, keyof typeof t>> = { 0: 'seconds', 2: 'minutes', 4: 'hours', 7: 'day', 8: 'month', 9: 'year', [CMOS.CENTURY]: 'century' };
    const name = fields[reg];
    if (name !== undefined) {
      // Setting the clock: the new field with the others as they read now.
      t[name] = name === 'hours' ? this.decodeHours(v) : this.decode(v);
      const next = Date.UTC(t.century * 100 + t.year, t.month - 1, t.day, t.hours, t.minutes, t.seconds) / 1000;
      this.offsetSeconds += next - Math.floor(this.now().getTime() / 1000);
      return;
    }
    if (reg === CMOS.STATUS_C || reg === CMOS.STATUS_D) return; // read-only
    if (reg === CMOS.STATUS_A) v &= 0x7f; // UIP (bit 7) is read-only
    this.ram[reg] = v;
  }

  private binary(): boolean {
    return (this.ram[CMOS.STATUS_B]! & RTC_B.DATA_MODE_BINARY) !== 0;
  }

  /** The hours register for hour `h` (0–23): as is in 24-hour mode, else 1–12 with bit 7 set for PM. */
  private hourRegister(h: number): number {
    if (this.ram[CMOS.STATUS_B]! & RTC_B.HOURS_24) return this.encode(h);
    return this.encode(h % 12 === 0 ? 12 : h % 12) | (h >= 12 ? HOUR_PM : 0);
  }

  private encode(n: number): number {
    return this.binary() ? n : toBcd(n);
  }

  private decode(v: number): number {
    return this.binary() ? v : fromBcd(v);
  }

  private decodeHours(v: number): number {
    const h = this.decode(v & 0x7f);
    if (this.ram[CMOS.STATUS_B]! & RTC_B.HOURS_24) return h;
    return (h % 12) + ((v & HOUR_PM) !== 0 ? 12 : 0);
  }
}

function timeFields(d: Date) {
  return {
    seconds: d.getUTCSeconds(), minutes: d.getUTCMinutes(), hours: d.getUTCHours(), dayOfWeek: d.getUTCDay() + 1,
    day: d.getUTCDate(), month: d.getUTCMonth() + 1, year: d.getUTCFullYear() % 100, century: Math.floor(d.getUTCFullYear() / 100),
  };
}

function setWord(r: Uint8Array, lo: number, v: number): void {
  r[lo] = v & 0xff;
  r[lo + 1] = (v >> 8) & 0xff;
}

function toBcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

function fromBcd(v: number): number {
  return (v >> 4) * 10 + (v & 0xf);
}
