// The address-range monitoring hardware of one logical processor, which MONITOR arms and MWAIT waits on.
// MONITOR arms it on the line that holds a physical address; a store to that line — by this processor, another
// one, or the host — triggers it, and it is no longer armed. MWAIT asks whether it is armed (VMX reports that in
// the MWAIT exit qualification) and leaves it disarmed.
// See SDM Vol. 2B, "MONITOR—Set Up Monitor Address" and "MWAIT—Monitor Wait", and Vol. 3A, "Monitor/Mwait
// Address Range Determination".
import { PAGE_SIZE, type PhysicalMemory } from './memory.ts';

/**
 * The monitored line: 64 bytes, the cache-line size CPUID.01H:EBX[15:8] reports (the models leave leaf 05H,
 * the monitor-line sizes, unmodelled).
 */
export const MONITOR_LINE_SIZE = 64;

export class AddressMonitor {
  /** Physical address of the armed line, or -1 when not armed. */
  private line = -1;
  private listening = false;

  constructor(private readonly memory: PhysicalMemory) {}

  get armed(): boolean {
    return this.line >= 0;
  }

  /** MONITOR: arm on the line holding physical address `pa`. */
  arm(pa: number): void {
    this.line = pa - (pa % MONITOR_LINE_SIZE);
    if (!this.listening) {
      this.listening = true;
      this.memory.addWriteListener((pfn, at, size) => this.onWrite(pfn, at, size));
    }
    this.memory.watchCode(this.pfn());
  }

  disarm(): void {
    this.line = -1;
  }

  private pfn(): number {
    return Math.floor(this.line / PAGE_SIZE);
  }

  /** A write to a watched frame. Writes to the page outside the line leave the monitor armed (and watching). */
  private onWrite(pfn: number, pa: number, size: number): void {
    if (this.line < 0 || pfn !== this.pfn()) return;
    if (pa < this.line + MONITOR_LINE_SIZE && pa + size > this.line) this.line = -1;
    else this.memory.watchCode(pfn); // the write unwatched the frame: watch it again for the line
  }
}
