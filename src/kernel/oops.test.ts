// The oops report names the privileged instruction the module executed, as Linux's report names the
// faulting RIP's function — never a frame of the kit's own plumbing.
import { describe, expect, test } from 'vitest';
import { bootHost } from './boot-host.ts';
import type { HostCpu } from './host-cpu.ts';

function oopsOf(body: (cpu: HostCpu) => void) {
  const { kernel } = bootHost({});
  const r = kernel.insmod({ name: 'bad', init: (k) => (body(k.cpu()), 0) });
  if (r.ok) throw new Error('expected the module load to oops');
  return { oops: r.oops!, dmesg: kernel.dmesg() };
}

describe('oops reports name the instruction', () => {
  test.each([
    ['VMXON', (cpu: HostCpu) => cpu.vmxon(0x1000n)], // CR4.VMXE = 0: #UD
    ['VMREAD', (cpu: HostCpu) => void cpu.vmread(0x4400)], // outside VMX operation: #UD
    ['VMXOFF', (cpu: HostCpu) => cpu.vmxoff()],
    ['VMLAUNCH', (cpu: HostCpu) => cpu.vmlaunch()],
    ['INVEPT', (cpu: HostCpu) => cpu.invept(1n, 0n)],
    ['MOV to CR4', (cpu: HostCpu) => cpu.writeCr4(0n)], // clearing PAE in IA-32e mode: #GP
  ])('%s', (instruction, body) => {
    const { oops, dmesg } = oopsOf(body);
    expect(oops.instruction).toBe(instruction);
    expect(dmesg).toContain(` in ${instruction}\n`);
    expect(dmesg).not.toMatch(/ in (RUN|WITHM64|WITHM128)\b/);
  });
});

test('a stack cut short before the HostCpu frames still names the VMX instruction', () => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 2; // the fault is created deep inside src/vmx
  try {
    expect(oopsOf((cpu) => cpu.vmxon(0x1000n)).oops.instruction).toBe('VMXON');
  } finally {
    Error.stackTraceLimit = limit;
  }
});
