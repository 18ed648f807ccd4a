// VMCS shadowing from a real guest, against SDM Vol. 3C, "VMCS Shadowing Bitmap Addresses" and the "Operation"
// of "VMREAD—Read Field from Virtual-Machine Control Structure" and "VMWRITE—Write Field to Virtual-Machine
// Control Structure": with "VMCS shadowing" = 1, a field whose VMREAD/VMWRITE-bitmap bit is 0 is read or written
// in the VMCS the link pointer names; a bit of 1, or a field operand with bits above 14, exits.
import { describe, expect, it } from 'vitest';
import { enableControls, read, runRecordedGuest, write, type Host } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { VMCS } from '../fields.ts';
import { MSR_IA32_VMX_BASIC } from '../msrs.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const SHADOW_INDICATOR = 0x80000000;
const CF = 1n, ZF = 1n << 6n;

/** A shadow VMCS with GUEST_RIP = 1234H, left active or VMCLEARed (written back to its region). */
function makeShadow(host: Host, cpu: HostCpu, active: boolean): bigint {
  const k = host.kernel;
  const ordinary = host.vmx[cpu.id]!.state.current!.pa;
  const va = k.get_zeroed_page();
  k.write32(va, (Number(cpu.rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn) | SHADOW_INDICATOR) >>> 0);
  const pa = k.virt_to_phys(va);
  cpu.vmclear(pa);
  cpu.vmptrld(pa);
  cpu.vmwrite(VMCS.GUEST_RIP, 0x1234n);
  if (!active) cpu.vmclear(pa);
  cpu.vmptrld(ordinary);
  return pa;
}

/** Shadowing on, with the link pointer `link` and every bitmap bit 0 except VMWRITE of GUEST_CR0 (6800H). */
function shadowing(host: Host, cpu: HostCpu, link: bigint): void {
  expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_SHADOW_VMCS })).toBe(true);
  const k = host.kernel;
  const readBitmap = k.get_zeroed_page(), writeBitmap = k.get_zeroed_page();
  k.write8(writeBitmap + BigInt(VMCS.GUEST_CR0 >> 3), 1 << (VMCS.GUEST_CR0 & 7));
  write(host, cpu, 'VMREAD_BITMAP', k.virt_to_phys(readBitmap));
  write(host, cpu, 'VMWRITE_BITMAP', k.virt_to_phys(writeBitmap));
  write(host, cpu, 'VMCS_LINK_POINTER', link);
}

const GUEST = `
  bits 64
  mov ebx, ${VMCS.GUEST_RIP}
  vmread rax, rbx          ; from the shadow VMCS
  mov ebx, ${VMCS.GUEST_ES_SELECTOR}
  mov edx, 0x99
  vmwrite rbx, rdx         ; to the shadow VMCS
  pushfq
  pop rcx
  mov ebx, ${VMCS.GUEST_CR0}
at_exit:
  vmwrite rbx, rdx         ; its VMWRITE-bitmap bit is 1: exits
  cpuid`;

describe('VMCS shadowing', () => {
  for (const active of [true, false]) {
    it(`VMREAD/VMWRITE with bitmap bit 0 access the shadow VMCS (${active ? 'active on the LP' : 'only in its region'}); bit 1 exits`, () => {
      let shadow = 0n;
      const run = runRecordedGuest({ source: GUEST, setup: (host, cpu) => { shadow = makeShadow(host, cpu, active); shadowing(host, cpu, shadow); } });
      const e = run.exits[0]!;
      expect(e.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_VMWRITE));
      expect(e.guestRip).toBe(BigInt(run.guest.labels.get('at_exit')!));
      expect(e.rax, 'VMREAD read the shadow VMCS').toBe(0x1234n);
      expect(e.rcx & (CF | ZF), 'VMsucceed').toBe(0n);
      const cpu = run.host.kernel.cpu();
      expect(read(cpu, 'GUEST_ES_SELECTOR'), 'the ordinary VMCS is untouched').not.toBe(0x99n);
      cpu.vmptrld(shadow);
      expect(read(cpu, 'GUEST_ES_SELECTOR'), 'VMWRITE wrote the shadow VMCS').toBe(0x99n);
    });
  }

  it('a field operand with bits above 14 set exits even with its bitmap bit 0', () => {
    const run = runRecordedGuest({
      source: `bits 64\nmov rbx, ${(1n << 32n) | BigInt(VMCS.GUEST_RIP)}\nvmread rax, rbx\ncpuid`,
      setup: (host, cpu) => shadowing(host, cpu, makeShadow(host, cpu, true)),
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_VMREAD));
  });

  it('link pointer FFFFFFFF_FFFFFFFFH: VMfailInvalid (CF = 1)', () => {
    const run = runRecordedGuest({
      source: `bits 64\nmov ebx, ${VMCS.GUEST_RIP}\nvmread rax, rbx\npushfq\npop rcx\ncpuid`,
      setup: (host, cpu) => shadowing(host, cpu, 0xffffffffffffffffn),
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(run.exits[0]!.rcx & (CF | ZF)).toBe(CF);
  });

  it('an unsupported field: VMfailValid(12), the error in the ordinary current VMCS', () => {
    const run = runRecordedGuest({
      source: 'bits 64\nmov ebx, 0x7ffe\nvmread rax, rbx\npushfq\npop rcx\ncpuid',
      setup: (host, cpu) => shadowing(host, cpu, makeShadow(host, cpu, true)),
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(run.exits[0]!.rcx & (CF | ZF)).toBe(ZF);
    expect(read(run.host.kernel.cpu(), 'VM_INSTRUCTION_ERROR')).toBe(12n);
  });

  it('without "VMCS shadowing", VMREAD exits', () => {
    const run = runRecordedGuest({ source: `bits 64\nmov ebx, ${VMCS.GUEST_RIP}\nvmread rax, rbx\ncpuid` });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_VMREAD));
  });
});
