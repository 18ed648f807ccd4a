// The VMX instructions on the real logical processor (through the kernel's HostCpu facade, the seam and the LP
// adapter), not the test fake: the same architectural outcomes, with operands read and written through paging.
import { describe, expect, it } from 'vitest';
import { bootHost } from '../kernel/boot-host.ts';
import { CpuFault } from '../machine/fault.ts';
import { VMCS } from './fields.ts';

const CF = 1n, ZF = 1n << 6n, STATUS = 0x8d5n;

function host(model = 'skylake-i5-6300u') {
  const h = bootHost({ model, featureControl: 'locked-enabled' });
  const cpu = h.kernel.cpu();
  const caps = h.vmx[0]!.caps;
  const region = () => {
    const va = h.kernel.get_zeroed_page();
    h.kernel.write32(va, caps.basic.revisionId);
    return h.kernel.virt_to_phys(va);
  };
  return { ...h, cpu, caps, region, unit: h.vmx[0]! };
}
function faultOf(f: () => unknown): CpuFault | undefined {
  try { f(); } catch (e) { if (e instanceof CpuFault) return e; throw e; }
  return undefined;
}

describe('VMX instructions on the real LP', () => {
  it('VMXON without CR4.VMXE: #UD, with the diagnosis', () => {
    const { cpu, unit } = host();
    expect(faultOf(() => cpu.vmxon(0x1000n))?.vector).toBe(6);
    expect(unit.lastDiagnosis()?.rule).toBe('vmxon-cr4-vmxe');
  });
  it('a diagnosis carries its VMX instruction\'s sequence number; a later successful instruction is told apart', () => {
    const { cpu, caps, region, unit } = host();
    expect(faultOf(() => cpu.vmxon(0x1000n))?.vector).toBe(6);
    const failed = unit.lastDiagnosis();
    expect(failed?.rule).toBe('vmxon-cr4-vmxe');
    expect(unit.diagnosisOfLastInstruction()).toBe(failed);
    cpu.writeCr0((cpu.readCr0() | caps.cr0Fixed0) & caps.cr0Fixed1);
    cpu.writeCr4((cpu.readCr4() | caps.cr4Fixed0) & caps.cr4Fixed1);
    cpu.vmxon(region());
    expect(cpu.rflags() & STATUS).toBe(0n);
    // The old diagnosis is still readable, but it is not about the VMXON that just succeeded.
    expect(unit.lastDiagnosis()?.seq).toBe(failed!.seq);
    expect(unit.diagnosisOfLastInstruction()).toBeNull();
    cpu.vmread(VMCS.GUEST_RIP); // no current VMCS: VMfailInvalid
    expect(unit.diagnosisOfLastInstruction()?.seq).toBe(failed!.seq + 2);
  });
  it('full cycle: VMXON, VMCLEAR, VMPTRLD, VMWRITE/VMREAD, VMPTRST, VMCLEAR, VMXOFF', () => {
    const { cpu, caps, region } = host();
    cpu.writeCr0((cpu.readCr0() | caps.cr0Fixed0) & caps.cr0Fixed1);
    cpu.writeCr4((cpu.readCr4() | caps.cr4Fixed0) & caps.cr4Fixed1);
    const vmxonPa = region(), vmcsPa = region();
    cpu.vmxon(vmxonPa);
    expect(cpu.rflags() & STATUS).toBe(0n);
    cpu.vmclear(vmcsPa);
    cpu.vmptrld(vmcsPa);
    expect(cpu.vmptrst()).toBe(vmcsPa);
    cpu.vmwrite(VMCS.GUEST_RIP, 0xffff_8000_1234_5678n);
    expect(cpu.rflags() & STATUS).toBe(0n);
    expect(cpu.vmread(VMCS.GUEST_RIP)).toBe(0xffff_8000_1234_5678n);
    cpu.vmwrite(VMCS.GUEST_ES_SELECTOR, 0x12345n);
    expect(cpu.vmread(VMCS.GUEST_ES_SELECTOR)).toBe(0x2345n);
    // Unsupported component: VMfailValid(12), readable before VMXOFF.
    cpu.vmread(0x7777);
    expect(cpu.rflags() & STATUS).toBe(ZF);
    expect(cpu.vmread(VMCS.VM_INSTRUCTION_ERROR)).toBe(12n);
    cpu.vmclear(vmcsPa);
    expect(cpu.vmptrst()).toBe(0xffff_ffff_ffff_ffffn);
    cpu.vmread(VMCS.GUEST_RIP);
    expect(cpu.rflags() & STATUS).toBe(CF);
    cpu.vmxoff();
    expect(faultOf(() => cpu.vmread(VMCS.VM_INSTRUCTION_ERROR))?.vector).toBe(6);
  });
  it('a region from vmalloc (not physically contiguous, virt_to_phys is wrong for it) fails VMXON with CF = 1', () => {
    const { cpu, caps, kernel, unit } = host();
    cpu.writeCr0((cpu.readCr0() | caps.cr0Fixed0) & caps.cr0Fixed1);
    cpu.writeCr4((cpu.readCr4() | caps.cr4Fixed0) & caps.cr4Fixed1);
    const va = kernel.vmalloc(4096);
    kernel.write32(va, caps.basic.revisionId);
    cpu.vmxon(kernel.virt_to_phys(va));
    expect(cpu.rflags() & STATUS).toBe(CF);
    expect(unit.lastDiagnosis()?.rule).toMatch(/^vmxon-(revision-id|region-address)$/);
  });
});
