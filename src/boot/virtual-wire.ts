// How the 8259 PICs reach the bootstrap processor on a PC with local APICs: "virtual wire mode" through the BSP's
// LINT0 programmed as ExtINT, which the BIOS leaves set up (LINT1 as NMI). The BSP's interrupt source becomes the
// local APIC first, then the PIC pair when LINT0 is an unmasked ExtINT entry (or the APIC is disabled, and the PIC's
// INTR goes straight to the processor). An ExtINT interrupt takes its vector from the PIC's acknowledge cycle and
// does not go through the APIC's IRR/ISR.
// See the MultiProcessor Specification 1.4, "Virtual Wire Mode", and SDM Vol. 3A, "Local Vector Table" (ExtINT).

import type { InterruptSource } from '../machine/lp.ts';
import type { LocalApic } from '../machine/apic.ts';
import type { Pic8259Pair } from './devices/pic8259.ts';

const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_SVR = 0xf0;
const LVT_MASKED = 1 << 16;
const LVT_DELIVERY_MODE_SHIFT = 8;
const LVT_DELIVERY_MODE_MASK = 7 << LVT_DELIVERY_MODE_SHIFT;
const DM_NMI = 4 << LVT_DELIVERY_MODE_SHIFT;
const DM_EXTINT = 7 << LVT_DELIVERY_MODE_SHIFT;
/** SVR: APIC software-enabled, spurious vector FFH. */
const SVR_ENABLED_SPURIOUS_FF = 0x1ff;

/** Program the BSP's APIC as a BIOS leaves it: software-enabled, LINT0 = ExtINT, LINT1 = NMI. */
export function setUpVirtualWire(apic: LocalApic): void {
  apic.writeXapic(APIC_SVR, SVR_ENABLED_SPURIOUS_FF);
  apic.writeXapic(APIC_LVT_LINT0, DM_EXTINT);
  apic.writeXapic(APIC_LVT_LINT1, DM_NMI);
}

export class VirtualWireSource implements InterruptSource {
  /** Whether the vector last offered came from the PIC (its acknowledge must then go to the PIC). */
  private offeredPic = false;

  constructor(private readonly apic: LocalApic | null, private readonly pic: Pic8259Pair) {}

  pendingVector(): number {
    const fromApic = this.apic === null ? -1 : this.apic.pendingVector();
    this.offeredPic = false;
    if (fromApic >= 0) return fromApic;
    const fromPic = this.pic.pendingVector();
    if (fromPic < 0 || !this.picConnected()) return -1;
    this.offeredPic = true;
    return fromPic;
  }

  acknowledge(vector: number): void {
    if (this.offeredPic) this.pic.acknowledge();
    else this.apic?.acknowledge(vector);
    this.offeredPic = false;
  }

  private picConnected(): boolean {
    const apic = this.apic;
    if (apic === null || apic.mode === 'disabled') return true;
    const lint0 = apic.readXapic(APIC_LVT_LINT0);
    return (lint0 & LVT_MASKED) === 0 && (lint0 & LVT_DELIVERY_MODE_MASK) === DM_EXTINT;
  }
}
