import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApicBusImpl, LocalApic, type ApicIpi } from './apic.ts';
import { PhysicalMemory } from './memory.ts';

// Offsets and MSRs are written out here from the SDM tables ("Local APIC Register Address Map", "x2APIC Register
// Address Space") rather than imported, so a wrong table in apic.ts fails these tests.
const ID = 0x20, LVR = 0x30, TPR = 0x80, PPR = 0xa0, EOI = 0xb0, LDR = 0xd0, DFR = 0xe0, SVR = 0xf0;
const ISR0 = 0x100, IRR0 = 0x200, ESR = 0x280, ICR_LO = 0x300, ICR_HI = 0x310;
const LVT_TIMER = 0x320, LVT_LINT1 = 0x360, LVT_ERROR = 0x370, TMICT = 0x380, TMCCT = 0x390, TDCR = 0x3e0;
const IA32_APIC_BASE = 0x1b;
const SW_ENABLE = 0x100;
const MASKED = 0x10000;
const PERIODIC = 0x20000;

// Divide configuration (bits 3,1,0) → divisor, SDM Vol. 3A, "Divide Configuration Register".
const DIVIDE_TABLE: ReadonlyArray<[number, number]> = [
  [0b0000, 2], [0b0001, 4], [0b0010, 8], [0b0011, 16], [0b1000, 32], [0b1001, 64], [0b1010, 128], [0b1011, 1],
];

