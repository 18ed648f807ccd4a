import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeEptVpidCap, decodeVmxMisc, makeEptp, type EptpResult, type EptVpidCaps } from '#impl/03-capabilities/misc-ept';
import { decodeCapabilities } from '#src/vmx/capabilities';
import { CPU_MODELS } from '#src/machine/cpu-model';
import {
  IA32_VMX_EPT_VPID_CAP, IA32_VMX_MISC, IA32_VMX_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS2, arbCapabilityMsrs, fakeMsrs,
  hex, maxPhysAddrOf, realModel, realModels, type FakeMsrs,
} from './fixtures.ts';

function noFaults(m: FakeMsrs): void {
  if (m.faults.length === 0) return;
  expect(m.faults.map(hex), `${m.name}: your code read MSR(s) this processor does not implement — real hardware raises #GP and the kernel oopses`).toEqual([]);
}
const has = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;

/** Does IA32_VMX_EPT_VPID_CAP exist, and may "enable EPT" be 1? Read straight from the raw MSR values. */
function eptFacts(m: FakeMsrs): { capExists: boolean; ept: boolean } {
  const proc = m.msrs.get(IA32_VMX_PROCBASED_CTLS) ?? 0n;
  const proc2 = has(proc, 63) ? (m.msrs.get(IA32_VMX_PROCBASED_CTLS2) ?? 0n) : 0n;
  return { capExists: has(proc2, 32 + 1) || has(proc2, 32 + 5), ept: has(proc2, 32 + 1) };
}

/** The expected decoding, bit by bit from SDM Vol. 3D, "VPID and EPT Capabilities". */
function expectedCaps(cap: bigint): EptVpidCaps {
  return {
    executeOnly: has(cap, 0), pageWalkLength4: has(cap, 6), pageWalkLength5: has(cap, 7), memoryTypeUC: has(cap, 8),
    memoryTypeWB: has(cap, 14), pages2M: has(cap, 16), pages1G: has(cap, 17), accessedDirty: has(cap, 21),
    advancedExitInfo: has(cap, 22),
    invept: { supported: has(cap, 20), singleContext: has(cap, 25), allContext: has(cap, 26) },
    invvpid: { supported: has(cap, 32), individualAddress: has(cap, 40), singleContext: has(cap, 41), allContext: has(cap, 42), singleContextRetainingGlobals: has(cap, 43) },
  };
}

/** The EPTP the SDM asks for (Vol. 3C, "Extended-Page-Table Pointer (EPTP)"), computed independently. */
function expectedEptp(m: FakeMsrs, pml4: bigint, maxPhysAddr: number, wantAd: boolean): EptpResult {
  const { ept } = eptFacts(m);
  if (!ept) return { ok: false, reason: 'EPT not supported' };
  const cap = m.msrs.get(IA32_VMX_EPT_VPID_CAP) ?? 0n;
  if (!has(cap, 6)) return { ok: false, reason: 'page-walk length 4 not supported' };
  if (!has(cap, 14) && !has(cap, 8)) return { ok: false, reason: 'no supported EPT memory type' };
  if (pml4 % 4096n !== 0n) return { ok: false, reason: 'PML4 address not 4-KByte aligned' };
  if (pml4 >= 2n ** BigInt(maxPhysAddr)) return { ok: false, reason: 'PML4 address beyond MAXPHYADDR' };
  const wb = has(cap, 14);
  const ad = wantAd && has(cap, 21);
  // memory type in bits 2:0 (6 = WB, 0 = UC), page-walk length - 1 in bits 5:3, A/D enable in bit 6.
  const eptp = pml4 + (wb ? 6n : 0n) + 3n * 8n + (ad ? 64n : 0n);
  return { ok: true, eptp, memoryType: wb ? 'WB' : 'UC', accessedDirty: ad };
}

const show = (r: EptpResult) => (r.ok ? `{ ok: true, eptp: ${hex(r.eptp)}, memoryType: ${r.memoryType}, accessedDirty: ${r.accessedDirty} }` : `{ ok: false, reason: '${r.reason}' }`);

