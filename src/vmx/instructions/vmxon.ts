// VMXON and VMXOFF: entering and leaving VMX operation.
// The checks below follow the "Operation" pseudocode of SDM Vol. 3C, "VMXON—Enter VMX Operation" and
// "VMXOFF—Leave VMX Operation", in its order.
import { CR4 } from '../../x86/control-registers.ts';
import { GP_VECTOR, UD_VECTOR } from '../../x86/exceptions.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { FEAT_CTL_LOCKED, FEAT_CTL_VMX_ENABLED_INSIDE_SMX, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX } from '../msrs.ts';
import { VMXERR } from '../errors.ts';
import { SHADOW_VMCS_INDICATOR, VMCS_REVISION_ID_MASK, writeHeader } from '../vmcs.ts';
import {
  badRegionAddress, cplGp, fault, memoryFault, modeUd, commonUd, readSource, vmFail, vmFailInvalid, vmSucceed, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';
import { hex } from '../../util/hex.ts';

const VMXON_SDM = 'SDM Vol. 3C, "VMXON—Enter VMX Operation"';
const VMXOFF_SDM = 'SDM Vol. 3C, "VMXOFF—Leave VMX Operation"';
const FIXED_SDM = 'SDM Vol. 3D, "VMX-Fixed Bits in CR0" and "VMX-Fixed Bits in CR4"';
const ENABLE_SDM = 'SDM Vol. 3C, "Enabling and Entering VMX Operation"';
const I = 'VMXON';

/** VMXON m64: the operand holds the physical address of the VMXON region. */
export function vmxon(ctx: VmxContext, operand: SourceOperand): VmxOutcome {
  const { cpu, state } = ctx;
  // #UD: register operand, real mode, CR4.VMXE = 0, virtual-8086 mode, compatibility mode.
  if (operand.kind === 'register') {
    return fault(ctx, UD_VECTOR, { rule: 'vmxon-register-operand', sdm: VMXON_SDM, instruction: I, message: 'VMXON takes a memory operand; the register form is an invalid opcode.' });
  }
  const modeFault = modeUdVmxon(ctx);
  if (modeFault !== null) return modeFault;

  if (!state.inVmxOperation) {
    const gp = cplGp(ctx, I, VMXON_SDM) ?? fixedBitsGp(ctx) ?? featureControlGp(ctx);
    if (gp !== null) return gp;
    const src = readSource(ctx, operand, 8);
    if (!src.ok) return memoryFault(ctx, src.fault, I, VMXON_SDM);
    const addr = src.value;
    const bad = badRegionAddress(cpu, addr);
    if (bad !== null) {
      return vmFailInvalid(ctx, { rule: 'vmxon-region-address', sdm: VMXON_SDM, instruction: I, field: 'VMXON pointer', value: addr, expected: '4-KByte aligned, within the physical-address width', message: `The VMXON region address ${hex(addr)} ${bad}.` });
    }
    // The region's first dword: revision id in bits 30:0, bit 31 must be 0. See SDM Vol. 3C, "VMXON Region".
    const rev = cpu.readPhysical32(addr) >>> 0;
    const want = cpu.caps.basic.revisionId;
    const bit31 = (rev & SHADOW_VMCS_INDICATOR) !== 0;
    if ((rev & VMCS_REVISION_ID_MASK) !== want || bit31) {
      return vmFailInvalid(ctx, {
        rule: 'vmxon-revision-id', sdm: VMXON_SDM, instruction: I, field: 'VMXON region revision identifier', value: BigInt(rev),
        expected: `${hex(want)} (IA32_VMX_BASIC[30:0]) with bit 31 = 0`,
        message: bit31
          ? 'Bit 31 of the VMXON region\'s first dword must be 0.'
          : `The VMXON region must start with the VMCS revision identifier ${hex(want)} from IA32_VMX_BASIC bits 30:0 (was the region written at the physical address you passed? vmalloc memory is not physically contiguous).`,
      });
    }
    state.inVmxOperation = true;
    state.vmxonPointer = addr;
    state.current = null;
    return vmSucceed(cpu);
  }
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMON };
  const gp = cplGp(ctx, I, VMXON_SDM);
  if (gp !== null) return gp;
  return vmFail(ctx, VMXERR.VMXERR_VMXON_IN_VMX_ROOT_OPERATION, {
    rule: 'vmxon-in-vmx-root', sdm: VMXON_SDM, instruction: I, message: 'VMXON executed in VMX root operation: this LP already executed VMXON.',
  });
}

