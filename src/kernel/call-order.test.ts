// "Any VMWRITE value, any region contents, any call order from learner code ends in an architectural
// outcome or an oops report — never a raw JS exception, never a hang." Random programs of privileged
// operations, run as module init on a booted host: each run must end in a loaded module or an oops
// whose cause is a CPU fault (never a JS error from inside the emulator), and the machine must then
// stop within its instruction budget.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { bootHost } from './boot-host.ts';
import type { HostCpu } from './host-cpu.ts';
import type { Kernel } from './kernel.ts';
import { VMCS_FIELDS } from '../vmx/fields.ts';

type Op = (k: Kernel, cpu: HostCpu, pages: bigint[]) => void;

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const encodings = fc.oneof(fc.constantFrom(...VMCS_FIELDS.map((f) => f.encoding)), fc.integer({ min: 0, max: 0xffffffff }));
/** Physical addresses: our pages (often right), near misses, and anything at all. */
const pageIndex = fc.integer({ min: 0, max: 3 });
const address = (pick: number, raw: bigint, pages: bigint[], k: Kernel): bigint => {
  switch (pick) {
    case 0: return k.virt_to_phys(pages[Number(raw % 4n)]!);
    case 1: return k.virt_to_phys(pages[Number(raw % 4n)]!) + (raw % 4096n);
    default: return raw;
  }
};

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ pick: fc.integer({ min: 0, max: 2 }), raw: u64 }).map(({ pick, raw }): Op => (k, cpu, pages) => cpu.vmxon(address(pick, raw, pages, k))),
  fc.record({ pick: fc.integer({ min: 0, max: 2 }), raw: u64 }).map(({ pick, raw }): Op => (k, cpu, pages) => cpu.vmclear(address(pick, raw, pages, k))),
  fc.record({ pick: fc.integer({ min: 0, max: 2 }), raw: u64 }).map(({ pick, raw }): Op => (k, cpu, pages) => cpu.vmptrld(address(pick, raw, pages, k))),
  fc.record({ enc: encodings, v: u64 }).map(({ enc, v }): Op => (_k, cpu) => cpu.vmwrite(enc, v)),
  encodings.map((enc): Op => (_k, cpu) => void cpu.vmread(enc)),
  fc.constant<Op>((_k, cpu) => void cpu.vmptrst()),
  fc.constant<Op>((_k, cpu) => cpu.vmlaunch()),
  fc.constant<Op>((_k, cpu) => cpu.vmresume()),
  fc.constant<Op>((_k, cpu) => cpu.vmxoff()),
  fc.record({ type: u64, eptp: u64 }).map(({ type, eptp }): Op => (_k, cpu) => cpu.invept(type, eptp)),
  fc.constant<Op>((_k, cpu) => cpu.writeCr4(cpu.readCr4() | (1n << 13n))),
  fc.constant<Op>((_k, cpu) => cpu.wrmsr(0x3a, 5n)),
  fc.record({ i: pageIndex, off: fc.integer({ min: 0, max: 4092 }), v: fc.integer() }).map(({ i, off, v }): Op => (k, _cpu, pages) => k.write32(pages[i]! + BigInt(off), v)),
  fc.record({ i: pageIndex, rev: fc.boolean() }).map(({ i, rev }): Op => (k, cpu, pages) => k.write32(pages[i]!, rev ? Number(cpu.rdmsr(0x480) & 0x7fffffffn) : 0x80000000)),
);

describe('any call order from module code', () => {
  test('ends in an architectural outcome or an oops, and the machine stops within its budget', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), fc.constantFrom('skylake-i5-6300u', 'penryn-core2-duo-t9600', 'alderlake-i7-12700'), (ops, model) => {
        const { kernel } = bootHost({ model, ramMiB: 64 });
        const r = kernel.insmod({
          name: 'random',
          init: (k) => {
            const pages = [0, 1, 2, 3].map(() => k.get_zeroed_page());
            for (const o of ops) o(k, k.cpu(), pages);
            return 0;
          },
        });
        if (!r.ok) {
          // A fault the CPU raised (#UD, #GP, #PF), reported as an oops — never a JS error from inside the kit.
          expect(r.oops?.vector ?? -1, r.oops?.text).toBeGreaterThanOrEqual(0);
        }
        const run = kernel.run({ maxInstructions: 20_000 });
        expect(['all-halted', 'budget', 'shutdown']).toContain(run.reason);
      }),
      { numRuns: 150 },
    );
  });
});
