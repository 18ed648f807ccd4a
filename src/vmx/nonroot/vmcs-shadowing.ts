// VMCS shadowing: in VMX non-root operation with "VMCS shadowing" = 1, VMREAD and VMWRITE of a field whose bit in
// the VMREAD / VMWRITE bitmap is 0 do not exit: they access the shadow VMCS the VMCS link pointer names. A field
// operand that sets bits above 14 (63:15, or 31:15 outside 64-bit mode), or a bitmap bit of 1, still exits. The
// bit for a field is bit (encoding & 7) of byte (encoding >> 3) of its 4-KByte bitmap. With the link pointer
// FFFFFFFF_FFFFFFFFH the instruction is VMfailInvalid; VMfailValid errors go to the (ordinary) current VMCS.
// See SDM Vol. 3C, "VMCS Shadowing Bitmap Addresses", "VMREAD—Read Field from Virtual-Machine Control
// Structure" and "VMWRITE—Write Field to Virtual-Machine Control Structure".
import { VMX_CONTROL as C } from '../controls.ts';
import type { VmxContext } from '../instructions/outcome.ts';
import { loadVmcs, SLOT, storeVmcs, type ActiveVmcs } from '../vmcs.ts';

const NO_LINK = 0xffffffffffffffffn;

/** Where VMREAD/VMWRITE in VMX non-root operation go: a VM exit, or the shadow VMCS (null: link pointer not valid). */
export type ShadowAccess =
  | { readonly kind: 'exit' }
  | { readonly kind: 'shadow'; readonly vmcs: ActiveVmcs | null; readonly active: boolean };

const EXIT: ShadowAccess = Object.freeze({ kind: 'exit' });

/** `encoding` is the field operand, or -1 when it sets bits above 14. */
export function shadowAccess(ctx: VmxContext, encoding: number, access: 'read' | 'write'): ShadowAccess {
  const current = ctx.state.current;
  if (current === null || encoding < 0) return EXIT;
  const proc = current.readLow(SLOT.CPU_BASED_VM_EXEC_CONTROL);
  const proc2 = proc & C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS ? current.readLow(SLOT.SECONDARY_VM_EXEC_CONTROL) : 0;
  if ((proc2 & C.SECONDARY_EXEC_SHADOW_VMCS) === 0) return EXIT;
  const bitmap = current.read(access === 'read' ? SLOT.VMREAD_BITMAP : SLOT.VMWRITE_BITMAP);
  const at = bitmap + BigInt(encoding >> 3);
  const byte = (ctx.cpu.readPhysical32(at & ~3n) >>> (8 * Number(at & 3n))) & 0xff;
  if (((byte >> (encoding & 7)) & 1) === 1) return EXIT;
  const link = current.read(SLOT.VMCS_LINK_POINTER);
  if (link === NO_LINK) return { kind: 'shadow', vmcs: null, active: false };
  // A shadow VMCS made active by VMPTRLD is accessed in the processor's copy; otherwise in its region.
  const active = ctx.state.findActive(link);
  return active !== undefined ? { kind: 'shadow', vmcs: active, active: true } : { kind: 'shadow', vmcs: loadVmcs(ctx.cpu, link), active: false };
}

/** After a VMWRITE to a shadow VMCS that is not active: write it back to its region. */
export function commitShadowWrite(ctx: VmxContext, s: ShadowAccess): void {
  if (s.kind === 'shadow' && s.vmcs !== null && !s.active) storeVmcs(ctx.cpu, s.vmcs);
}
