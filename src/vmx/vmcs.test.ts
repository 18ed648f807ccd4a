import { capabilitiesOf } from './emulated-msrs.ts';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../machine/cpu-model.ts';
import { decodeCapabilities } from './capabilities.ts';
import { FakeTransitionCpu } from './testing/fake-transition-cpu.ts';
import { VMCS, VMCS_FIELDS } from './fields.ts';
import {
  ActiveVmcs, SHADOW_VMCS_INDICATOR, SLOT_BYTES, SLOT_FIELDS, SLOT_OFFSET, VMCS_ABORT_OFFSET, VMCS_DATA_OFFSET, VMCS_LAYOUT_END,
  VMCS_SLOT, VMCS_SLOT_COUNT, initialiseRegion, loadVmcs, slotOfEncoding, storeVmcs,
} from './vmcs.ts';

const caps = capabilitiesOf(CPU_MODELS.find((m) => m.name === 'skylake-i5-6300u')!);
const PA = 0x4000n;

describe('VMCS layout', () => {
  it('fits in the VMCS region size of every CPU model (IA32_VMX_BASIC[44:32])', () => {
    for (const m of CPU_MODELS) {
      expect(VMCS_LAYOUT_END, m.name).toBeLessThanOrEqual(capabilitiesOf(m).basic.regionSize);
    }
  });
  it('slots do not overlap, follow the header, and have the field width in bytes', () => {
    let end = VMCS_DATA_OFFSET;
    SLOT_FIELDS.forEach((f, s) => {
      expect(SLOT_OFFSET[s]).toBe(end);
      expect(SLOT_BYTES[s]).toBe(f.width === '16' ? 2 : f.width === '32' ? 4 : 8);
      end += SLOT_BYTES[s]!;
    });
    expect(end).toBe(VMCS_LAYOUT_END);
  });
  it('every encoding maps to its field\'s slot; HIGH maps to the full field; others to -1', () => {
    for (const f of VMCS_FIELDS) {
      const full = f.high ? f.name.slice(0, -5) : f.name;
      expect(slotOfEncoding(f.encoding)).toBe(VMCS_SLOT[full]);
    }
    expect(slotOfEncoding(0x1234)).toBe(-1);
    expect(slotOfEncoding(VMCS.GUEST_RIP + 1)).toBe(-1);
    expect(slotOfEncoding(0x8000)).toBe(-1);
    expect(slotOfEncoding(-1)).toBe(-1);
    expect(VMCS_SLOT_COUNT).toBe(VMCS_FIELDS.filter((f) => !f.high).length);
  });
});

describe('region ⇄ active VMCS', () => {
  it('store then load gives back every field value, truncated to its width, and the launch state', () => {
    const cpu = new FakeTransitionCpu(caps);
    const v = new ActiveVmcs(PA);
    for (let s = 0; s < VMCS_SLOT_COUNT; s++) v.write(s, 0x8877_6655_4433_2211n + BigInt(s));
    v.launchState = 'launched';
    storeVmcs(cpu, v);
    const back = loadVmcs(cpu, PA);
    expect(back.launchState).toBe('launched');
    for (let s = 0; s < VMCS_SLOT_COUNT; s++) {
      const w = SLOT_FIELDS[s]!.width;
      const x = 0x8877_6655_4433_2211n + BigInt(s);
      expect(back.read(s), SLOT_FIELDS[s]!.name).toBe(w === '16' ? x & 0xffffn : w === '32' ? x & 0xffff_ffffn : x);
    }
  });
  it('storing does not touch the revision identifier or the abort indicator', () => {
    // The VMX-abort indicator is the second dword of the region. See SDM Vol. 3C, "Format of the VMCS Region".
    expect(VMCS_ABORT_OFFSET).toBe(4);
    const cpu = new FakeTransitionCpu(caps);
    cpu.writePhysical32(PA, 0x4);
    cpu.writePhysical32(PA + BigInt(VMCS_ABORT_OFFSET), 0x0);
    storeVmcs(cpu, new ActiveVmcs(PA));
    expect(cpu.readPhysical32(PA)).toBe(4);
    expect(cpu.readPhysical32(PA + BigInt(VMCS_ABORT_OFFSET))).toBe(0);
  });
  it('a region never initialised by VMCLEAR loads with launch state "uninitialised" and its raw bytes', () => {
    const cpu = new FakeTransitionCpu(caps);
    cpu.writePhysical32(PA, (4 | SHADOW_VMCS_INDICATOR) >>> 0);
    cpu.writePhysical64(PA + BigInt(SLOT_OFFSET[VMCS_SLOT.GUEST_RIP!]!), 0xdead_beefn);
    const v = loadVmcs(cpu, PA);
    expect(v.launchState).toBe('uninitialised');
    expect(v.shadow).toBe(true);
    expect(v.readByName('GUEST_RIP')).toBe(0xdead_beefn);
  });
  it('initialiseRegion zeroes data only the first time', () => {
    const cpu = new FakeTransitionCpu(caps);
    const at = PA + BigInt(SLOT_OFFSET[VMCS_SLOT.GUEST_RIP!]!);
    cpu.writePhysical64(at, 0x1234n);
    initialiseRegion(cpu, PA);
    expect(cpu.readPhysical64(at)).toBe(0n);
    cpu.writePhysical64(at, 0x5678n);
    initialiseRegion(cpu, PA);
    expect(cpu.readPhysical64(at)).toBe(0x5678n);
    expect(loadVmcs(cpu, PA).launchState).toBe('clear');
  });
  it('readLow/writeLow/writeHigh never allocate BigInts and agree with read/write', () => {
    const v = new ActiveVmcs(PA);
    const s = VMCS_SLOT.TSC_OFFSET!;
    v.write(s, 0x1_0000_0002n);
    expect([v.readLow(s), v.readHigh(s)]).toEqual([2, 1]);
    v.writeHigh(s, 0xffff_ffff);
    expect(v.read(s)).toBe(0xffff_ffff_0000_0002n);
    v.writeLow(VMCS_SLOT.GUEST_ES_SELECTOR!, 0x12345);
    expect(v.readByName('GUEST_ES_SELECTOR')).toBe(0x2345n);
  });

  it('write then read gives the value truncated to the field width, for any BigInt (the Number fast path and the BigInt path agree)', () => {
    const v = new ActiveVmcs(PA);
    const widths = { 16: VMCS_SLOT.GUEST_ES_SELECTOR!, 32: VMCS_SLOT.GUEST_ES_LIMIT!, 64: VMCS_SLOT.GUEST_RIP! } as const;
    const edge = fc.constantFrom(0n, 1n, -1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 63n));
    fc.assert(fc.property(fc.oneof(edge, fc.bigInt({ min: -(2n ** 65n), max: 2n ** 65n }), fc.bigInt({ min: 0n, max: 2n ** 54n })), (value) => {
      for (const [bits, slot] of Object.entries(widths)) {
        v.write(slot, value);
        expect(v.read(slot)).toBe(BigInt.asUintN(Number(bits), value));
      }
    }), { seed: 42, numRuns: 500 });
  });
});
