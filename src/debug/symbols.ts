// Addresses with symbols, as gdb prints them: "0x8005 <start+5>" — the nearest symbol at or below
// the address, "+offset" omitted when it is 0. Symbols are typically the assembler's labels.
import { hexLower } from '../util/hex.ts';

export type Symbols = ReadonlyMap<string, number | bigint>;

/** A function that prints an address, with `<symbol+offset>` when a symbol at or below it exists. */
export type AddressLabeler = (address: bigint) => string;

export function addressLabeler(symbols: Symbols | undefined): AddressLabeler {
  const sorted = [...(symbols ?? new Map<string, number | bigint>())]
    .map(([name, v]) => ({ name, at: BigInt(v) }))
    .sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
  return (a) => {
    const s = symbolAt(sorted, a);
    return s === undefined ? hexLower(a) : `${hexLower(a)} <${s}>`;
  };
}

/** "start+5" for an address, or undefined when no symbol is at or below it. */
export function symbolize(symbols: Symbols | undefined, address: bigint): string | undefined {
  return symbolAt([...(symbols ?? new Map<string, number | bigint>())].map(([name, v]) => ({ name, at: BigInt(v) })), address);
}

function symbolAt(list: readonly { name: string; at: bigint }[], a: bigint): string | undefined {
  let best: { name: string; at: bigint } | undefined;
  for (const s of list) if (s.at <= a && (best === undefined || s.at >= best.at)) best = s;
  if (best === undefined) return undefined;
  const off = a - best.at;
  return `${best.name}${off === 0n ? '' : `+${off}`}`;
}
