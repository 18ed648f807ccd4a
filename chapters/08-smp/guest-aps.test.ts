// Exercise 8.4 — the guest starts its APs with INIT-SIPI-SIPI. The kit runs a real-mode MP guest (one vCPU per host
// CPU, the APs launched halted) and calls your handlers for its WRMSR, INIT and SIPI exits. Checked: every AP ran
// from the page its SIPI named, each AP's exits are INIT, SIPI, HLT and the BSP's are its WRMSRs and HLT; on 1, 2
// and 4 CPUs, several seeds, every model that can run a real-mode guest. Expectations come from the SDM's rules
// and the guest's program, never from the reference solution.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeX2apicIcr, onWrmsr, onInit, onSipi, sipiState } from '#impl/08-smp/guest-aps';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { CPU_COUNTS, DEFAULT_MODEL, MP_MODELS, SMP_GUEST_LAYOUT, bootSmp, runMpGuest } from './support.ts';

const { EXIT_REASON_INIT_SIGNAL: INIT, EXIT_REASON_SIPI_SIGNAL: SIPI, EXIT_REASON_MSR_WRITE: WRMSR, EXIT_REASON_HLT: HLT } = EXIT_REASON;
const handlers = { onWrmsr, onInit, onSipi };

describe('decodeX2apicIcr and sipiState', () => {
  test('every field of any 64-bit ICR value', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
      const bits = v.toString(2).padStart(64, '0'); // bits[63 - n] is bit n
      const at = (hi: number, lo: number) => parseInt(bits.slice(63 - hi, 64 - lo), 2);
      const want = { vector: at(7, 0), deliveryMode: at(10, 8), assert: at(14, 14) === 1, shorthand: at(19, 18), destination: at(63, 32) };
      const got = decodeX2apicIcr(v);
      expect({ vector: got.vector, deliveryMode: got.deliveryMode, assert: got.assert, shorthand: got.shorthand, destination: got.destination },
        `ICR 0x${v.toString(16)}: vector is bits 7:0, delivery mode 10:8, level (assert) bit 14, shorthand 19:18, destination 63:32`).toEqual(want);
    }));
  });

  test('a SIPI with vector V starts the AP at (V << 8):0000, CS.base V << 12', () => {
    for (let v = 0; v < 256; v++) {
      expect(sipiState(v), `vector 0x${v.toString(16)}`).toEqual({ csSelector: v << 8, csBase: v << 12, rip: 0 });
    }
    expect(sipiState(0x108), 'only bits 7:0 of the vector count').toEqual({ csSelector: 0x800, csBase: 0x8000, rip: 0 });
  });
});

