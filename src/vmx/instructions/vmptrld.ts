// VMPTRLD (make a VMCS active and current) and VMPTRST (store the current-VMCS pointer).
// Follows the "Operation" pseudocode of SDM Vol. 3C, "VMPTRLD—Load Pointer to Virtual-Machine Control Structure"
// and "VMPTRST—Store Pointer to Virtual-Machine Control Structure".
import { UD_VECTOR } from '../../x86/exceptions.ts';
import { canSet } from '../capabilities.ts';
import { VMX_CONTROL } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { loadVmcs, SHADOW_VMCS_INDICATOR, VMCS_REVISION_ID_MASK } from '../vmcs.ts';
import {
  badRegionAddress, commonUd, cplGp, fault, memoryFault, readSource, vmFail, vmSucceed, type DestinationOperand, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';
import { hex } from '../../util/hex.ts';

const SDM = 'SDM Vol. 3C, "VMPTRLD—Load Pointer to Virtual-Machine Control Structure"';
const ST_SDM = 'SDM Vol. 3C, "VMPTRST—Store Pointer to Virtual-Machine Control Structure"';

export function vmptrld(ctx: VmxContext, operand: SourceOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMPTRLD';
  if (operand.kind === 'register') {
    return fault(ctx, UD_VECTOR, { rule: 'vmptrld-register-operand', sdm: SDM, instruction: I, message: 'VMPTRLD takes a memory operand; the register form is an invalid opcode.' });
  }
  const ud = commonUd(ctx, I, SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMPTRLD };
  const gp = cplGp(ctx, I, SDM);
  if (gp !== null) return gp;
  const src = readSource(ctx, operand, 8);
  if (!src.ok) return memoryFault(ctx, src.fault, I, SDM);
  const addr = src.value;
  const bad = badRegionAddress(cpu, addr);
  if (bad !== null) {
    return vmFail(ctx, VMXERR.VMXERR_VMPTRLD_INVALID_ADDRESS, { rule: 'vmptrld-invalid-address', sdm: SDM, instruction: I, field: 'VMCS pointer', value: addr, expected: '4-KByte aligned, within the physical-address width', message: `The VMCS address ${hex(addr)} ${bad}.` });
  }
  if (addr === state.vmxonPointer) {
    return vmFail(ctx, VMXERR.VMXERR_VMPTRLD_VMXON_POINTER, { rule: 'vmptrld-vmxon-pointer', sdm: SDM, instruction: I, field: 'VMCS pointer', value: addr, expected: 'not the VMXON region', message: 'VMPTRLD was given the VMXON region\'s address; a VMCS needs its own region.' });
  }
  // rev[30:0] must be the processor's revision id; rev[31] (shadow-VMCS indicator) may be 1 only if the processor
  // supports "VMCS shadowing". See SDM Vol. 3C, "VMCS Types: Ordinary and Shadow".
  const rev = cpu.readPhysical32(addr) >>> 0;
  const want = cpu.caps.basic.revisionId;
  const shadow = (rev & SHADOW_VMCS_INDICATOR) !== 0;
  const shadowOk = canSet(cpu.caps, 'proc2', VMX_CONTROL.SECONDARY_EXEC_SHADOW_VMCS);
  if ((rev & VMCS_REVISION_ID_MASK) !== want || (shadow && !shadowOk)) {
    return vmFail(ctx, VMXERR.VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID, {
      rule: 'vmptrld-revision-id', sdm: SDM, instruction: I, field: 'VMCS revision identifier', value: BigInt(rev),
      expected: `${hex(want)} (IA32_VMX_BASIC[30:0])${shadowOk ? '' : ' with bit 31 = 0 (no VMCS shadowing on this CPU)'}`,
      message: (rev & VMCS_REVISION_ID_MASK) !== want
        ? `The VMCS region must start with the revision identifier ${hex(want)}; it holds ${hex(rev)}.`
        : 'The shadow-VMCS indicator (bit 31) is set, but this processor does not support VMCS shadowing.',
    });
  }
  let v = state.findActive(addr);
  if (v === undefined) {
    v = loadVmcs(cpu, addr);
    state.active.push(v);
  }
  v.shadow = shadow;
  state.current = v;
  return vmSucceed(cpu);
}

/** VMPTRST m64: store the current-VMCS pointer (FFFFFFFF_FFFFFFFFH when there is none). */
export function vmptrst(ctx: VmxContext, dest: DestinationOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMPTRST';
  if (dest.kind === 'register') {
    return fault(ctx, UD_VECTOR, { rule: 'vmptrst-register-operand', sdm: ST_SDM, instruction: I, message: 'VMPTRST takes a memory operand; the register form is an invalid opcode.' });
  }
  const ud = commonUd(ctx, I, ST_SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMPTRST };
  const gp = cplGp(ctx, I, ST_SDM);
  if (gp !== null) return gp;
  const ptr = state.currentPointer();
  if (dest.kind === 'memory') {
    const w = cpu.writeLinear(dest.linear, 8, ptr);
    if (!w.ok) return memoryFault(ctx, w.fault, I, ST_SDM);
    return vmSucceed(cpu);
  }
  return vmSucceed(cpu, ptr);
}
