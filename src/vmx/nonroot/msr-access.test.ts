// RDMSR and WRMSR in VMX non-root operation against the SDM rule, for random bitmaps: without "use MSR bitmaps"
// every access exits; with it, MSRs outside 0–1FFFH and C0000000H–C0001FFFH always exit, and inside them exactly
// the bit of the access's quarter decides (bit n mod 8 of byte n / 8, least significant first). The MSR is ECX:
// bits 63:32 of RCX play no part. See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" and
// "MSR-Bitmap Address".
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { read, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const QUARTER = { read: { low: 0, high: 1024 }, write: { low: 2048, high: 3072 } } as const;

// In-range MSRs the machine has, whose native RDMSR and WRMSR of 0 do the guest no harm (the access runs natively
// when its bit is clear), and MSRs outside both ranges (no bit: they always exit, so they never run natively).
const IN_RANGE = [0x174, 0x175, 0x176, 0xc0000082, 0xc0000084, 0xc0000102];
const OUTSIDE = [0x2000, 0x3fff, 0x40000000, 0xbfffffff, 0xc0002000, 0xffffffff];

type Access = 'read' | 'write';

/** Byte offset and bit of `msr` for `access`, or null outside both ranges (the model this test checks against). */
function bitOf(msr: number, access: Access): { byte: number; bit: number } | null {
  const range = msr <= 0x1fff ? 'low' : msr >= 0xc0000000 && msr <= 0xc0001fff ? 'high' : null;
  if (range === null) return null;
  const n = msr & 0x1fff;
  return { byte: QUARTER[access][range] + (n >> 3), bit: n & 7 };
}

function run(msr: number, access: Access, opts: { bitmaps: boolean; setBits: readonly { byte: number; bit: number }[]; rcxHigh: number }) {
  const rcx = (BigInt(opts.rcxHigh >>> 0) << 32n) | BigInt(msr >>> 0);
  return runRecordedGuest({
    source: `
      bits 64
      mov rcx, 0x${rcx.toString(16)}
      xor eax, eax
      xor edx, edx
    insn:
      ${access === 'read' ? 'rdmsr' : 'wrmsr'}
      cpuid`,
    setup: (host, cpu) => {
      const k = host.kernel;
      const page = k.get_zeroed_page();
      for (const b of opts.setBits) k.write8(page + BigInt(b.byte), k.read8(page + BigInt(b.byte)) | (1 << b.bit));
      const proc = read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') & ~BigInt(C.CPU_BASED_USE_MSR_BITMAPS);
      write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', opts.bitmaps ? proc | BigInt(C.CPU_BASED_USE_MSR_BITMAPS) : proc);
      write(host, cpu, 'MSR_BITMAP', k.virt_to_phys(page));
    },
  });
}

describe('RDMSR/WRMSR exits by MSR bitmap', () => {
  it('exits exactly when the SDM says: no bitmaps, an MSR outside both ranges, or the bit of its quarter set', () => {
    const position = fc.record({ byte: fc.integer({ min: 0, max: 4095 }), bit: fc.integer({ min: 0, max: 7 }) });
    fc.assert(fc.property(
      fc.constantFrom(...IN_RANGE, ...OUTSIDE), fc.constantFrom<Access>('read', 'write'), fc.boolean(),
      fc.array(position, { maxLength: 6 }), fc.boolean(), fc.integer({ min: 0, max: 0xffffffff }),
      (msr, access, bitmaps, randomBits, ownBit, rcxHigh) => {
        const own = bitOf(msr, access);
        // Also the neighbours of its bit and the same MSR's bit for the other access: none of them may count.
        const other = bitOf(msr, access === 'read' ? 'write' : 'read');
        const decoys = own === null ? [] : [{ byte: own.byte, bit: own.bit ^ 1 }, { byte: own.byte ^ 1, bit: own.bit }, ...(other ? [other] : [])];
        const setBits = [...randomBits, ...decoys, ...(ownBit && own !== null ? [own] : [])];
        const ownSet = own !== null && setBits.some((b) => b.byte === own.byte && b.bit === own.bit);
        const exits = !bitmaps || own === null || ownSet;

        const r = run(msr, access, { bitmaps, setBits, rcxHigh });
        const e = r.exits[0];
        const what = `${access === 'read' ? 'RDMSR' : 'WRMSR'} ${msr.toString(16)}H (RCX[63:32] = ${rcxHigh.toString(16)}H), ` +
          `use MSR bitmaps = ${bitmaps ? 1 : 0}, ${own === null ? 'outside both ranges' : `its bit (byte ${own.byte}, bit ${own.bit}) ${ownSet ? 'set' : 'clear'}`}`;
        expect(e, `${what}: the guest did not exit at all. ${r.why()}`).toBeDefined();
        const want = exits ? BigInt(access === 'read' ? EXIT_REASON.EXIT_REASON_MSR_READ : EXIT_REASON.EXIT_REASON_MSR_WRITE) : CPUID;
        expect(e!.reason, `${what}: first exit should be ${exits ? 'the MSR access itself' : 'the CPUID after it (no exit)'}. ${r.why()}`).toBe(want);
        if (exits) {
          expect(e!.guestRip, `${what}: GUEST_RIP names the ${access === 'read' ? 'RDMSR' : 'WRMSR'}`).toBe(BigInt(r.guest.labels.get('insn')!));
          expect(e!.instructionLength, `${what}: VM_EXIT_INSTRUCTION_LEN is 2 (0F 32 / 0F 30)`).toBe(2n);
          expect(e!.qualification, `${what}: EXIT_QUALIFICATION is cleared for MSR exits`).toBe(0n);
        }
      },
    ), { numRuns: 80 });
  });
});
