// Test support: shared setup for the VMX instruction tests: a fake LP on a real CPU model, VMX regions in its memory.
import { capabilitiesOf } from '../emulated-msrs.ts';
import { getCpuModel } from '../../machine/cpu-model.ts';
import { decodeCapabilities, type VmxCapabilities } from '../capabilities.ts';
import { fakeVmxContext } from './fake-vmx-cpu.ts';
import { RFLAGS, RFLAGS_STATUS } from '../../x86/flags.ts';
import { vmxon } from '../instructions/vmxon.ts';
import { vmclear } from '../instructions/vmclear.ts';
import { vmptrld } from '../instructions/vmptrld.ts';

export const VMXON_PA = 0x10000n;
export const VMCS_PA = 0x20000n;
export const VMCS2_PA = 0x30000n;

/** RFLAGS before each instruction: every status flag set, IF set, bit 1 set. */
export const FLAGS_BEFORE = RFLAGS_STATUS | RFLAGS.IF | RFLAGS.FIXED1;
/** The exact RFLAGS values each outcome must leave (SDM Vol. 3C, "Conventions"). */
export const FLAGS_SUCCEED = RFLAGS.IF | RFLAGS.FIXED1;
export const FLAGS_FAIL_INVALID = RFLAGS.IF | RFLAGS.FIXED1 | RFLAGS.CF;
export const FLAGS_FAIL_VALID = RFLAGS.IF | RFLAGS.FIXED1 | RFLAGS.ZF;

const capsCache = new Map<string, VmxCapabilities>();
export function capsOf(model: string): VmxCapabilities {
  let c = capsCache.get(model);
  if (c === undefined) {
    c = capabilitiesOf(getCpuModel(model)!);
    capsCache.set(model, c);
  }
  return c;
}

/**
 * A fresh LP on `model` (a model name, or capabilities made up for a test), not in VMX operation,
 * RFLAGS = FLAGS_BEFORE, with a VMXON region and two VMCS regions written.
 */
export function setup(model: string | VmxCapabilities = 'skylake-i5-6300u') {
  const caps = typeof model === 'string' ? capsOf(model) : model;
  const ctx = fakeVmxContext(caps);
  const rev = caps.basic.revisionId;
  ctx.cpu.writePhysical32(VMXON_PA, rev);
  ctx.cpu.writePhysical32(VMCS_PA, rev);
  ctx.cpu.writePhysical32(VMCS2_PA, rev);
  ctx.cpu.rflags = FLAGS_BEFORE;
  return ctx;
}

/** setup() + VMXON + VMCLEAR + VMPTRLD of VMCS_PA; RFLAGS reset to FLAGS_BEFORE. */
export function setupWithVmcs(model: string | VmxCapabilities = 'skylake-i5-6300u') {
  const ctx = setup(model);
  for (const o of [
    vmxon(ctx, { kind: 'value', value: VMXON_PA }),
    vmclear(ctx, { kind: 'value', value: VMCS_PA }),
    vmptrld(ctx, { kind: 'value', value: VMCS_PA }),
  ]) if (o.kind !== 'VMsucceed') throw new Error(`setup failed: ${JSON.stringify(o)}`);
  ctx.cpu.rflags = FLAGS_BEFORE;
  return ctx;
}
