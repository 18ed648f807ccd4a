// Exercise 0.1 — segment selectors.
// Read chapters/00-machine/README.md, section "Segment selectors", then fill in the three functions.
// See SDM Vol. 3A, "Segment Selectors".
//
//   15                    3   2   1 0
//  +-----------------------+----+-----+
//  |         index         | TI | RPL |
//  +-----------------------+----+-----+

export type DescriptorTable = 'gdt' | 'ldt';

export interface Selector {
  /** Which descriptor: byte offset in the table is index * 8. */
  index: number;
  /** TI (table indicator): 0 = GDT, 1 = LDT. */
  table: DescriptorTable;
  /** Requested privilege level, 0..3. */
  rpl: number;
}

/** Build a selector value. Throw a RangeError for an index outside 0..8191 or an RPL outside 0..3. */
export function makeSelector(index: number, table: DescriptorTable, rpl: number): number {
  // TODO: place index in bits 15:3, TI in bit 2, RPL in bits 1:0.
  throw new Error('TODO: makeSelector');
}

/** Split a 16-bit selector value into its fields. */
export function parseSelector(selector: number): Selector {
  // TODO: the inverse of makeSelector.
  throw new Error('TODO: parseSelector');
}

/**
 * The value to put in a VMCS host-selector field: VM entry requires RPL = 0 and TI = 0 there.
 * See SDM Vol. 3C, "Checks on Host Segment and Descriptor-Table Registers".
 */
export function hostSelector(selector: number): number {
  // TODO: clear RPL and TI, keep every index bit.
  throw new Error('TODO: hostSelector');
}
