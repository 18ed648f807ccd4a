// Exercise 9.3 — re-injecting from the IDT-vectoring information, on every model with EPT (the guard is an EPT
// read-only stack page); models without EPT must refuse the part. Each run makes the guest's stack read-only in EPT,
// then an event is delivered (injected by the kit on the guest's VMCALL, or the guest's own INT3): the processor's first push is an EPT violation during event delivery (exit 48 with
// IDT_VECTORING_INFO_FIELD valid). An external interrupt, an injected #GP with its error code and an injected INT n
// are lost unless re-injected; the guest's own INT3 comes back by itself, but only at the right RIP if the
// re-injection carries its instruction length.
import { describe, expect, test } from 'vitest';
import { stackGuardPart } from '#impl/09-events/reinject';
import { EPT_MODELS, NO_EPT_MODELS, describeSeen, seen, eventGuest, hex, installIdt, runPart, type Host } from './support.ts';
import { poke, write, read } from '../05-exits/support.ts';
import type { VmmPart } from '#impl/05-exits/hypervisor';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';

const VECTORS = [3, 13, 0x40, 0x41];
const VMCALL = 18;
/** IDT-vectoring information bit 12 is undefined (VMX Lab poisons it with 1); in the injection field it is reserved. */
const UNDEFINED_BIT12 = 1 << 12;
const GUEST = eventGuest(`
start:  vmcall                          ; the kit injects the event here (SKIP: delivered at the next entry)
after:  nop
        nop
        hlt
own:    int3                            ; case 'own INT3' starts here
after3: hlt
`, VECTORS, undefined, `
align 4096
stack:  times 4096 db 0
`);

const DURING_DELIVERY_RULE = 'SDM Vol. 3C, "Information for VM Exits That Occur During Event Delivery": IDT_VECTORING_INFO_FIELD (valid bit 31, type, vector, bit 11 error code in IDT_VECTORING_ERROR_CODE) names the event being delivered; ' +
  'it was not delivered, so the VMM injects it again at the next VM entry (with VM_ENTRY_INSTRUCTION_LEN = VM_EXIT_INSTRUCTION_LEN for types 4, 5, 6)';

interface Case {
  readonly name: string;
  /** What the kit injects when the guest's VMCALL exits (info, error code, length), or null. */
  readonly inject: readonly [number, number, number] | null;
  readonly entry: string;
  /** The event the guest must see: vector, error code (-1 none), label of the pushed RIP and offset. */
  readonly want: readonly [number, bigint, string, number];
}
const CASES: readonly Case[] = [
  { name: 'external interrupt 40H', inject: [0x80000040, 0, 0], entry: 'start', want: [0x40, -1n, 'after', 0] },
  { name: 'hardware exception #GP(18H)', inject: [0x80000b0d, 0x18, 0], entry: 'start', want: [13, 0x18n, 'after', 0] },
  { name: 'software interrupt INT 41H, length 2', inject: [0x80000441, 0, 2], entry: 'start', want: [0x41, -1n, 'after', 2] },
  { name: 'the guest\'s own INT3', inject: null, entry: 'own', want: [3, -1n, 'after3', 0] },
];

function prepare(c: Case) {
  return (h: Host, cpu: HostCpu, g: { labels: ReadonlyMap<string, number> } & Parameters<typeof installIdt>[2]): void => {
    installIdt(h, cpu, g, VECTORS);
    write(h, cpu, 'GUEST_RIP', BigInt(g.labels.get(c.entry)!));
    write(h, cpu, 'GUEST_RSP', BigInt(g.labels.get('stack')!) + 4096n);
    write(h, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | (1n << 9n)); // IF = 1: an external interrupt may be injected
  };
}

/** Your part, plus the kit's VMCALL handler: it writes the case's event into the injection fields and SKIPs. */
function withKitVmcall(part: VmmPart, c: Case): VmmPart {
  return {
    ...part,
    handlers: {
      ...part.handlers,
      [VMCALL]: (v) => {
        if (c.inject === null) return { kind: 'stop', why: 'kit: no VMCALL expected' };
        poke(v.cpu, 'VM_ENTRY_EXCEPTION_ERROR_CODE', c.inject[1]);
        poke(v.cpu, 'VM_ENTRY_INSTRUCTION_LEN', c.inject[2]);
        poke(v.cpu, 'VM_ENTRY_INTR_INFO_FIELD', c.inject[0]);
        return { kind: 'skip' };
      },
    },
  };
}

describe('stackGuardPart', () => {
  for (const c of CASES) {
    test.each(EPT_MODELS.map((m) => [m]))(`%s: ${c.name}, delivered onto the guarded stack`, (model) => {
      const part = stackGuardPart({ page: (v) => BigInt(v.guest.labels.get('stack')!) });
      const run = runPart({ model, part: withKitVmcall(part, c), source: GUEST, before: prepare(c) });
      const at = (l: string): bigint => BigInt(run.guest.labels.get(l)!);
      expect(run.outcome.kind, run.why('the guest should reach a HLT')).toBe('halted');
      const stack = at('stack');
      const wantInfo = c.inject?.[0] ?? 0x80000603;
      expect(part.faults.map((f) => `${hex(f.gpa & ~0xfffn)} ${hex((f.idtVectoring & ~UNDEFINED_BIT12) >>> 0)}`), run.why(`one EPT violation, on the stack page, during the delivery of the event (IDT_VECTORING_INFO_FIELD ${hex(wantInfo)}; bit 12 is undefined there and not compared). ${DURING_DELIVERY_RULE}`))
        .toEqual([`${hex(stack)} ${hex(wantInfo)}`]);
      const got = seen(run);
      const [vector, code, label, off] = c.want;
      const row = (v: number, e: bigint, rip: bigint): string => `vector ${v}, error code ${e < 0n ? 'none' : hex(e)}, pushed RIP ${hex(rip)}`;
      const lost = got.length === 0 ? ' The event never reached the guest: it was lost with the exit — re-inject it from IDT_VECTORING_INFO_FIELD.' : '';
      expect(got.map((e) => row(e.vector, e.errorCode, e.rip)), run.why(`the guest's handlers saw: ${describeSeen(got)}.${lost} ${DURING_DELIVERY_RULE}`)).toEqual([row(vector, code, at(label) + BigInt(off))]);
    });
  }
  test.each(NO_EPT_MODELS.map((m) => [m]))('%s: no EPT — the part\'s control request is refused', (model) => {
    const run = runPart({ model, part: stackGuardPart({ page: (v) => BigInt(v.guest.labels.get('stack')!) }), source: GUEST });
    expect(run.outcome.kind, run.why('this model cannot set "enable EPT": the part must ask for it (controls.proc2.want) so the kit refuses it')).toBe('controls');
  });
});

