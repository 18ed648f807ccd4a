// VMCLEAR: make a VMCS inactive, write its data back to its region and set its launch state to clear.
// Follows the "Operation" pseudocode of SDM Vol. 3C, "VMCLEAR—Clear Virtual-Machine Control Structure".
import { UD_VECTOR } from '../../x86/exceptions.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { initialiseRegion, storeVmcs } from '../vmcs.ts';
import {
  badRegionAddress, commonUd, cplGp, fault, memoryFault, readSource, vmFail, vmSucceed, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';
import { hex } from '../../util/hex.ts';

const SDM = 'SDM Vol. 3C, "VMCLEAR—Clear Virtual-Machine Control Structure"';
const I = 'VMCLEAR';

export function vmclear(ctx: VmxContext, operand: SourceOperand): VmxOutcome {
  const { cpu, state } = ctx;
  if (operand.kind === 'register') {
    return fault(ctx, UD_VECTOR, { rule: 'vmclear-register-operand', sdm: SDM, instruction: I, message: 'VMCLEAR takes a memory operand; the register form is an invalid opcode.' });
  }
  const ud = commonUd(ctx, I, SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMCLEAR };
  const gp = cplGp(ctx, I, SDM);
  if (gp !== null) return gp;
  const src = readSource(ctx, operand, 8);
  if (!src.ok) return memoryFault(ctx, src.fault, I, SDM);
  const addr = src.value;
  const bad = badRegionAddress(cpu, addr);
  if (bad !== null) {
    return vmFail(ctx, VMXERR.VMXERR_VMCLEAR_INVALID_ADDRESS, { rule: 'vmclear-invalid-address', sdm: SDM, instruction: I, field: 'VMCS pointer', value: addr, expected: '4-KByte aligned, within the physical-address width', message: `The VMCS address ${hex(addr)} ${bad}.` });
  }
  if (addr === state.vmxonPointer) {
    return vmFail(ctx, VMXERR.VMXERR_VMCLEAR_VMXON_POINTER, { rule: 'vmclear-vmxon-pointer', sdm: SDM, instruction: I, field: 'VMCS pointer', value: addr, expected: 'not the VMXON region', message: 'VMCLEAR was given the VMXON region\'s address; a VMCS needs its own region.' });
  }
  // "Ensure that data for VMCS referenced by the operand is in memory; initialize implementation-specific data
  // in VMCS region; launch state of VMCS referenced by the operand := clear."
  const active = state.findActive(addr);
  if (active !== undefined) {
    active.launchState = 'clear';
    storeVmcs(cpu, active);
    state.removeActive(active);
  } else {
    initialiseRegion(cpu, addr);
  }
  if (state.current !== null && state.current.pa === addr) state.current = null;
  return vmSucceed(cpu);
}
