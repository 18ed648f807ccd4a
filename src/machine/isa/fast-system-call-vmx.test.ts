// SYSCALL and SYSENTER in VMX non-root operation: neither causes a VM exit (SDM Vol. 3C, "Instructions That Cause
// VM Exits Conditionally" lists neither), so a 64-bit guest goes through them to its own entry points and the only
// exit is the HLT there. SYSENTER uses the guest's IA32_SYSENTER_* MSRs, which VM entry loads from the VMCS.
import { describe, expect, it } from 'vitest';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs } from '../../kernel/testing/reference-vm.ts';
import { EXIT_REASON } from '../../vmx/exit-reasons.ts';
import { EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import * as MSR from '../../x86/msr.ts';

const GUEST = `
bits 64
        syscall
        hlt                         ; not reached
syscall_entry:
        sysenter
        hlt                         ; not reached
sysenter_entry:
        hlt
`;

describe('fast system calls in a VMX guest', () => {
  it('SYSCALL then SYSENTER run inside the guest without a VM exit; the HLT at the SYSENTER target exits', () => {
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    const g = writeReferenceVmcs(host, cpu, k.hostEntry('stop', () => undefined), GUEST);
    const at = (label: string) => BigInt(g.labels.get(label)!);
    // IA32_STAR/LSTAR/FMASK are not VMCS state: the guest sees the LP's. EFER.SCE stays as it is across VM entry
    // without "load IA32_EFER" (only LMA and LME follow "IA-32e mode guest").
    const lp = host.machine.cpus[cpu.id]!;
    lp.efer |= EFER.SCE;
    lp.wrmsr(MSR.MSR_STAR, 0x08n << 32n);
    lp.wrmsr(MSR.MSR_LSTAR, at('syscall_entry'));
    lp.wrmsr(MSR.MSR_SYSCALL_MASK, BigInt(RFLAGS.CF));
    write(host, cpu, 'GUEST_SYSENTER_CS', 0x08);
    write(host, cpu, 'GUEST_SYSENTER_EIP', at('sysenter_entry'));
    write(host, cpu, 'GUEST_SYSENTER_ESP', g.rsp - 0x100n);
    cpu.vmlaunch();
    runGuests(host);
    const why = explain(host);
    expect(read(cpu, 'VM_EXIT_REASON') & 0xffffn, why).toBe(BigInt(EXIT_REASON.EXIT_REASON_HLT));
    expect(read(cpu, 'GUEST_RIP'), why).toBe(at('sysenter_entry'));
    expect(read(cpu, 'GUEST_RSP'), why).toBe(g.rsp - 0x100n);
    expect(read(cpu, 'GUEST_CS_SELECTOR'), why).toBe(0x08n);
    expect(read(cpu, 'GUEST_SS_SELECTOR'), why).toBe(0x10n);
    // The reference guest starts with CF and ZF set: IA32_FMASK cleared CF, ZF stayed.
    expect(read(cpu, 'GUEST_RFLAGS') & BigInt(RFLAGS.CF | RFLAGS.ZF), why).toBe(BigInt(RFLAGS.ZF));
  });
});
