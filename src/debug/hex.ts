// Fixed-width hex for inspector tables, so columns line up and a value's width is visible: 0x0000000000401006.

/** `v` as 0x followed by at least `digits` upper-case hex digits (64-bit two's complement for negatives). */
export function hexPadded(v: bigint | number, digits: number): string {
  return '0x' + BigInt.asUintN(64, BigInt(v)).toString(16).toUpperCase().padStart(digits, '0');
}
