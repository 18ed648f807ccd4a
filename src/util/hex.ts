// Hexadecimal text for messages, in the three notations VMX Lab prints. Every layer may import this (it imports
// nothing), so no module keeps its own copy.

/** The hexadecimal digits of `value`, uppercase, zero-padded to at least `digits` digits: `1F`. */
export function hexDigits(value: bigint | number, digits = 0): string {
  return value.toString(16).toUpperCase().padStart(digits, '0');
}

/** `0x1F`: values in VMX Lab's explanations (diagnoses, failure messages, the reference pages). */
export function hex(value: bigint | number, digits = 0): string {
  return '0x' + hexDigits(value, digits);
}

/** `1FH`: the SDM's own notation, used by the machine's fault messages (as in "MSR 3AH"). */
export function intelHex(value: bigint | number): string {
  return hexDigits(value) + 'H';
}

/** `0x1f`: the notation of gdb and of Linux's printk (`%#llx`), used by the inspectors and the kernel's log. */
export function hexLower(value: bigint | number, digits = 0): string {
  return '0x' + value.toString(16).padStart(digits, '0');
}
