// The 8254 programmable interval timer at 40H–43H, and port 61H (NMI status and control) for channel 2's gate and
// output: three 16-bit down-counters clocked at 1.193182 MHz. Channel 0 drives IRQ 0; channel 2's gate and OUT are
// at port 61H bits 0 and 5 (how kernels calibrate the TSC). The counters are computed from the PC clock when read,
// never stepped: a counter is "loaded at time t0 with N" and everything else follows.
// See the Intel 82C54 datasheet, "Mode Definitions", "Read Operations" and "Read-Back Command", and the PC/AT
// technical reference for port 61H.
//
// Modes 0 (interrupt on terminal count), 2 (rate generator) and 3 (square wave) are modeled; modes 1, 4 and 5 (the
// hardware-triggered ones) count like mode 0. In mode 3 the counter is read as it would be in mode 2 (the real part
// counts down by two twice per period); OUT is exact. BCD counting is not modeled (the count is taken as binary).

import type { PortDevice } from '../../machine/io.ts';

export const PIT_PORT_BASE = 0x40;
export const PIT_PORT_COMMAND = 0x43;
export const PORT_61H = 0x61;
export const PIT_HZ = 1_193_182;

const ACCESS = { LATCH: 0, LOW: 1, HIGH: 2, LOW_HIGH: 3 } as const;
const READ_BACK = 3;
const PORT61 = { GATE2: 1 << 0, SPEAKER_DATA: 1 << 1, REFRESH: 1 << 4, OUT2: 1 << 5 } as const;

class Channel {
  mode = 0;
  access: number = ACCESS.LOW_HIGH;
  /** The count written (1–65536; 0 written means 65536). */
  reload = 0x10000;
  /** PIT tick at which the current count started; NaN until a count is written. */
  loadedAt = NaN;
  gate: boolean;
  /** Counter value and OUT while the gate is low (counting paused). */
  frozen = 0;
  private frozenOut = false;
  writeHighNext = false;
  lowByte = 0;
  readHighNext = false;
  latched: number | null = null;
  status: number | null = null;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  load(count: number, now: number): void {
    this.reload = count === 0 ? 0x10000 : count;
    this.loadedAt = now;
    this.frozen = this.reload;
  }

  counter(now: number): number {
    if (Number.isNaN(this.loadedAt)) return 0;
    if (!this.gate) return this.frozen & 0xffff;
    const elapsed = now - this.loadedAt;
    if (this.periodic()) return (this.reload - (elapsed % this.reload)) & 0xffff;
    return (((this.reload - elapsed) % 0x10000) + 0x10000) % 0x10000;
  }

  out(now: number): boolean {
    if (Number.isNaN(this.loadedAt)) return this.mode !== 0; // mode 0 OUT starts low, the others high
    if (!this.gate) return this.periodic() ? true : this.frozenOut;
    const elapsed = now - this.loadedAt;
    if (this.mode === 2) return elapsed % this.reload !== this.reload - 1;
    if (this.mode === 3) return elapsed % this.reload < Math.ceil(this.reload / 2);
    return elapsed >= this.reload;
  }

  /** The first PIT tick > `now` at which OUT rises, or Infinity. */
  nextRise(now: number): number {
    if (Number.isNaN(this.loadedAt) || !this.gate) return Infinity;
    const elapsed = now - this.loadedAt;
    if (this.periodic()) return this.loadedAt + (Math.floor(elapsed / this.reload) + 1) * this.reload;
    return elapsed < this.reload ? this.loadedAt + this.reload : Infinity;
  }

  setGate(level: boolean, now: number): void {
    if (level === this.gate) return;
    if (!level) {
      this.frozen = this.counter(now);
      this.frozenOut = this.out(now);
      this.gate = false;
      return;
    }
    this.gate = true;
    if (Number.isNaN(this.loadedAt)) return;
    // A rising gate restarts the periodic modes; mode 0 resumes where it paused.
    if (this.periodic()) this.loadedAt = now;
    else this.loadedAt = now - (this.reload - this.frozen);
  }

  periodic(): boolean {
    return this.mode === 2 || this.mode === 3;
  }
}

export class Pit8254 implements PortDevice {
  readonly name = 'i8254 PIT';
  private readonly channels = [new Channel(true), new Channel(true), new Channel(false)];
  private speakerData = false;
  /** PIT tick up to which channel 0's rising edges have been reported. */
  private reportedUpTo = 0;

