// An address as a learner types it: 0x-prefixed or H-suffixed hex (the SDM writes 1000H), or decimal, with optional
// underscores between digits. Shared by `vmxlab explain-gpa` and the playground's explainer.

/** The value, or null if the text is not a 64-bit address. */
export function parseAddress(text: string): bigint | null {
  const t = text.trim().replace(/_/g, '');
  const m = /^0x([0-9a-f]+)$/i.exec(t) ?? /^([0-9a-f]+)h$/i.exec(t);
  const v = m !== null ? BigInt(`0x${m[1]}`) : /^[0-9]+$/.test(t) ? BigInt(t) : null;
  return v !== null && v < 1n << 64n ? v : null;
}
