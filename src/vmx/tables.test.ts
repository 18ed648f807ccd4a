// Exit reasons, VM-instruction errors, entry-failure qualifications, abort indicators and control bits
// against data/vmx-constants.json (Linux 6.1 headers, cross-checked with Bochs and kvm-unit-tests).
import { describe, expect, it } from 'vitest';
import constants from '../../data/vmx-constants.json' with { type: 'json' };
import { EXIT_REASON, EXIT_REASONS, exitReasonByNumber, VMX_EXIT_REASONS_FAILED_VMENTRY, VMX_EXIT_REASONS_SGX_ENCLAVE_MODE } from './exit-reasons.ts';
import {
  ENTRY_FAIL_DEFAULT, ENTRY_FAIL_NMI, ENTRY_FAIL_PDPTE, ENTRY_FAIL_VMCS_LINK_PTR, VM_ENTRY_FAILURE_QUALIFICATIONS,
  VM_INSTRUCTION_ERRORS, VMX_ABORT_INDICATORS, VMXERR, vmInstructionError,
} from './errors.ts';
import { CONTROL_BITS, DEFAULT1, VMX_CONTROL } from './controls.ts';
import { VMX_CAPABILITY_MSRS } from './msrs.ts';

describe('exit reasons', () => {
  const linux = constants.basic_exit_reasons as Record<string, number>;
  const supp = constants.supplementary_confirmed_by_bochs_and_kvm_unit_tests.basic_exit_reasons as unknown as Record<string, { value: number }>;
  it('has every Linux exit reason with the same number', () => {
    for (const [name, n] of Object.entries(linux)) expect(EXIT_REASON[name as keyof typeof EXIT_REASON], name).toBe(n);
  });
  it('every non-supplementary entry is a Linux reason; supplementary ones are the confirmed SDM extras', () => {
    for (const r of EXIT_REASONS) {
      if (r.supplementary) expect(linux[r.name]).toBeUndefined();
      else expect(linux[r.name], r.name).toBe(r.number);
    }
    const suppNumbers = Object.entries(supp).filter(([k]) => !k.startsWith('_')).map(([, v]) => v.value).sort((a, b) => a - b);
    expect(EXIT_REASONS.filter((r) => r.supplementary).map((r) => r.number)).toEqual(suppNumbers);
  });
  it('numbers are unique and every entry says what the qualification holds', () => {
    expect(new Set(EXIT_REASONS.map((r) => r.number)).size).toBe(EXIT_REASONS.length);
    for (const r of EXIT_REASONS) {
      expect(r.qualification.length).toBeGreaterThan(0);
      expect(r.sdm).toContain('"');
    }
  });
  it('flag bits match Linux and lookup ignores them', () => {
    expect(VMX_EXIT_REASONS_FAILED_VMENTRY).toBe(constants.exit_reason_flags.VMX_EXIT_REASONS_FAILED_VMENTRY);
    expect(VMX_EXIT_REASONS_SGX_ENCLAVE_MODE).toBe(constants.exit_reason_flags.VMX_EXIT_REASONS_SGX_ENCLAVE_MODE);
    expect(exitReasonByNumber(0x80000021)?.name).toBe('EXIT_REASON_INVALID_STATE');
  });
});

describe('VM-instruction errors', () => {
  const linux = constants.vm_instruction_errors as Record<string, number>;
  it('match Linux exactly (names and numbers, both ways)', () => {
    expect(Object.fromEntries(VM_INSTRUCTION_ERRORS.map((e) => [e.name, e.number]))).toEqual(linux);
    expect(VMXERR.VMXERR_UNSUPPORTED_VMCS_COMPONENT).toBe(12);
    expect(vmInstructionError(26)?.name).toBe('VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS');
    expect(vmInstructionError(14)).toBeUndefined();
  });
  it('entry-failure qualifications match Linux', () => {
    expect(Object.fromEntries(VM_ENTRY_FAILURE_QUALIFICATIONS.map((q) => [q.name, q.value]))).toEqual(
      constants.vm_entry_failure_qualification,
    );
    expect([ENTRY_FAIL_DEFAULT, ENTRY_FAIL_PDPTE, ENTRY_FAIL_NMI, ENTRY_FAIL_VMCS_LINK_PTR]).toEqual([0, 2, 3, 4]);
  });
  it('abort indicators Linux names agree; extras are marked', () => {
    const linuxAbort = constants.vmx_abort_indicators as Record<string, number>;
    for (const a of VMX_ABORT_INDICATORS) {
      if (a.supplementary) expect(linuxAbort[a.name]).toBeUndefined();
      else expect(linuxAbort[a.name]).toBe(a.value);
    }
    expect(VMX_ABORT_INDICATORS.filter((a) => !a.supplementary).length).toBe(Object.keys(linuxAbort).length);
  });
});

describe('control bits', () => {
  it('pin-based bits are where the SDM puts them (ERRATA: off-by-one in tutorials)', () => {
    expect(VMX_CONTROL.PIN_BASED_NMI_EXITING).toBe(8);
    expect(VMX_CONTROL.PIN_BASED_VIRTUAL_NMIS).toBe(32);
    expect(VMX_CONTROL.PIN_BASED_VMX_PREEMPTION_TIMER).toBe(64);
    expect(VMX_CONTROL.PIN_BASED_POSTED_INTR).toBe(128);
    expect(VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS).toBe(0x80000000);
    expect(VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST).toBe(0x80);
    expect(VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE).toBe(0x200);
    expect(VMX_CONTROL.VM_ENTRY_IA32E_MODE).toBe(0x200);
  });
  it('names are unique, bits unique within a field, and no named bit is a default1 (reserved) bit', () => {
    expect(new Set(CONTROL_BITS.map((c) => c.name)).size).toBe(CONTROL_BITS.length);
    for (const field of ['pin', 'proc', 'proc2', 'proc3', 'exit', 'entry'] as const) {
      const bits = CONTROL_BITS.filter((c) => c.field === field).map((c) => c.bit);
      expect(new Set(bits).size).toBe(bits.length);
    }
    for (const c of CONTROL_BITS) {
      if (c.field === 'proc2' || c.field === 'proc3') continue;
      // Named default1 bits exist: CR3-load/store exiting (proc 15, 16) and save/load debug controls (exit/entry 2).
      const allowedDefault1 = new Set(['CPU_BASED_CR3_LOAD_EXITING', 'CPU_BASED_CR3_STORE_EXITING', 'VM_EXIT_SAVE_DEBUG_CONTROLS', 'VM_ENTRY_LOAD_DEBUG_CONTROLS']);
      if ((DEFAULT1[c.field] & 2 ** c.bit) !== 0) expect(allowedDefault1.has(c.name), c.name).toBe(true);
    }
  });
});

describe('capability MSR list', () => {
  it('covers 480H–492H contiguously', () => {
    expect(VMX_CAPABILITY_MSRS.map((m) => m.index)).toEqual(Array.from({ length: 0x13 }, (_, i) => 0x480 + i));
  });
});