function w(a: LocalApic, off: number, v: number): void {
  a.write(off, 4, BigInt(v >>> 0));
}
function r(a: LocalApic, off: number): number {
  return Number(a.read(off, 4));
}
function enabled(id = 0, opts: Partial<ConstructorParameters<typeof LocalApic>[0]> = {}): LocalApic {
  const a = new LocalApic({ apicId: id, ...opts });
  w(a, SVR, SW_ENABLE | 0xff);
  return a;
}
/** ICR low: vector | delivery mode << 8 | dest mode << 11 | level << 14 | trigger << 15 | shorthand << 18. */
function icr(vector: number, dm: number, o: { logical?: boolean; level?: boolean; trig?: boolean; sh?: number } = {}): number {
  return vector | (dm << 8) | ((o.logical ? 1 : 0) << 11) | ((o.level ?? true ? 1 : 0) << 14) | ((o.trig ? 1 : 0) << 15) | ((o.sh ?? 0) << 18);
}
function selfIpi(a: LocalApic, vector: number): void {
  w(a, ICR_LO, icr(vector, 0, { sh: 1 }));
}
function irrHas(a: LocalApic, v: number): boolean {
  return ((r(a, IRR0 + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;
}
function isrHas(a: LocalApic, v: number): boolean {
  return ((r(a, ISR0 + (v >> 5) * 0x10) >>> (v & 31)) & 1) === 1;
}
function x2(id: number): LocalApic {
  const a = enabled(id);
  expect(a.writeMsr(IA32_APIC_BASE, 0xfee00000n | 0x800n | 0x400n).ok).toBe(true);
  return a;
}

describe('local APIC reset state and registers', () => {
  it('comes out of reset in xAPIC mode with the SDM power-up values', () => {
    const bsp = new LocalApic({ apicId: 0, bsp: true });
    const ap = new LocalApic({ apicId: 5 });
    expect(bsp.readApicBase()).toBe(0xfee00900n); // base | EN | BSP
    expect(ap.readApicBase()).toBe(0xfee00800n);
    expect(r(ap, ID) >>> 24).toBe(5);
    expect(r(ap, LVR) & 0xff).toBe(0x14);
    expect((r(ap, LVR) >>> 16) & 0xff).toBe(5); // six LVT entries
    expect(r(ap, SVR)).toBe(0xff);
    expect(r(ap, DFR)).toBe(0xffffffff);
    for (let off = LVT_TIMER; off <= LVT_ERROR; off += 0x10) expect(r(ap, off)).toBe(MASKED);
    expect(r(ap, TPR) | r(ap, LDR) | r(ap, TMICT) | r(ap, TMCCT) | r(ap, TDCR)).toBe(0);
    expect(ap.pendingVector()).toBe(-1);
  });

  it('works as the MmioDevice of the page at FEE00000H', () => {
    const mem = new PhysicalMemory({ ramBytes: 1 << 20 });
    const a = new LocalApic({ apicId: 9 });
    mem.addMmio(a.baseAddress, 0x1000, a);
    mem.write32(0xfee000f0, 0x1ff);
    mem.write32(0xfee00080, 0x30);
    expect(mem.read32(0xfee00080)).toBe(0x30);
    expect(mem.read32(0xfee00020)).toBe(9 << 24);
    expect(a.softwareEnabled).toBe(true);
  });

  it('reads sub-dword pieces of a register and zeros in the unused bytes of a slot', () => {
    const a = new LocalApic({ apicId: 0x7a });
    expect(Number(a.read(ID + 3, 1))).toBe(0x7a);
    expect(Number(a.read(ID + 4, 4))).toBe(0);
    w(a, TPR, 0x1ab); // bits 31:8 are not part of TPR
    expect(r(a, TPR)).toBe(0xab);
  });

  it('logs an illegal register address in ESR, visible after the next ESR write', () => {
    const a = enabled();
    r(a, 0x3f0); // SELF IPI exists only in x2APIC mode
    expect(r(a, ESR)).toBe(0);
    w(a, ESR, 0);
    expect(r(a, ESR)).toBe(0x80);
    w(a, ESR, 0);
    expect(r(a, ESR)).toBe(0);
  });

  it('raises the LVT error vector when an error is logged', () => {
    const a = enabled();
    w(a, LVT_ERROR, 0xfe);
    selfIpi(a, 3); // illegal vector
    w(a, ESR, 0);
    expect(r(a, ESR)).toBe(0x20); // Send Illegal Vector
    expect(a.pendingVector()).toBe(0xfe);
  });
});

describe('APIC timer', () => {
  function firstFire(initial: number, dcr: number, periodic: boolean, limit: number): number[] {
    const a = enabled();
    w(a, LVT_TIMER, 0x40 | (periodic ? PERIODIC : 0));
    w(a, TDCR, dcr);
    w(a, TMICT, initial);
    const fires: number[] = [];
    for (let t = 1; t <= limit; t++) {
      a.tick(1);
      if (a.pendingVector() === 0x40) {
        fires.push(t);
        a.acknowledge(0x40);
        w(a, EOI, 0);
      }
    }
    return fires;
  }

  it('fires a one-shot timer once, after initial count × divisor clocks, for every divide value', () => {
    for (const [dcr, divisor] of DIVIDE_TABLE) {
      for (const initial of [1, 3, 10]) {
        expect(firstFire(initial, dcr, false, initial * divisor * 3 + 5), `dcr=${dcr} n=${initial}`).toEqual([initial * divisor]);
      }
    }
  });

  it('fires a periodic timer every initial count × divisor clocks', () => {
    for (const [dcr, divisor] of DIVIDE_TABLE) {
      const p = 4 * divisor;
      expect(firstFire(4, dcr, true, 3 * p + 1), `dcr=${dcr}`).toEqual([p, 2 * p, 3 * p]);
    }
  });

  it('counts down the current-count register at bus clock / divisor', () => {
    const a = enabled();
    w(a, TDCR, 0b0001); // divide by 4
    w(a, TMICT, 100);
    expect(r(a, TMCCT)).toBe(100);
    a.tick(3);
    expect(r(a, TMCCT)).toBe(100);
    a.tick(1);
    expect(r(a, TMCCT)).toBe(99);
    a.tick(40);
    expect(r(a, TMCCT)).toBe(89);
    w(a, TMICT, 0); // writing 0 stops the timer
    a.tick(1000);
    expect(r(a, TMCCT)).toBe(0);
  });

  it('gives the same state however the elapsed clocks are split between tick calls', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.constantFrom(...DIVIDE_TABLE.map(([d]) => d)),
        fc.boolean(),
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 12 }),
        (initial, dcr, periodic, chunks) => {
          const mk = () => {
            const a = enabled();
            w(a, LVT_TIMER, 0x40 | (periodic ? PERIODIC : 0));
            w(a, TDCR, dcr);
            w(a, TMICT, initial);
            return a;
          };
          const split = mk();
          const single = mk();
          let total = 0;
          for (const c of chunks) {
            split.tick(c);
            total += c;
          }
          for (let i = 0; i < total; i++) single.tick(1);
          expect(r(split, TMCCT)).toBe(r(single, TMCCT));
          expect(split.pendingVector()).toBe(single.pendingVector());
          expect(split.cyclesUntilTimer()).toBe(single.cyclesUntilTimer());
        },
      ),
    );
  });

  it('reports the clocks left until expiry, so the run loop can stop on the right instruction', () => {
    const a = enabled();
    w(a, LVT_TIMER, 0x40);
    w(a, TDCR, 0b0010); // divide by 8
    w(a, TMICT, 7);
    a.tick(13);
    expect(a.cyclesUntilTimer()).toBe(7 * 8 - 13);
    a.tick(a.cyclesUntilTimer() - 1);
    expect(a.pendingVector()).toBe(-1);
    a.tick(1);
    expect(a.pendingVector()).toBe(0x40);
    expect(a.cyclesUntilTimer()).toBe(Infinity);
  });

  it('keeps counting while the LVT entry is masked but raises nothing', () => {
    const a = enabled();
    w(a, LVT_TIMER, 0x40 | MASKED);
    w(a, TDCR, 0b1011);
    w(a, TMICT, 5);
    a.tick(10);
    expect(r(a, TMCCT)).toBe(0);
    expect(a.pendingVector()).toBe(-1);
  });
});