  /** @param clock the PC's time in nanoseconds (pc.ts's PcClock: one retired instruction = 1 ns). */
  constructor(private readonly clock: () => number) {}

  in(port: number, size: 1 | 2 | 4): number {
    if (size !== 1) return size === 4 ? 0xffffffff : 0xffff;
    const now = this.ticks();
    if (port === PORT_61H) {
      const c2 = this.channels[2]!;
      // The refresh-request bit toggles every 15 µs (about 18 PIT ticks); some delay loops count its edges.
      return (c2.gate ? PORT61.GATE2 : 0) | (this.speakerData ? PORT61.SPEAKER_DATA : 0) |
        (Math.floor(now / 18) % 2 === 1 ? PORT61.REFRESH : 0) | (c2.out(now) ? PORT61.OUT2 : 0);
    }
    if (port === PIT_PORT_COMMAND) return 0xff; // the control word register is write-only
    const ch = this.channels[port - PIT_PORT_BASE]!;
    if (ch.status !== null) {
      const s = ch.status;
      ch.status = null;
      return s;
    }
    const value = ch.latched ?? ch.counter(now);
    let byte: number;
    if (ch.access === ACCESS.LOW) byte = value & 0xff;
    else if (ch.access === ACCESS.HIGH) byte = value >> 8;
    else {
      byte = ch.readHighNext ? value >> 8 : value & 0xff;
      ch.readHighNext = !ch.readHighNext;
      if (ch.readHighNext) return byte; // the latch holds until both bytes are read
    }
    ch.latched = null;
    return byte;
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 1) return;
    const now = this.ticks();
    const v = value & 0xff;
    if (port === PORT_61H) {
      this.channels[2]!.setGate((v & PORT61.GATE2) !== 0, now);
      this.speakerData = (v & PORT61.SPEAKER_DATA) !== 0;
      return;
    }
    if (port === PIT_PORT_COMMAND) {
      this.command(v, now);
      return;
    }
    const ch = this.channels[port - PIT_PORT_BASE]!;
    if (ch.access === ACCESS.LOW) ch.load(v, now);
    else if (ch.access === ACCESS.HIGH) ch.load(v << 8, now);
    else if (!ch.writeHighNext) {
      ch.lowByte = v;
      ch.writeHighNext = true;
    } else {
      ch.writeHighNext = false;
      ch.load(ch.lowByte | (v << 8), now);
    }
    if (port === PIT_PORT_BASE) this.reportedUpTo = Math.max(this.reportedUpTo, now);
  }

  /** Nanoseconds (PC clock) of channel 0's next rising edge (the next IRQ 0), or Infinity. */
  nextIrq0At(): number {
    const tick = this.channels[0]!.nextRise(Math.max(this.ticks(), this.reportedUpTo));
    return tick === Infinity ? Infinity : Math.ceil((tick * 1e9) / PIT_HZ);
  }

  /** True (once) if channel 0's OUT has risen since the last call: the caller pulses IRQ 0. */
  takeIrq0(): boolean {
    const now = this.ticks();
    const ch = this.channels[0]!;
    const rise = ch.nextRise(this.reportedUpTo);
    if (rise > now) return false;
    this.reportedUpTo = now; // several periods missed coalesce into one request, as an edge-latched IRR does
    return true;
  }

  private command(v: number, now: number): void {
    const select = v >> 6;
    if (select === READ_BACK) {
      for (let i = 0; i < 3; i++) {
        if ((v & (2 << i)) === 0) continue;
        const ch = this.channels[i]!;
        if ((v & (1 << 5)) === 0 && ch.latched === null) ch.latched = ch.counter(now);
        if ((v & (1 << 4)) === 0) ch.status = ((ch.out(now) ? 1 : 0) << 7) | (ch.access << 4) | (ch.mode << 1);
      }
      return;
    }
    const ch = this.channels[select]!;
    const access = (v >> 4) & 3;
    if (access === ACCESS.LATCH) {
      if (ch.latched === null) ch.latched = ch.counter(now);
      return;
    }
    // A control word stops the counter until a new count is written; modes 6 and 7 are modes 2 and 3.
    const mode = (v >> 1) & 7;
    ch.mode = mode >= 6 ? mode - 4 : mode;
    ch.access = access;
    ch.loadedAt = NaN;
    ch.writeHighNext = false;
    ch.readHighNext = false;
    ch.latched = null;
  }

  private ticks(): number {
    return Math.floor((this.clock() * PIT_HZ) / 1e9);
  }
}