describe('onWrmsr forwards only what it can', () => {
  /** A host CPU with the guest's registers as a WRMSR left them, and a record of what onWrmsr sends. */
  function wrmsr(cpus: number, ecx: bigint, value: bigint): { action: ReturnType<typeof onWrmsr>; sent: [number, number][] } {
    const host = bootSmp({ cpus });
    const k = host.kernel;
    const sent: [number, number][] = [];
    k.apic_icr_write = (low: number, id: number) => void sent.push([low, id]);
    const cpu = k.cpu();
    cpu.writeGpr('rcx', ecx);
    cpu.writeGpr('rax', 0xdead_0000_0000_0000n | (value & 0xffffffffn));
    cpu.writeGpr('rdx', 0xbeef_0000_0000_0000n | (value >> 32n));
    return { action: onWrmsr(k, cpu), sent };
  }

  test('INIT and start-up to an existing vCPU: forwarded as they are, and the WRMSR skipped', () => {
    const init = wrmsr(4, 0x830n, (3n << 32n) | 0x4500n);
    expect(init.action, 'a forwarded WRMSR is emulated: SKIP it').toEqual({ kind: 'skip' });
    expect(init.sent, 'apic_icr_write(ICR bits 31:0, destination) — bits 63:32 of RAX and RDX are not part of the value').toEqual([[0x4500, 3]]);
    const sipi = wrmsr(2, 0xffff_ffff_0000_0830n, (1n << 32n) | 0x4608n);
    expect(sipi.sent, 'ECX is the low 32 bits of RCX').toEqual([[0x4608, 1]]);
  });

  test('another MSR, another delivery mode, a missing vCPU or a shorthand: stop, and say why', () => {
    const cases: [string, bigint, bigint, number, RegExp][] = [
      ['MSR 10H (the TSC)', 0x10n, 0n, 2, /0x10|10H/i],
      ['a fixed interrupt', 0x830n, (1n << 32n) | 0x00fbn, 2, /delivery mode 0|fixed/i],
      ['an NMI', 0x830n, (1n << 32n) | 0x0400n, 2, /delivery mode 4|NMI/i],
      ['INIT to APIC ID 1 on a 1-CPU host', 0x830n, (1n << 32n) | 0x4500n, 1, /1/],
      ['INIT to all excluding self', 0x830n, 0xc4500n, 4, /shorthand/i],
    ];
    for (const [what, ecx, value, cpus, names] of cases) {
      const r = wrmsr(cpus, ecx, value);
      expect(r.action.kind, `${what}: this hypervisor cannot forward it — stop the guest`).toBe('stop');
      if (r.action.kind === 'stop') expect(r.action.why, `${what}: the reason must name what was refused`).toMatch(names);
      expect(r.sent, `${what}: nothing may be sent`).toEqual([]);
    }
  });
});

describe('the guest starts its APs', () => {
  const runs = [
    ...CPU_COUNTS.flatMap((cpus) => [1, 2, 3].map((seed) => ({ model: DEFAULT_MODEL, cpus, seed }))),
    ...MP_MODELS.filter((m) => m !== DEFAULT_MODEL).map((model, i) => ({ model, cpus: 2, seed: 200 + i })),
  ];
  test.each(runs)('$model, $cpus CPU(s), seed $seed: every AP runs from its SIPI page; the exits are as the protocol says', (run) => {
    const t = runMpGuest(handlers, run);
    const aps = run.cpus - 1;
    t.stopped.forEach((why, c) => expect(why, `CPU ${c}: a handler stopped the vCPU\n${t.why()}`).toBeNull());
    expect(t.counter, `every AP must check in (the guest's counter at ${SMP_GUEST_LAYOUT.counter.toString(16)}H)\n${t.why()}`).toBe(aps);
    const tickets = Array.from({ length: aps }, (_, i) => String(i + 1)).join('');
    expect(t.host.console.text(), `each AP writes its ticket to port E9H, then the BSP a B\n${t.why()}`).toBe(`${tickets}B`);
    expect(t.exits[0]!.map((e) => e.reason), `the BSP: three WRMSRs to the ICR per AP (INIT, SIPI, SIPI), then HLT\n${t.why()}`).toEqual([...Array<number>(3 * aps).fill(WRMSR), HLT]);
    for (let ap = 1; ap <= aps; ap++) {
      const ex = t.exits[ap]!;
      expect(ex.map((e) => e.reason), `CPU ${ap}: INIT (the AP was halted), SIPI (it waited for it), HLT (its program ran). A second SIPI exit means onInit did not set wait-for-SIPI, or onSipi did not make it active; none means the INIT was not forwarded.\n${t.why()}`).toEqual([INIT, SIPI, HLT]);
      const hlt = ex[2]!;
      const v = SMP_GUEST_LAYOUT.sipiVector;
      expect({ cs: hlt.csSelector, base: hlt.csBase, rip: hlt.rip }, `CPU ${ap}: the AP ran from CS = ${(v << 8).toString(16)}H, base ${(v << 12).toString(16)}H, IP 0 to its HLT\n${t.why()}`).toEqual({ cs: v << 8, base: BigInt(v << 12), rip: BigInt(t.apHalt) });
    }
  });
});
