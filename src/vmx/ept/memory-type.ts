// The memory type of a guest access under EPT: the EPT walk's memory type and "ignore PAT" (inspect.ts) combined
// with the guest's CR0.CD, IA32_PAT and the guest paging entry that mapped the access; the MTRRs play no part.
// One report: the EPT walk, then every memory-type input and the rule that decided. Chapter 7's debug aid, beside
// chapter 6's formatEptInspection. See SDM Vol. 3C, "EPT and Memory Typing".
import { explainMemoryType } from '../../machine/memtype/explain.ts';
import { resolveMemoryType, type MemoryTypeDecision, type MemoryTypeInput } from '../../machine/memtype/memory-type.ts';
import { MEMORY_TYPE_NAME, isMtrrMemoryType, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { formatEptInspection, inspectGpa, type EptInspectInput, type EptInspection } from './inspect.ts';

export interface GuestMemoryTypeInput {
  /** What inspectGpa walks: the EPTP, the guest-physical address, the tables. */
  readonly ept: EptInspectInput;
  /** Guest CR0.CD. */
  readonly cr0Cd: boolean;
  /** The guest's leaf paging entry and IA32_PAT for the access; null when guest paging is off. */
  readonly paging: MemoryTypeInput['paging'];
}

export type GuestMemoryType =
  | { readonly kind: 'mapped'; readonly decision: MemoryTypeDecision; readonly inspection: EptInspection; readonly lines: readonly string[] }
  | { readonly kind: 'not-mapped'; readonly inspection: EptInspection; readonly lines: readonly string[] };

export function guestMemoryType(input: GuestMemoryTypeInput): GuestMemoryType {
  const inspection = inspectGpa(input.ept);
  const walk = formatEptInspection(input.ept.gpa, inspection).split('\n');
  const memoryType = inspection.kind === 'mapped' ? eptMemoryType(inspection.memoryType) : null;
  if (inspection.kind !== 'mapped' || memoryType === null) {
    return { kind: 'not-mapped', inspection, lines: [...walk, 'no memory type: the access does not reach memory through this EPT'] };
  }
  const typeInput: MemoryTypeInput = {
    pa: input.ept.gpa, cr0Cd: input.cr0Cd, mtrrs: null, paging: input.paging,
    ept: { memoryType, ignorePat: inspection.ignorePat },
  };
  return { kind: 'mapped', decision: resolveMemoryType(typeInput), inspection, lines: [...walk, ...explainMemoryType(typeInput)] };
}

/** inspect.ts reports the EPT memory type by its name; a mapped leaf always holds a valid one. */
function eptMemoryType(name: string): MtrrMemoryType | null {
  for (const [value, n] of Object.entries(MEMORY_TYPE_NAME)) if (n === name && isMtrrMemoryType(Number(value))) return Number(value) as MtrrMemoryType;
  return null;
}