describe('interrupt acceptance and priority', () => {
  it('delivers a vector only when its priority class is above the TPR class', () => {
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 255 }), fc.integer({ min: 0, max: 255 }), (vector, tpr) => {
        const a = enabled();
        w(a, TPR, tpr);
        selfIpi(a, vector);
        expect(irrHas(a, vector)).toBe(true);
        expect(a.pendingVector()).toBe(vector >> 4 > tpr >> 4 ? vector : -1);
      }),
    );
  });

  it('computes PPR from TPR and the highest in-service vector', () => {
    const a = enabled();
    selfIpi(a, 0x51);
    a.acknowledge(0x51);
    w(a, TPR, 0x35);
    expect(r(a, PPR)).toBe(0x50);
    w(a, TPR, 0x65);
    expect(r(a, PPR)).toBe(0x65);
    w(a, TPR, 0x5f);
    expect(r(a, PPR)).toBe(0x5f); // equal class: TPR wins
  });

  it('moves IRR to ISR on acknowledge, blocks lower classes while in service, and EOI retires the highest', () => {
    const a = enabled();
    selfIpi(a, 0x50);
    expect(a.pendingVector()).toBe(0x50);
    a.acknowledge(0x50);
    expect(irrHas(a, 0x50)).toBe(false);
    expect(isrHas(a, 0x50)).toBe(true);
    selfIpi(a, 0x41);
    selfIpi(a, 0x5f);
    expect(a.pendingVector()).toBe(-1); // 0x5F is the same class as 0x50, 0x41 is lower
    selfIpi(a, 0x61);
    expect(a.pendingVector()).toBe(0x61);
    a.acknowledge(0x61);
    w(a, EOI, 0);
    expect(isrHas(a, 0x61)).toBe(false);
    expect(isrHas(a, 0x50)).toBe(true);
    w(a, EOI, 0);
    expect(isrHas(a, 0x50)).toBe(false);
    expect(a.pendingVector()).toBe(0x5f);
    w(a, EOI, 0); // EOI with nothing in service is harmless
    expect(a.pendingVector()).toBe(0x5f);
  });

  it('rejects vectors 0-15 on receipt with a Receive Illegal Vector error', () => {
    const a = enabled();
    a.deliver({ vector: 7, deliveryMode: 'fixed', destMode: 'physical', destination: 0, shorthand: 'none', level: true, trigger: 'edge' });
    expect(a.pendingVector()).toBe(-1);
    w(a, ESR, 0);
    expect(r(a, ESR)).toBe(0x40);
  });

  it('when software-disabled: LVT stays masked and fixed interrupts are refused, NMI still accepted', () => {
    const a = enabled();
    w(a, LVT_TIMER, 0x40);
    w(a, SVR, 0xff); // clear the software enable bit
    expect(r(a, LVT_TIMER) & MASKED).toBe(MASKED);
    w(a, LVT_TIMER, 0x41);
    expect(r(a, LVT_TIMER)).toBe(MASKED | 0x41);
    const ipi: ApicIpi = { vector: 0x80, deliveryMode: 'fixed', destMode: 'physical', destination: 0, shorthand: 'none', level: true, trigger: 'edge' };
    a.deliver(ipi);
    expect(irrHas(a, 0x80)).toBe(false);
    a.deliver({ ...ipi, deliveryMode: 'nmi' });
    expect(a.nmiPending).toBe(true);
  });

  it('records level-triggered acceptance in TMR', () => {
    const a = enabled();
    a.deliver({ vector: 0x90, deliveryMode: 'fixed', destMode: 'physical', destination: 0, shorthand: 'none', level: true, trigger: 'level' });
    expect((r(a, 0x180 + 4 * 0x10) >>> 16) & 1).toBe(1);
  });

  it('delivers LINT1 as NMI or as a fixed vector as its LVT entry says', () => {
    const a = enabled();
    w(a, LVT_LINT1, 4 << 8); // NMI
    a.raiseLint(1);
    expect(a.nmiPending).toBe(true);
    w(a, LVT_LINT1, 0x77);
    a.raiseLint(1);
    expect(a.pendingVector()).toBe(0x77);
  });
});