describe('decodeVmxMisc', () => {
  test('Skylake i5-6300U, IA32_VMX_MISC = 7004C1E7H', () => {
    const m = realModel('skylake-i5-6300u');
    expect(decodeVmxMisc(m.rdmsr), 'IA32_VMX_MISC = 7004C1E7H: bits 4:0 = 7, bit 5 = 1, bits 8:6 = 7, bits 24:16 = 4, bits 27:25 = 0, bit 29 = 1, bit 30 = 1').toEqual({
      preemptionTimerRate: 7, storesEferLma: true, activityStates: { hlt: true, shutdown: true, waitForSipi: true },
      cr3TargetCount: 4, maxMsrListEntries: 512, vmwriteAnyField: true, zeroLengthInjection: true, msegRevisionId: 0,
    });
    noFaults(m);
  });
  test('Core 2 Duo T9600 (Penryn), IA32_VMX_MISC = 403C0H: no EFER.LMA store, no VMWRITE to exit-information fields', () => {
    const m = realModel('penryn-core2-duo-t9600');
    expect(decodeVmxMisc(m.rdmsr), 'IA32_VMX_MISC = 403C0H: bits 4:0 = 0, bit 5 = 0, bits 8:6 = 7, bits 24:16 = 4, bit 29 = 0, bit 30 = 0').toEqual({
      preemptionTimerRate: 0, storesEferLma: false, activityStates: { hlt: true, shutdown: true, waitForSipi: true },
      cr3TargetCount: 4, maxMsrListEntries: 512, vmwriteAnyField: false, zeroLengthInjection: false, msegRevisionId: 0,
    });
    noFaults(m);
  });
  test('MSR-list size is 512 * (N + 1) for N in bits 27:25; MSEG revision in bits 63:32', () => {
    const m = fakeMsrs('hand-made', new Map([[IA32_VMX_MISC, (0x1234n << 32n) | (5n << 25n) | (0x1ffn << 16n) | 0x1fn]]));
    expect(decodeVmxMisc(m.rdmsr), `IA32_VMX_MISC = ${hex(m.msrs.get(IA32_VMX_MISC)!)}: bits 4:0 = 1FH, bits 24:16 = 1FFH, bits 27:25 = 5, bits 63:32 = 1234H`).toEqual({
      preemptionTimerRate: 31, storesEferLma: false, activityStates: { hlt: false, shutdown: false, waitForSipi: false },
      cr3TargetCount: 511, maxMsrListEntries: 3072, vmwriteAnyField: false, zeroLengthInjection: false, msegRevisionId: 0x1234,
    });
  });
  test('agrees with the emulator\'s decoder on every real and generated model', () => {
    const one = (m: FakeMsrs) => {
      const d = decodeCapabilities(m.msrs).misc;
      const got = decodeVmxMisc(m.rdmsr);
      noFaults(m);
      expect(got, `${m.name}: IA32_VMX_MISC = ${hex(d.raw)}`).toEqual({
        preemptionTimerRate: d.preemptionTimerRate, storesEferLma: d.storesEferLma,
        activityStates: { hlt: d.activityHlt, shutdown: d.activityShutdown, waitForSipi: d.activityWaitForSipi },
        cr3TargetCount: d.cr3TargetCount, maxMsrListEntries: d.maxMsrListEntries, vmwriteAnyField: d.vmwriteAnyField,
        zeroLengthInjection: d.zeroLengthInjection, msegRevisionId: d.msegRevisionId,
      });
    };
    for (const m of realModels()) one(m);
    fc.assert(fc.property(arbCapabilityMsrs(), one), { numRuns: 200 });
  });
});

