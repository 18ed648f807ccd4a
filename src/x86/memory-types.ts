// Memory types, as PAT entries, MTRRs and EPT encode them. See SDM Vol. 3A, "Memory Types and Their Properties".
export const MEMORY_TYPE = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6, UC_MINUS: 7 } as const;