describe('IPIs through the ICR and ApicBusImpl', () => {
  function machine(n: number) {
    const apics = Array.from({ length: n }, (_, i) => enabled(i));
    const bus = new ApicBusImpl(apics);
    return { apics, bus };
  }

  it('routes by shorthand: self, all including self, all excluding self', () => {
    const { apics } = machine(3);
    const [a0, a1, a2] = apics as [LocalApic, LocalApic, LocalApic];
    w(a1, ICR_LO, icr(0x31, 0, { sh: 1 }));
    expect([irrHas(a0, 0x31), irrHas(a1, 0x31), irrHas(a2, 0x31)]).toEqual([false, true, false]);
    w(a1, ICR_LO, icr(0x32, 0, { sh: 2 }));
    expect([irrHas(a0, 0x32), irrHas(a1, 0x32), irrHas(a2, 0x32)]).toEqual([true, true, true]);
    w(a1, ICR_LO, icr(0x33, 0, { sh: 3 }));
    expect([irrHas(a0, 0x33), irrHas(a1, 0x33), irrHas(a2, 0x33)]).toEqual([true, false, true]);
    expect(r(a1, ICR_LO) & (1 << 12)).toBe(0); // delivery status: idle
  });

  it('routes by physical APIC ID and to the physical broadcast ID FFH', () => {
    const { apics } = machine(3);
    w(apics[0]!, ICR_HI, 2 << 24);
    w(apics[0]!, ICR_LO, icr(0x44, 0));
    expect(apics.map((a) => irrHas(a, 0x44))).toEqual([false, false, true]);
    w(apics[0]!, ICR_HI, 0xff << 24);
    w(apics[0]!, ICR_LO, icr(0x45, 0));
    expect(apics.map((a) => irrHas(a, 0x45))).toEqual([true, true, true]);
  });

  it('routes by logical destination in the flat and cluster models', () => {
    const { apics } = machine(3);
    apics.forEach((a, i) => w(a, LDR, (1 << i) << 24)); // flat: one bit each
    w(apics[0]!, ICR_HI, 0b110 << 24);
    w(apics[0]!, ICR_LO, icr(0x50, 0, { logical: true }));
    expect(apics.map((a) => irrHas(a, 0x50))).toEqual([false, true, true]);
    // Cluster model: LDR[31:28] cluster, [27:24] member bits.
    apics.forEach((a) => w(a, DFR, 0x0fffffff));
    w(apics[0]!, LDR, 0x11 << 24);
    w(apics[1]!, LDR, 0x12 << 24);
    w(apics[2]!, LDR, 0x21 << 24);
    w(apics[0]!, ICR_HI, 0x13 << 24); // cluster 1, members 1|2
    w(apics[0]!, ICR_LO, icr(0x51, 0, { logical: true }));
    expect(apics.map((a) => irrHas(a, 0x51))).toEqual([true, true, false]);
    w(apics[0]!, ICR_HI, 0xf1 << 24); // all clusters, member bit 0
    w(apics[0]!, ICR_LO, icr(0x52, 0, { logical: true }));
    expect(apics.map((a) => irrHas(a, 0x52))).toEqual([true, false, true]);
  });

  it('gives a lowest-priority interrupt to the one target with the lowest priority', () => {
    const { apics } = machine(3);
    w(apics[0]!, TPR, 0x30);
    w(apics[1]!, TPR, 0x10);
    w(apics[2]!, TPR, 0x20);
    w(apics[0]!, ICR_HI, 0xff << 24);
    w(apics[0]!, ICR_LO, icr(0x60, 1));
    expect(apics.map((a) => irrHas(a, 0x60))).toEqual([false, true, false]);
  });

  it('refuses to send vectors 0-15 (Send Illegal Vector)', () => {
    const { apics } = machine(2);
    w(apics[0]!, ICR_HI, 1 << 24);
    w(apics[0]!, ICR_LO, icr(0x0f, 0));
    expect(apics[1]!.pendingVector()).toBe(-1);
    w(apics[0]!, ESR, 0);
    expect(r(apics[0]!, ESR)).toBe(0x20);
  });

  it('signals NMI, INIT and SIPI to the addressed processor only; INIT de-assert does nothing', () => {
    const { apics } = machine(3);
    const inits: number[] = [];
    const sipis: [number, number][] = [];
    apics.forEach((a, i) => {
      a.onInit = () => inits.push(i);
      a.onStartup = (v) => sipis.push([i, v]);
    });
    const bsp = apics[0]!;
    w(bsp, ICR_HI, 2 << 24);
    w(bsp, ICR_LO, icr(0, 5, { level: true, trig: true })); // INIT, level assert
    w(bsp, ICR_LO, icr(0, 5, { level: false, trig: true })); // INIT level de-assert
    w(bsp, ICR_LO, icr(0x9a, 6)); // STARTUP, vector 9AH → start at 9A000H
    w(bsp, ICR_LO, icr(0, 4)); // NMI
    expect(inits).toEqual([2]);
    expect(sipis).toEqual([[2, 0x9a]]);
    expect(apics.map((a) => a.nmiPending)).toEqual([false, false, true]);
    // INIT to all excluding self, as an OS starting its APs does.
    w(bsp, ICR_LO, icr(0, 5, { sh: 3 }));
    expect(inits).toEqual([2, 1, 2]);
  });

  it('does not deliver to a globally disabled APIC', () => {
    const { apics } = machine(2);
    expect(apics[1]!.writeMsr(IA32_APIC_BASE, 0xfee00000n).ok).toBe(true);
    w(apics[0]!, ICR_LO, icr(0x70, 0, { sh: 2 }));
    expect(apics[1]!.pendingVector()).toBe(-1);
    expect(apics[0]!.pendingVector()).toBe(0x70);
  });
});