function modeUdVmxon(ctx: VmxContext): VmxOutcome | null {
  // VMXON's #UD list puts CR4.VMXE = 0 between real mode and virtual-8086 mode; all are checked before anything else.
  const cr4 = ctx.cpu.readCr4();
  const mode = modeUd(ctx, I, VMXON_SDM);
  if (mode !== null) return mode;
  if ((cr4 & BigInt(CR4.VMXE)) === 0n) {
    return fault(ctx, UD_VECTOR, { rule: 'vmxon-cr4-vmxe', sdm: VMXON_SDM, instruction: I, field: 'CR4', value: cr4, expected: 'CR4.VMXE (bit 13) = 1', message: 'VMXON requires CR4.VMXE = 1; set it (and the other CR4 FIXED0 bits) first.' });
  }
  return null;
}

function fixedBitsGp(ctx: VmxContext): VmxOutcome | null {
  const { cpu } = ctx;
  const c = cpu.caps;
  for (const [name, value, f0, f1] of [
    ['CR0', cpu.readCr0(), c.cr0Fixed0, c.cr0Fixed1],
    ['CR4', cpu.readCr4(), c.cr4Fixed0, c.cr4Fixed1],
  ] as const) {
    // A bit that is 1 in FIXED0 must be 1; a bit that is 0 in FIXED1 must be 0.
    const missing = f0 & ~value;
    const forbidden = value & ~f1 & 0xffffffffffffffffn;
    if (missing !== 0n || forbidden !== 0n) {
      return fault(ctx, GP_VECTOR, {
        rule: `vmxon-${name.toLowerCase()}-fixed-bits`, sdm: FIXED_SDM, instruction: I, field: name, value,
        expected: `bits ${hex(f0)} set (IA32_VMX_${name}_FIXED0) and no bits outside ${hex(f1)} (IA32_VMX_${name}_FIXED1)`,
        message: missing !== 0n
          ? `${name} bits ${hex(missing)} must be 1 in VMX operation (FIXED0).`
          : `${name} bits ${hex(forbidden)} must be 0 in VMX operation (FIXED1).`,
      });
    }
  }
  return null;
}

function featureControlGp(ctx: VmxContext): VmxOutcome | null {
  const fc = ctx.cpu.featureControl();
  const base = { sdm: ENABLE_SDM, instruction: I, field: 'IA32_FEATURE_CONTROL', value: fc };
  if ((fc & BigInt(FEAT_CTL_LOCKED)) === 0n) {
    return fault(ctx, GP_VECTOR, { ...base, rule: 'vmxon-feature-control-unlocked', expected: 'lock bit (bit 0) = 1', message: 'IA32_FEATURE_CONTROL is not locked on this LP; set bits 0 and 2 with WRMSR on every LP before VMXON.' });
  }
  const smx = ctx.cpu.inSmxOperation();
  const enable = BigInt(smx ? FEAT_CTL_VMX_ENABLED_INSIDE_SMX : FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX);
  if ((fc & enable) === 0n) {
    return fault(ctx, GP_VECTOR, {
      ...base, rule: smx ? 'vmxon-feature-control-smx' : 'vmxon-feature-control-outside-smx',
      expected: smx ? 'bit 1 (enable VMX inside SMX operation) = 1' : 'bit 2 (enable VMX outside SMX operation) = 1',
      message: 'IA32_FEATURE_CONTROL is locked with VMX disabled; it cannot change until reset.',
    });
  }
  return null;
}

/** VMXOFF: leave VMX operation. */
export function vmxoff(ctx: VmxContext): VmxOutcome {
  const { cpu, state } = ctx;
  const ud = commonUd(ctx, 'VMXOFF', VMXOFF_SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMOFF };
  const gp = cplGp(ctx, 'VMXOFF', VMXOFF_SDM);
  if (gp !== null) return gp;
  if (state.dualMonitorActive) {
    return vmFail(ctx, VMXERR.VMXERR_VMXOFF_UNDER_DUAL_MONITOR_TREATMENT_OF_SMIS_AND_SMM, { rule: 'vmxoff-dual-monitor', sdm: VMXOFF_SDM, instruction: 'VMXOFF', message: 'VMXOFF under dual-monitor treatment of SMIs and SMM.' });
  }
  // VMCSs still active are not written back: software should VMCLEAR them first, or their data since VMPTRLD
  // is lost. A launched one is remembered as such, so a later VMRESUME of it fails with error 6.
  // See SDM Vol. 3C, "VMXOFF—Leave VMX Operation" and "VMCS Life Cycle".
  for (const v of state.active) {
    if (v.launchState === 'launched') writeHeader(cpu, v.pa, 'launched-before-vmxoff');
  }
  state.active.length = 0;
  state.current = null;
  state.vmxonPointer = null;
  state.inVmxOperation = false;
  return vmSucceed(cpu);
}