describe('decodeEptVpidCap', () => {
  test('Skylake i5-6300U (F0106334141H): A/D flags, 1-GByte pages, every INVEPT/INVVPID type', () => {
    const m = realModel('skylake-i5-6300u');
    expect(decodeEptVpidCap(m.rdmsr), 'IA32_VMX_EPT_VPID_CAP = F0106334141H, bit by bit from SDM Vol. 3D, "VPID and EPT Capabilities"').toEqual({
      executeOnly: true, pageWalkLength4: true, pageWalkLength5: false, memoryTypeUC: true, memoryTypeWB: true,
      pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: false,
      invept: { supported: true, singleContext: true, allContext: true },
      invvpid: { supported: true, individualAddress: true, singleContext: true, allContext: true, singleContextRetainingGlobals: true },
    });
    noFaults(m);
  });
  test('Ivy Bridge i5-3320M (F0106114141H): no EPT accessed/dirty flags, no 1-GByte pages', () => {
    const m = realModel('ivybridge-i5-3320m');
    const caps = decodeEptVpidCap(m.rdmsr);
    expect(caps, 'IA32_VMX_EPT_VPID_CAP = F0106114141H: bit 21 (A/D) = 0, bit 17 (1 GB) = 0, bit 16 (2 MB) = 1, bit 14 (WB) = 1, bit 6 (4-level walk) = 1').toMatchObject({ accessedDirty: false, pages1G: false, pages2M: true, memoryTypeWB: true, pageWalkLength4: true });
    noFaults(m);
  });
  test('Core 2 Duo T9600 (Penryn) has neither EPT nor VPID: null, without touching the missing MSR', () => {
    const m = realModel('penryn-core2-duo-t9600');
    expect(decodeEptVpidCap(m.rdmsr), 'Penryn: IA32_VMX_PROCBASED_CTLS2 allows neither "enable EPT" (bit 1) nor "enable VPID" (bit 5), so IA32_VMX_EPT_VPID_CAP does not exist').toBeNull();
    noFaults(m);
  });
  test('every real and generated model: bit for bit, null exactly when the MSR does not exist', () => {
    const one = (m: FakeMsrs) => {
      const got = decodeEptVpidCap(m.rdmsr);
      noFaults(m);
      const { capExists } = eptFacts(m);
      if (!capExists) {
        expect(got, `${m.name}: neither "enable EPT" nor "enable VPID" may be 1, so IA32_VMX_EPT_VPID_CAP does not exist`).toBeNull();
        return;
      }
      const cap = m.msrs.get(IA32_VMX_EPT_VPID_CAP) ?? 0n;
      expect(got, `${m.name}: IA32_VMX_EPT_VPID_CAP = ${hex(cap)}`).toEqual(expectedCaps(cap));
      // And the emulator's own reading of the same MSR.
      expect(decodeCapabilities(m.msrs).eptVpidCap, `${m.name}: the emulator's own decoder disagrees with the MSR value ${hex(cap)} (a kit bug)`).toBe(cap);
    };
    for (const m of realModels()) one(m);
    fc.assert(fc.property(arbCapabilityMsrs({ secondary: true }), one), { numRuns: 200 });
    fc.assert(fc.property(arbCapabilityMsrs(), one), { numRuns: 100 });
  });
});

