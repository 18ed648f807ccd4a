// EPT misconfigurations: an EPT entry holding a value the processor does not support. Each rule is data plus a
// predicate, in the order the SDM lists them; the walker runs them on every present entry it reads and the first that
// fails ends the walk with an EPT misconfiguration (exit reason 49, no exit qualification). See SDM Vol. 3C, "EPT
// Misconfigurations".
import type { VmxCapabilities } from '../capabilities.ts';
import { EPT_VPID_CAP } from '../msrs.ts';
import {
  bitOf, EPT_BIT, EPT_LEVEL_NAMES, EPT_LEVELS, EPT_RESERVED_MEMORY_TYPES, EPT_RWX_MASK, fixedReservedMask,
  physAddrReservedMask, type EptEntryFormat, type EptLevel,
} from './entry.ts';

/** What a rule sees: one present entry, its level, the format bit 7 selects, and the processor. */
export interface MisconfigContext {
  readonly value: bigint;
  readonly level: EptLevel;
  readonly format: EptEntryFormat;
  readonly caps: Pick<VmxCapabilities, 'eptVpidCap'>;
  readonly maxPhysAddr: number;
}

export interface MisconfigRule {
  /** Stable kebab-case id, e.g. `ept-write-without-read`. */
  readonly id: string;
  readonly sdm: string;
  /** One or two sentences for a learner. */
  readonly explain: string;
  /** The offending bits if the entry breaks the rule, else null. */
  check(c: MisconfigContext): { readonly bits: bigint; readonly expected: string } | null;
}

const MISCONFIG = 'SDM Vol. 3C, "EPT Misconfigurations"';
const rwx = (v: bigint) => v & EPT_RWX_MASK;

export const EPT_MISCONFIG_RULES = [
  {
    id: 'ept-write-without-read',
    sdm: MISCONFIG,
    explain: 'bits 2:0 are 010b (write-only) or 110b (write/execute): the processor has no write-without-read permission',
    check: ({ value }) => (rwx(value) === 0b010n || rwx(value) === 0b110n
      ? { bits: EPT_RWX_MASK, expected: 'bit 0 (read) set whenever bit 1 (write) is set' } : null),
  },
  {
    id: 'ept-execute-only-unsupported',
    sdm: MISCONFIG,
    explain: 'bits 2:0 are 100b (execute-only) but IA32_VMX_EPT_VPID_CAP[0] = 0: this processor does not support execute-only translations',
    check: ({ value, caps }) => (rwx(value) === 0b100n && (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_EXECUTE_ONLY_BIT) === 0n
      ? { bits: EPT_RWX_MASK, expected: 'bit 0 (read) set when bit 2 (execute) is set (IA32_VMX_EPT_VPID_CAP[0] = 0)' } : null),
  },
  {
    // Bit 7 is reserved in a PML5E and a PML4E; in a PDPTE (PDE) it may be 1 only if the capability MSR reports
    // 1-GByte (2-MByte) pages. "A reserved bit is set" — named apart from the other reserved bits because it is
    // the mistake learners make. See also "EPT Translation Mechanism" (the footnotes on bit 7).
    id: 'ept-page-size-not-allowed',
    sdm: `${MISCONFIG}; "EPT Translation Mechanism"`,
    explain: 'bit 7 (page size) is set where this processor cannot map a page at this level',
    check: ({ value, level, caps }) => {
      if (!bitOf(value, EPT_BIT.PAGE_SIZE) || level === 1) return null;
      const large = EPT_LEVELS[level].large;
      if (large !== null && (caps.eptVpidCap & large.capBit) !== 0n) return null;
      return {
        bits: 1n << BigInt(EPT_BIT.PAGE_SIZE),
        expected: large === null
          ? `bit 7 clear: bit 7 of an EPT ${EPT_LEVEL_NAMES[level]} is reserved`
          : `bit 7 clear: ${large.capName} = 0`,
      };
    },
  },
  {
    id: 'ept-reserved-bits',
    sdm: MISCONFIG,
    explain: 'a reserved bit of this entry format is set',
    check: ({ value, format }) => {
      const bits = value & fixedReservedMask(format);
      return bits !== 0n ? { bits, expected: `reserved bits of the ${format.id} format clear` } : null;
    },
  },
  {
    id: 'ept-address-beyond-maxphyaddr',
    sdm: MISCONFIG,
    explain: 'the address in this entry has bits set at or above MAXPHYADDR ("a reserved bit is set", bits 51:M)',
    check: ({ value, format, maxPhysAddr }) => {
      const bits = value & physAddrReservedMask(format, maxPhysAddr);
      return bits !== 0n ? { bits, expected: `bits 51:${maxPhysAddr} clear (MAXPHYADDR = ${maxPhysAddr})` } : null;
    },
  },
  {
    id: 'ept-memory-type-reserved',
    sdm: `${MISCONFIG}; "EPT and Memory Typing"`,
    explain: 'the last entry of the walk has EPT memory type 2, 3 or 7 in bits 5:3; those values are reserved',
    check: ({ value, format }) => {
      if (!format.leaf) return null;
      const type = Number((value >> BigInt(EPT_BIT.MEMORY_TYPE)) & 7n);
      return EPT_RESERVED_MEMORY_TYPES.includes(type)
        ? { bits: 7n << BigInt(EPT_BIT.MEMORY_TYPE), expected: 'bits 5:3 = 0 (UC), 1 (WC), 4 (WT), 5 (WP) or 6 (WB)' } : null;
    },
  },
] as const satisfies readonly MisconfigRule[];

export type EptMisconfigRuleId = (typeof EPT_MISCONFIG_RULES)[number]['id'];
