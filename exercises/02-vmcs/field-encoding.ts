// Exercise 2.1 — VMCS field encodings.
// Read chapters/02-vmcs/README.md, section "Field encodings".
// See SDM Vol. 3C, "Component Encoding" (Field Encoding in VMCS).
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

/**
 * Split an encoding into its parts, or return { error } saying why it cannot name any field
 * (reserved bits set; a high access of a field that is not 64-bit; not a 32-bit value).
 */
export function decodeFieldEncoding(encoding: number): FieldEncoding | { error: string } {
  // TODO
  throw new Error('TODO: decodeFieldEncoding');
}

/** The inverse of decodeFieldEncoding. */
export function encodeField(f: FieldEncoding): number {
  // TODO
  throw new Error('TODO: encodeField');
}
