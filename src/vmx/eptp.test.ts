// One EPTP rule for VM entry and INVEPT: single-context INVEPT accepts exactly the EPTPs VM entry accepts, on every
// model and on made-up capabilities with 5-level EPT. Expected values follow SDM Vol. 3C, "Extended-Page-Table
// Pointer (EPTP)" (page-walk length 4 valid iff IA32_VMX_EPT_VPID_CAP[6], 5 iff bit 7) and "INVEPT".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../machine/cpu-model.ts';
import { supportsInvept, type VmxCapabilities } from './capabilities.ts';
import { VMX_CONTROL as C } from './controls.ts';
import { capabilitiesOf } from './emulated-msrs.ts';
import { CONTROL_CHECKS } from './entry/controls.ts';
import { EntryView } from './entry/view.ts';
import { EPTP, eptpProblem, eptWalkLengths } from './eptp.ts';
import { invept, INVEPT_SINGLE_CONTEXT } from './instructions/invept-invvpid.ts';
import { EPT_VPID_CAP } from './msrs.ts';
import { setupWithVmcs } from './testing/instruction-harness.ts';
import { FakeTransitionCpu } from './testing/fake-transition-cpu.ts';
import { vmcsAccessOf } from './transition/vmcs-access.ts';
import { ActiveVmcs } from './vmcs.ts';

const WIDTH = 39; // the fake LPs' physical-address width
const EPTP_RULES = ['eptp-memory-type', 'eptp-walk-length', 'eptp-accessed-dirty', 'eptp-reserved'];

/** Capabilities with the page-walk-length bits (6 and 7) of IA32_VMX_EPT_VPID_CAP replaced. */
function withWalkLengths(caps: VmxCapabilities, four: boolean, five: boolean): VmxCapabilities {
  const walk = EPT_VPID_CAP.VMX_EPT_PAGE_WALK_4_BIT | EPT_VPID_CAP.VMX_EPT_PAGE_WALK_5_BIT;
  const bits = (four ? EPT_VPID_CAP.VMX_EPT_PAGE_WALK_4_BIT : 0n) | (five ? EPT_VPID_CAP.VMX_EPT_PAGE_WALK_5_BIT : 0n);
  return { ...caps, eptVpidCap: (caps.eptVpidCap & ~walk) | bits };
}

/** Does VM entry (its EPTP rules, with "enable EPT" = 1) accept `eptp`? */
function entryAccepts(caps: VmxCapabilities, eptp: bigint): boolean {
  const vmcs = vmcsAccessOf(new ActiveVmcs(0x1000n));
  vmcs.write('CPU_BASED_VM_EXEC_CONTROL', BigInt(C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS >>> 0));
  vmcs.write('SECONDARY_VM_EXEC_CONTROL', BigInt(C.SECONDARY_EXEC_ENABLE_EPT));
  vmcs.write('EPT_POINTER', eptp);
  const v = new EntryView({ cpu: new FakeTransitionCpu(caps, WIDTH), vmcs, caps, instruction: 'VMLAUNCH', vmcsPointer: 0x1000n });
  return CONTROL_CHECKS.filter((c) => EPTP_RULES.includes(c.id)).every((c) => c.check(v) === true);
}

/** Does single-context INVEPT accept `eptp`? */
function inveptAccepts(caps: VmxCapabilities, eptp: bigint): boolean {
  const ctx = setupWithVmcs(caps);
  const out = invept(ctx, { kind: 'value', value: BigInt(INVEPT_SINGLE_CONTEXT) }, { kind: 'descriptor', low: eptp, high: 0n });
  return out.kind === 'VMsucceed';
}

const skylake = capabilitiesOf(CPU_MODELS.find((m) => m.name === 'skylake-i5-6300u')!);
const CAPS: readonly [string, VmxCapabilities][] = [
  ...CPU_MODELS.map((m) => [m.name, capabilitiesOf(m)] as [string, VmxCapabilities])
    .filter(([, c]) => supportsInvept(c) && (c.eptVpidCap & EPT_VPID_CAP.VMX_EPT_EXTENT_CONTEXT_BIT) !== 0n),
  ['skylake with 4- and 5-level EPT', withWalkLengths(skylake, true, true)],
  ['skylake with 5-level EPT only', withWalkLengths(skylake, false, true)],
];

/** EPTPs near the valid ones: any memory type, walk length, A/D bit, reserved bits 11:7, bits at MAXPHYADDR. */
const eptps = fc.record({
  type: fc.integer({ min: 0, max: 7 }),
  walkMinus1: fc.integer({ min: 0, max: 7 }),
  ad: fc.boolean(),
  reserved: fc.constantFrom(0n, 1n << 7n, 1n << 9n, 1n << 11n),
  high: fc.constantFrom(0n, 1n << BigInt(WIDTH), 1n << 63n),
  page: fc.bigInt({ min: 1n, max: (1n << BigInt(WIDTH - 12)) - 1n }),
}).map((e) => (e.page << 12n) | e.high | e.reserved | (e.ad ? EPTP.ACCESSED_DIRTY : 0n) | (BigInt(e.walkMinus1) << EPTP.WALK_LENGTH_SHIFT) | BigInt(e.type));

describe('EPTP validity is defined once', () => {
  it.each(CAPS)('%s: INVEPT accepts exactly the EPTPs VM entry accepts', (_name, caps) => {
    fc.assert(fc.property(eptps, (eptp) => {
      const valid = eptpProblem(eptp, caps, WIDTH) === null;
      expect(entryAccepts(caps, eptp), 'VM entry').toBe(valid);
      expect(inveptAccepts(caps, eptp), 'INVEPT').toBe(valid);
    }), { seed: 51, numRuns: 60 });
  });

  it('page-walk length 4 is valid iff IA32_VMX_EPT_VPID_CAP[6], 5 iff bit 7', () => {
    const eptp = (walk: number): bigint => 0x5000n | 6n | (BigInt(walk - 1) << 3n);
    for (const four of [false, true]) {
      for (const five of [false, true]) {
        const caps = withWalkLengths(skylake, four, five);
        expect(eptWalkLengths(caps)).toEqual([...(four ? [4] : []), ...(five ? [5] : [])]);
        for (const [walk, ok] of [[4, four], [5, five], [3, false], [6, false]] as const) {
          expect([four, five, walk, eptpProblem(eptp(walk), caps, WIDTH) === null]).toEqual([four, five, walk, ok]);
          expect([four, five, walk, entryAccepts(caps, eptp(walk)), inveptAccepts(caps, eptp(walk))]).toEqual([four, five, walk, ok, ok]);
        }
      }
    }
  });

  it('names the part that is wrong, first in VM-entry order', () => {
    const caps = skylake;
    expect(eptpProblem(0x5000n | 3n | (3n << 3n), caps, WIDTH)?.part).toBe('memory-type');
    expect(eptpProblem(0x5000n | 6n | (4n << 3n), caps, WIDTH)?.part).toBe('walk-length');
    expect(eptpProblem(0x5000n | 3n | (4n << 3n), caps, WIDTH, ['walk-length', 'reserved'])?.part).toBe('walk-length');
    expect(eptpProblem(0x5000n | 6n | (3n << 3n) | (1n << 8n), caps, WIDTH)?.part).toBe('reserved');
    expect(eptpProblem(0x5000n | 6n | (3n << 3n) | (1n << BigInt(WIDTH)), caps, WIDTH)?.message).toContain(`bits 63:${WIDTH}`);
  });
});