describe('register dump', () => {
  it('names the live register values without side effects', () => {
    const a = enabled(4);
    w(a, TPR, 0x20);
    w(a, TDCR, 0b1010);
    selfIpi(a, 0x41);
    const d = a.registers();
    expect(d).toMatchObject({ mode: 'xapic', id: 4, tpr: 0x20, ppr: 0x20, svr: 0x1ff, timerDivide: 128, esr: 0 });
    expect(d.irr[2]).toBe(1 << 1);
    expect(d.apicBase).toBe(0xfee00800n);
    expect(a.registers()).toEqual(d);
  });
});

describe('INIT reset', () => {
  it('clears the registers but keeps the ID, IA32_APIC_BASE and x2APIC mode', () => {
    const a = x2(3);
    expect(a.writeMsr(0x808, 0x20n).ok).toBe(true);
    expect(a.writeMsr(0x83f, 0x99n).ok).toBe(true);
    a.initReset();
    expect(a.mode).toBe('x2apic');
    expect(a.readMsr(0x808)).toEqual({ ok: true, value: 0n });
    expect(a.readMsr(0x802)).toEqual({ ok: true, value: 3n });
    expect(a.readMsr(0x80f)).toEqual({ ok: true, value: 0xffn });
    expect(a.pendingVector()).toBe(-1);
  });
});