describe('makeEptp', () => {
  test('Skylake: PML4 at 1000H gives 105EH (WB, 4-level, A/D on); without A/D 101EH', () => {
    const m = realModel('skylake-i5-6300u');
    expect(show(makeEptp(m.rdmsr, 0x1000n, { maxPhysAddr: 39 })), 'EPTP = PML4 1000H | bit 6 (A/D) 40H | (walk length 4 - 1) << 3 = 18H | WB memory type 6').toBe(show({ ok: true, eptp: 0x105en, memoryType: 'WB', accessedDirty: true }));
    expect(show(makeEptp(m.rdmsr, 0x1000n, { maxPhysAddr: 39, accessedDirty: false })), 'EPTP = PML4 1000H | 18H (4-level walk) | 6 (WB), bit 6 clear').toBe(show({ ok: true, eptp: 0x101en, memoryType: 'WB', accessedDirty: false }));
    noFaults(m);
  });
  test('Ivy Bridge has no EPT A/D flags (EPT_VPID_CAP[21] = 0): bit 6 must stay 0, or VMLAUNCH fails with error 7', () => {
    const m = realModel('ivybridge-i5-3320m');
    expect(show(makeEptp(m.rdmsr, 0x7ff000n, { maxPhysAddr: 36 })), 'IA32_VMX_EPT_VPID_CAP[21] = 0: asked for A/D by default, but bit 6 must stay 0').toBe(show({ ok: true, eptp: 0x7ff01en, memoryType: 'WB', accessedDirty: false }));
    noFaults(m);
  });
  test('Penryn has no EPT', () => {
    const m = realModel('penryn-core2-duo-t9600');
    expect(makeEptp(m.rdmsr, 0x1000n, { maxPhysAddr: 36 }), 'Penryn: IA32_VMX_PROCBASED_CTLS2 has no bit 1 ("enable EPT") in allowed-1').toEqual({ ok: false, reason: 'EPT not supported' });
    noFaults(m);
  });
  test('a PML4 address must be 4-KByte aligned and below 2^MAXPHYADDR', () => {
    const m = realModel('skylake-i5-6300u');
    expect(makeEptp(m.rdmsr, 0x1800n, { maxPhysAddr: 39 }), 'PML4 at 1800H: bits 11:0 are not 0').toEqual({ ok: false, reason: 'PML4 address not 4-KByte aligned' });
    expect(makeEptp(m.rdmsr, 1n << 39n, { maxPhysAddr: 39 }), 'PML4 at 2^39 = 80_0000_0000H with MAXPHYADDR 39: bit 39 is beyond the physical-address width').toEqual({ ok: false, reason: 'PML4 address beyond MAXPHYADDR' });
    expect(makeEptp(m.rdmsr, (1n << 39n) - 0x1000n, { maxPhysAddr: 39 }), 'PML4 at 7F_FFFF_F000H, the last page below 2^39: fine, EPTP = that | 5EH').toMatchObject({ ok: true, eptp: (1n << 39n) - 0x1000n + 0x5en });
    noFaults(m);
  });
  test('every real model, any page-aligned PML4 address, with and without A/D', () => {
    for (const model of CPU_MODELS) {
      const maxPhysAddr = maxPhysAddrOf(model.name);
      fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }), fc.boolean(), fc.boolean(), fc.boolean(), (a, aligned, inRange, wantAd) => {
        const m = realModel(model.name);
        const address = inRange ? a >> BigInt(52 - maxPhysAddr) : a;
        const pml4 = aligned ? address & ~0xfffn : address;
        const got = makeEptp(m.rdmsr, pml4, { maxPhysAddr, accessedDirty: wantAd });
        noFaults(m);
        const exp = expectedEptp(m, pml4, maxPhysAddr, wantAd);
        expect(show(got), `${m.name}: makeEptp(${hex(pml4)}, MAXPHYADDR ${maxPhysAddr}, accessedDirty ${wantAd})`).toBe(show(exp));
      }), { numRuns: 25 });
    }
  });
  test('generated models: EPT or not, WB or UC or neither, A/D or not', () => {
    fc.assert(fc.property(arbCapabilityMsrs(), fc.integer({ min: 32, max: 52 }), fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }), fc.boolean(), (m, maxPhysAddr, a, wantAd) => {
      const pml4 = (a & ~0xfffn) >> BigInt(52 - maxPhysAddr);
      const got = makeEptp(m.rdmsr, pml4, { maxPhysAddr, accessedDirty: wantAd });
      noFaults(m);
      const exp = expectedEptp(m, pml4, maxPhysAddr, wantAd);
      expect(show(got), `${m.name}: makeEptp(${hex(pml4)}, MAXPHYADDR ${maxPhysAddr}, accessedDirty ${wantAd}); EPT_VPID_CAP = ${hex(m.msrs.get(IA32_VMX_EPT_VPID_CAP) ?? 0n)}`).toBe(show(exp));
      if (got.ok && exp.ok) expect(got.eptp, `EPTP ${hex(got.eptp)}, expected ${hex(exp.eptp)} (and it must be a bigint)`).toBe(exp.eptp);
    }), { numRuns: 400 });
  });
});
