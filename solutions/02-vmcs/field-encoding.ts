// VMCS field encodings: the 32-bit number VMREAD and VMWRITE take is not an offset but a small
// structure of its own. See SDM Vol. 3C, "Component Encoding" (Field Encoding in VMCS).
//
//  31        15  14 13  12  11 10  9          1   0
// +------------+------+---+------+-------------+---+
// |  reserved  | width| 0 | type |    index    | A |
// +------------+------+---+------+-------------+---+
//   width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width
//   type:  0 control, 1 VM-exit information (read-only), 2 guest state, 3 host state
//   A:     access type, 0 full, 1 high (upper 32 bits of a 64-bit field)

export type FieldWidth = '16' | '64' | '32' | 'natural';
export type FieldType = 'control' | 'exit-info' | 'guest' | 'host';

export interface FieldEncoding {
  access: 'full' | 'high';
  index: number;
  type: FieldType;
  width: FieldWidth;
}

const WIDTHS: readonly FieldWidth[] = ['16', '64', '32', 'natural'];
const TYPES: readonly FieldType[] = ['control', 'exit-info', 'guest', 'host'];

/**
 * Split an encoding into its parts, or explain why it cannot name any field: bits 31:15 and bit 12
 * are reserved (must be 0), and the high access type exists only for 64-bit fields.
 */
export function decodeFieldEncoding(encoding: number): FieldEncoding | { error: string } {
  if (!Number.isInteger(encoding) || encoding < 0 || encoding > 0xffffffff) return { error: 'not a 32-bit value' };
  if (encoding >>> 15 !== 0) return { error: 'bits 31:15 are reserved and must be 0' };
  if ((encoding & (1 << 12)) !== 0) return { error: 'bit 12 is reserved and must be 0' };
  const width = WIDTHS[(encoding >> 13) & 3]!;
  const access = (encoding & 1) === 1 ? 'high' : 'full';
  if (access === 'high' && width !== '64') return { error: 'the high access type exists only for 64-bit fields' };
  return { access, index: (encoding >> 1) & 0x1ff, type: TYPES[(encoding >> 10) & 3]!, width };
}

/** The inverse of decodeFieldEncoding. */
export function encodeField(f: FieldEncoding): number {
  return (WIDTHS.indexOf(f.width) << 13) | (TYPES.indexOf(f.type) << 10) | (f.index << 1) | (f.access === 'high' ? 1 : 0);
}
