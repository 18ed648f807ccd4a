// Memory types, as PAT entries, MTRRs and EPT encode them. See SDM Vol. 3A, "Memory Types and Their Properties".
export const MEMORY_TYPE = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6, UC_MINUS: 7 } as const;

export type MemoryType = (typeof MEMORY_TYPE)[keyof typeof MEMORY_TYPE];

/** The SDM's mnemonics, by encoding. */
export const MEMORY_TYPE_NAME: Readonly<Record<MemoryType, string>> = { 0: 'UC', 1: 'WC', 4: 'WT', 5: 'WP', 6: 'WB', 7: 'UC-' };

/** A memory type an MTRR (or an EPT entry) may hold: UC- (7) exists only in the PAT; 2, 3 and 8–FFH are reserved. */
export type MtrrMemoryType = Exclude<MemoryType, typeof MEMORY_TYPE.UC_MINUS>;

/** See SDM Vol. 3A, "MTRR Type" encodings (Table "Memory Types That Can Be Encoded in MTRRs"). */
export function isMtrrMemoryType(v: number): v is MtrrMemoryType {
  return v === 0 || v === 1 || v === 4 || v === 5 || v === 6;
}

/** See SDM Vol. 3A, "IA32_PAT MSR" (Table "Memory Types That Can Be Encoded With PAT"). */
export function isPatMemoryType(v: number): v is MemoryType {
  return isMtrrMemoryType(v) || v === MEMORY_TYPE.UC_MINUS;
}

/** "WB" for 6, "reserved (3)" for an encoding no table defines. */
export function memoryTypeName(v: number): string {
  return isPatMemoryType(v) ? MEMORY_TYPE_NAME[v] : `reserved (${v})`;
}
