// The memory type an access uses, from its MTRR (or EPT) type and its PAT type, and what overrides both.
//   CR0.CD = 1 → UC: caching is off for new fills ("no-fill" mode; lines already cached still hit until WBINVD).
//   With EPT: the MTRRs are ignored; the EPT memory type takes the MTRR type's place, and with "ignore PAT" (bit 6)
//   it is the type outright.
//   Otherwise: the table below.
// See SDM Vol. 3A, "Cache Control Registers and Bits", "Precedence of Cache Controls", "Effective Page-Level Memory
// Types for Pentium III and More Recent Processor Families", and Vol. 3C, "EPT and Memory Typing".
import { MEMORY_TYPE, type MemoryType, type MtrrMemoryType } from '../../x86/memory-types.ts';

const { UC, WC, WT, WP, WB, UC_MINUS } = MEMORY_TYPE;

/** One cell of the table: the effective type and the table's footnotes on it. */
export interface Effective {
  readonly type: MtrrMemoryType;
  readonly notes?: readonly (1 | 2 | 3)[];
}

/**
 * The table "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families": rows by MTRR
 * type, columns by PAT type. `notes` are the table's footnotes: 1 — UC from the MTRRs (the caches need no snoop);
 * 2 — UC from the page tables (the caches are checked, the data may be cached by an alias); 3 — combinations older
 * SDM editions called undefined, that may vary across processors (avoid them).
 */
export const EFFECTIVE_MEMORY_TYPE: Readonly<Record<MtrrMemoryType, Readonly<Record<MemoryType, Effective>>>> = {
  [UC]: { [UC]: { type: UC, notes: [1] }, [UC_MINUS]: { type: UC, notes: [1] }, [WC]: { type: WC }, [WT]: { type: UC, notes: [1] }, [WB]: { type: UC, notes: [1] }, [WP]: { type: UC, notes: [1] } },
  [WC]: { [UC]: { type: UC, notes: [2] }, [UC_MINUS]: { type: WC }, [WC]: { type: WC }, [WT]: { type: UC, notes: [2, 3] }, [WB]: { type: WC }, [WP]: { type: UC, notes: [2, 3] } },
  [WT]: { [UC]: { type: UC, notes: [2] }, [UC_MINUS]: { type: UC, notes: [2] }, [WC]: { type: WC }, [WT]: { type: WT }, [WB]: { type: WT }, [WP]: { type: WP, notes: [3] } },
  [WB]: { [UC]: { type: UC, notes: [2] }, [UC_MINUS]: { type: UC, notes: [2] }, [WC]: { type: WC }, [WT]: { type: WT }, [WB]: { type: WB }, [WP]: { type: WP } },
  [WP]: { [UC]: { type: UC, notes: [2] }, [UC_MINUS]: { type: WC, notes: [3] }, [WC]: { type: WC }, [WT]: { type: WT, notes: [3] }, [WB]: { type: WP }, [WP]: { type: WP } },
};

export const EFFECTIVE_TABLE_SDM = 'SDM Vol. 3A, "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families"';

/** The effective type of an MTRR (or EPT) type and a PAT type. */
export function effectiveType(mtrr: MtrrMemoryType, pat: MemoryType): Effective {
  return EFFECTIVE_MEMORY_TYPE[mtrr][pat];
}
