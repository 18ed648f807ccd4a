import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeFieldEncoding, encodeField, type FieldEncoding } from '#impl/02-vmcs/field-encoding';
import constants from '../../data/vmx-constants.json' with { type: 'json' };
import { fieldByName } from '../../src/vmx/fields.ts';
import { hex } from '../lib/show.ts';

// Linux's table of encodings (data/vmx-constants.json), and the kit's VMCS field table, as oracles.
const LINUX = Object.entries(constants.vmcs_field_encodings as Record<string, number>);

describe('decodeFieldEncoding', () => {
  test('GUEST_RIP 681EH is a natural-width guest-state field, index 15', () => {
    expect(decodeFieldEncoding(0x681e), '681EH: bits 14:13 = 3 (natural width), 11:10 = 2 (guest state), 9:1 = 15, bit 0 = 0 (full)').toEqual({ access: 'full', index: 15, type: 'guest', width: 'natural' });
  });
  test('VM_INSTRUCTION_ERROR 4400H is a 32-bit VM-exit information field', () => {
    expect(decodeFieldEncoding(0x4400), '4400H: bits 14:13 = 2 (32-bit), 11:10 = 1 (VM-exit information), index 0, full').toEqual({ access: 'full', index: 0, type: 'exit-info', width: '32' });
  });
  test.each(LINUX)('%s (%i) decodes to the width and type of the SDM table', (name, encoding) => {
    const d = decodeFieldEncoding(encoding);
    expect('error' in d, `${name} = ${hex(encoding)} is a valid encoding, but decodeFieldEncoding says ${JSON.stringify(d)}`).toBe(false);
    const f = fieldByName(name)!;
    expect(d, `${name} = ${hex(encoding)}: width from bits 14:13, type from bits 11:10, access type from bit 0`).toMatchObject({ width: f.width, type: f.type, access: name.endsWith('_HIGH') ? 'high' : 'full' });
  });
  test('reserved bits 31:15 or bit 12 make an encoding invalid', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fff }), fc.integer({ min: 1, max: 0x1ffff }), (low, high) => {
        const enc = low | (high << 15) >>> 0;
        expect('error' in (decodeFieldEncoding(enc) as object), `${hex(enc >>> 0)} sets reserved bits 31:15: decodeFieldEncoding must return { error }`).toBe(true);
      }),
    );
    expect('error' in (decodeFieldEncoding(0x681e | 0x1000) as object), '0x781e sets reserved bit 12: decodeFieldEncoding must return { error }').toBe(true);
  });
  test('a high access of a 16-bit, 32-bit or natural-width field is invalid', () => {
    for (const enc of [0x0801, 0x4401, 0x681f]) {
      expect('error' in (decodeFieldEncoding(enc) as object), `${hex(enc)}: bit 0 = 1 (high access) is only defined for 64-bit fields (bits 14:13 = 1)`).toBe(true);
    }
  });
});

describe('encodeField', () => {
  const parts = fc.record<FieldEncoding>({
    access: fc.constantFrom('full', 'high'),
    index: fc.integer({ min: 0, max: 511 }),
    type: fc.constantFrom('control', 'exit-info', 'guest', 'host'),
    width: fc.constantFrom('16', '64', '32', 'natural'),
  }).filter((p) => p.access === 'full' || p.width === '64');
  test('round-trips through decodeFieldEncoding', () => {
    fc.assert(
      fc.property(parts, (p) => {
        const enc = encodeField(p);
        expect(decodeFieldEncoding(enc), `encodeField(${JSON.stringify(p)}) = ${hex(enc)}, which decodes differently`).toEqual({ ...p });
      }),
    );
  });
  test.each(LINUX)('re-encodes %s to %i', (_name, encoding) => {
    const parts = decodeFieldEncoding(encoding) as FieldEncoding;
    const enc = encodeField(parts);
    expect(enc, `encodeField(${JSON.stringify(parts)}) = ${hex(enc)}, expected ${hex(encoding)}`).toBe(encoding);
  });
});
