import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import constants from '../../data/vmx-constants.json' with { type: 'json' };
import {
  VMCS, VMCS_FIELDS, VMCS_MAX_INDEX, decodeEncoding, encodeField, fieldByEncoding, fieldByName, type VmcsValue,
} from './fields.ts';

const linux = constants.vmcs_field_encodings as Record<string, number>;
const supplementary = constants.supplementary_confirmed_by_bochs_and_kvm_unit_tests.vmcs_field_encodings as Record<
  string,
  { value: number } | string
>;

describe('VMCS field table vs Linux 6.1 (data/vmx-constants.json)', () => {
  it('names every Linux field with the same encoding', () => {
    for (const [name, enc] of Object.entries(linux)) {
      expect(fieldByName(name)?.encoding, name).toBe(enc);
    }
  });
  it('every non-supplementary entry is a Linux field with the same encoding', () => {
    for (const f of VMCS_FIELDS.filter((f) => !f.supplementary)) expect(linux[f.name], f.name).toBe(f.encoding);
  });
  it('supplementary entries are exactly the confirmed SDM extras (plus HIGH halves), and marked', () => {
    const extras = VMCS_FIELDS.filter((f) => f.supplementary && !f.high);
    const expected = Object.entries(supplementary).filter(([k]) => !k.startsWith('_'));
    expect(extras.map((f) => f.name).sort()).toEqual(expected.map(([k]) => k).sort());
    for (const [name, v] of expected) expect(fieldByName(name)?.encoding).toBe((v as { value: number }).value);
    for (const f of VMCS_FIELDS.filter((f) => f.supplementary)) expect(linux[f.name]).toBeUndefined();
  });
  it('names and encodings are unique', () => {
    expect(new Set(VMCS_FIELDS.map((f) => f.name)).size).toBe(VMCS_FIELDS.length);
    expect(new Set(VMCS_FIELDS.map((f) => f.encoding)).size).toBe(VMCS_FIELDS.length);
  });
});

describe('widths and types stated in the table agree with the encoding', () => {
  it.each(VMCS_FIELDS.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    const d = decodeEncoding(f.encoding);
    expect(d.width).toBe(f.width);
    expect(d.type).toBe(f.type);
    expect(d.accessType).toBe(f.high ? 'high' : 'full');
    expect(d.reservedBitsSet).toBe(false);
    expect(f.readOnly).toBe(f.type === 'exit-info');
    // HIGH access exists only for 64-bit fields.
    if (f.high) expect(f.width).toBe('64');
    expect(f.sdm).toMatch(/^SDM Vol\. 3C, ".+"$/);
  });
  it('every 64-bit field has a HIGH twin at encoding + 1', () => {
    for (const f of VMCS_FIELDS.filter((f) => f.width === '64' && !f.high)) {
      expect(fieldByEncoding(f.encoding + 1)?.name).toBe(`${f.name}_HIGH`);
    }
  });
});

describe('component encoding', () => {
  it('decodes known examples by hand', () => {
    // GUEST_RIP 681EH: width 3 (natural), type 2 (guest), index 15, full.
    expect(decodeEncoding(0x681e)).toEqual({ accessType: 'full', index: 15, type: 'guest', width: 'natural', reservedBitsSet: false });
    // TSC_OFFSET_HIGH 2011H: width 1 (64-bit), type 0 (control), index 8, high.
    expect(decodeEncoding(0x2011)).toEqual({ accessType: 'high', index: 8, type: 'control', width: '64', reservedBitsSet: false });
    expect(decodeEncoding(0x1000).reservedBitsSet).toBe(true);
    expect(decodeEncoding(0x8000).reservedBitsSet).toBe(true);
  });
  it('encodeField inverts decodeEncoding for encodings without reserved bits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fff }), (e) => {
        const enc = e & ~0x1000;
        expect(encodeField(decodeEncoding(enc))).toBe(enc);
      }),
    );
  });
  it('fieldByEncoding rejects values outside 32 bits and bits 63:32', () => {
    expect(fieldByEncoding(0x681e)?.name).toBe('GUEST_RIP');
    expect(fieldByEncoding(0x1_0000_681en)).toBeUndefined();
    expect(fieldByEncoding(-1)).toBeUndefined();
    expect(fieldByEncoding(0x681e | 0x1000)).toBeUndefined();
  });
  it('VMCS constant object maps names to encodings', () => {
    expect(VMCS.GUEST_RIP).toBe(0x681e);
    expect(VMCS.EPT_POINTER_HIGH).toBe(0x201b);
    expect(Object.keys(VMCS).length).toBe(VMCS_FIELDS.length);
  });
  it('highest index in the whole table is the one of PID_POINTER_TABLE (21H)', () => {
    expect(VMCS_MAX_INDEX).toBe(0x21); // PID_POINTER_TABLE 2042H: index 21H
  });
});

describe('types derived from the table (checked by tsc)', () => {
  it('VMCS.* are literal encodings and VmcsValue follows the width', () => {
    const rip: 0x681e = VMCS.GUEST_RIP;
    const wide: VmcsValue<'GUEST_RIP'> = 0n;
    const sel: VmcsValue<'GUEST_ES_SELECTOR'> = 0;
    const high: VmcsValue<'TSC_OFFSET_HIGH'> = 0;
    // @ts-expect-error a 64-bit field's full access is a bigint, not a number
    const wrong: VmcsValue<'TSC_OFFSET'> = 0;
    expect([rip, wide, sel, high, wrong]).toEqual([0x681e, 0n, 0, 0, 0]);
  });
});
