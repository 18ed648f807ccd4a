// The guest-state fields that hold a segment register: VM entry checks and loads them, VM exit saves them.
// See SDM Vol. 3C, "Guest Register State".
import type { VmcsFullFieldName } from '../fields.ts';
import { SLOT_BY_NAME } from '../vmcs.ts';
import { SEGMENT_NAMES, type SegmentName } from './transition-cpu.ts';

export interface SegmentFields<S extends SegmentName = SegmentName> {
  readonly selector: `GUEST_${S}_SELECTOR`;
  readonly base: `GUEST_${S}_BASE`;
  readonly limit: `GUEST_${S}_LIMIT`;
  readonly ar: `GUEST_${S}_AR_BYTES`;
}

/** Field names per segment register, built once (VM entries and exits use them every time). */
export const GUEST_SEGMENT_FIELDS = Object.fromEntries(SEGMENT_NAMES.map((s) => [s, {
  selector: `GUEST_${s}_SELECTOR`, base: `GUEST_${s}_BASE`, limit: `GUEST_${s}_LIMIT`, ar: `GUEST_${s}_AR_BYTES`,
}])) as { readonly [S in SegmentName]: SegmentFields<S> };

// Every name above is a VMCS field: the compiler checks it here.
GUEST_SEGMENT_FIELDS satisfies { readonly [S in SegmentName]: { readonly [K in keyof SegmentFields]: VmcsFullFieldName } };

/** The same fields as VMCS slots (src/vmx/vmcs.ts), in SEGMENT_NAMES order: what VM exits and entries move. */
export interface SegmentSlots {
  readonly selector: number;
  readonly base: number;
  readonly limit: number;
  readonly ar: number;
}
export const GUEST_SEGMENT_SLOTS: readonly SegmentSlots[] = SEGMENT_NAMES.map((s) => {
  const f: SegmentFields = GUEST_SEGMENT_FIELDS[s];
  return { selector: SLOT_BY_NAME.get(f.selector)!, base: SLOT_BY_NAME.get(f.base)!, limit: SLOT_BY_NAME.get(f.limit)!, ar: SLOT_BY_NAME.get(f.ar)! };
});