describe('IA32_APIC_BASE and x2APIC mode', () => {
  it('allows disabled → xAPIC → x2APIC → disabled and rejects the illegal transitions with #GP', () => {
    const a = new LocalApic({ apicId: 1 });
    const base = 0xfee00000n, EN = 0x800n, EXTD = 0x400n;
    expect(a.writeMsr(IA32_APIC_BASE, base | EXTD).ok).toBe(false); // EN=0, EXTD=1: invalid
    expect(a.writeMsr(IA32_APIC_BASE, base).ok).toBe(true);
    expect(a.mode).toBe('disabled');
    expect(a.writeMsr(IA32_APIC_BASE, base | EN | EXTD).ok).toBe(false); // disabled → x2APIC
    expect(a.writeMsr(IA32_APIC_BASE, base | EN).ok).toBe(true);
    expect(a.writeMsr(IA32_APIC_BASE, base | EN | EXTD).ok).toBe(true);
    expect(a.mode).toBe('x2apic');
    expect(a.readMsr(IA32_APIC_BASE)).toEqual({ ok: true, value: base | EN | EXTD });
    expect(a.writeMsr(IA32_APIC_BASE, base | EN).ok).toBe(false); // x2APIC → xAPIC
    expect(a.writeMsr(IA32_APIC_BASE, base).ok).toBe(true);
    expect(a.mode).toBe('disabled');
  });

  it('raises #GP for reserved bits, and for EXTD when the CPU has no x2APIC', () => {
    const a = new LocalApic({ apicId: 0, maxPhysAddr: 36 });
    expect(a.writeMsr(IA32_APIC_BASE, 0xfee00800n | 0x200n).ok).toBe(false); // bit 9
    expect(a.writeMsr(IA32_APIC_BASE, 0xfee00800n | 0x1n).ok).toBe(false); // bit 0
    expect(a.writeMsr(IA32_APIC_BASE, 0xfee00800n | (1n << 36n)).ok).toBe(false); // above MAXPHYADDR
    expect(a.writeMsr(IA32_APIC_BASE, 0xfee00800n | (1n << 35n)).ok).toBe(true);
    const old = new LocalApic({ apicId: 0, x2apicSupported: false });
    expect(old.writeMsr(IA32_APIC_BASE, 0xfee00c00n).ok).toBe(false);
  });

  it('relocates the xAPIC page, ignores writes to BSP, and resets registers when globally disabled', () => {
    const a = enabled(0, { bsp: true });
    w(a, TPR, 0x40);
    expect(a.writeMsr(IA32_APIC_BASE, 0xfec00800n).ok).toBe(true);
    expect(a.baseAddress).toBe(0xfec00000);
    expect(a.readApicBase()).toBe(0xfec00900n); // BSP still set
    expect(r(a, TPR)).toBe(0x40);
    a.writeMsr(IA32_APIC_BASE, 0xfec00000n);
    expect(r(a, ID)).toBe(0xffffffff); // not decoded while disabled
    a.writeMsr(IA32_APIC_BASE, 0xfec00800n);
    expect(r(a, TPR)).toBe(0);
    expect(r(a, SVR)).toBe(0xff);
  });

  it('maps the registers to MSRs 800H + offset/16 in x2APIC mode and stops decoding the MMIO page', () => {
    const a = x2(0x23);
    expect(a.readMsr(0x802)).toEqual({ ok: true, value: 0x23n });
    expect(a.readMsr(0x803)).toEqual({ ok: true, value: BigInt(r(new LocalApic({ apicId: 0 }), LVR)) });
    expect(a.readMsr(0x80d)).toEqual({ ok: true, value: 0x00020008n }); // cluster 2, member bit 3
    expect(a.writeMsr(0x808, 0x50n).ok).toBe(true);
    expect(a.readMsr(0x80a)).toEqual({ ok: true, value: 0x50n }); // PPR
    expect(r(a, TPR)).toBe(0xffffffff);
    w(a, TPR, 0);
    expect(a.readMsr(0x808)).toEqual({ ok: true, value: 0x50n });
    expect(a.writeMsr(0x838, 10n).ok).toBe(true);
    a.tick(2 * 4);
    expect(a.readMsr(0x839)).toEqual({ ok: true, value: 6n });
  });

  it('raises #GP for the x2APIC access rules', () => {
    const a = x2(1);
    const gp = (res: { ok: boolean }) => expect(res.ok).toBe(false);
    gp(a.readMsr(0x80b)); // EOI is write-only
    gp(a.readMsr(0x83f)); // SELF IPI is write-only
    gp(a.writeMsr(0x80b, 1n)); // non-zero EOI
    gp(a.writeMsr(0x828, 1n)); // non-zero ESR
    gp(a.writeMsr(0x802, 5n)); // ID is read-only
    gp(a.writeMsr(0x80a, 0n)); // PPR is read-only
    gp(a.writeMsr(0x80d, 0n)); // LDR is read-only in x2APIC mode
    gp(a.writeMsr(0x820, 0n)); // IRR is read-only
    gp(a.readMsr(0x80e)); // no DFR
    gp(a.readMsr(0x831)); // no ICR high half
    gp(a.readMsr(0x809)); // no APR
    gp(a.readMsr(0x8ff)); // reserved
    gp(a.writeMsr(0x808, 0x100n)); // TPR bits 31:8 reserved
    gp(a.writeMsr(0x80f, 0x1000n)); // SVR bit 12 (no EOI-broadcast suppression)
    gp(a.writeMsr(0x832, 1n << 18n)); // no TSC-deadline mode
    gp(a.writeMsr(0x83e, 4n)); // divide configuration bit 2
    gp(a.writeMsr(0x838, 1n << 32n)); // bits 63:32 reserved
    gp(a.writeMsr(0x83f, 0x100n)); // SELF IPI bits 31:8
    expect(a.writeMsr(0x80b, 0n).ok).toBe(true);
    expect(a.writeMsr(0x828, 0n).ok).toBe(true);
    // In xAPIC mode the whole range faults.
    const xa = enabled(1);
    gp(xa.readMsr(0x802));
    gp(xa.writeMsr(0x808, 0n));
  });

  it('sends IPIs with a 32-bit destination through MSR 830H, and SELF IPI through 83FH', () => {
    const apics = [x2(0), x2(0x21), x2(0x22)];
    new ApicBusImpl(apics);
    const [a0, a1, a2] = apics as [LocalApic, LocalApic, LocalApic];
    expect(a0.writeMsr(0x830, (0x22n << 32n) | 0x4080n).ok).toBe(true); // physical, vector 80H
    expect([a1.pendingVector(), a2.pendingVector()]).toEqual([-1, 0x80]);
    expect(a0.readMsr(0x830)).toEqual({ ok: true, value: (0x22n << 32n) | 0x4080n });
    // Logical: cluster 2, member bits 1 and 2 → both.
    expect(a0.writeMsr(0x830, (0x00020006n << 32n) | 0x4881n).ok).toBe(true);
    expect([irrHas2(a1, 0x81), irrHas2(a2, 0x81)]).toEqual([true, true]);
    expect(a0.writeMsr(0x83f, 0x90n).ok).toBe(true);
    expect(a0.pendingVector()).toBe(0x90);
    expect(a0.writeMsr(0x830, 0x2000n << 4n).ok).toBe(false); // ICR reserved bit 17
  });
});

function irrHas2(a: LocalApic, v: number): boolean {
  const res = a.readMsr(0x820 + (v >> 5));
  return res.ok && ((res.value >> BigInt(v & 31)) & 1n) === 1n;
}
