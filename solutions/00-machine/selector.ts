// Segment selectors: a 16-bit index into the GDT or LDT plus two small fields.
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

const RPL_MASK = 0x3;
const TI_BIT = 0x4;
const INDEX_SHIFT = 3;

/** Build a selector value. Throws RangeError for out-of-range fields. */
export function makeSelector(index: number, table: DescriptorTable, rpl: number): number {
  if (!Number.isInteger(index) || index < 0 || index > 0x1fff) throw new RangeError(`index ${index} is not 0..8191`);
  if (!Number.isInteger(rpl) || rpl < 0 || rpl > 3) throw new RangeError(`rpl ${rpl} is not 0..3`);
  return (index << INDEX_SHIFT) | (table === 'ldt' ? TI_BIT : 0) | rpl;
}

/** Split a 16-bit selector value into its fields. */
export function parseSelector(selector: number): Selector {
  return {
    index: (selector & 0xffff) >> INDEX_SHIFT,
    table: (selector & TI_BIT) !== 0 ? 'ldt' : 'gdt',
    rpl: selector & RPL_MASK,
  };
}

/**
 * The value to put in a VMCS host-selector field. On VM exit the CPU loads host selectors, and
 * VM entry checks that their RPL and TI bits are 0 — so clear exactly those three bits.
 * (Masking with 0xF8 would also drop index bits 8 and up.)
 * See SDM Vol. 3C, "Checks on Host Segment and Descriptor-Table Registers".
 */
export function hostSelector(selector: number): number {
  return selector & 0xffff & ~(TI_BIT | RPL_MASK);
}
