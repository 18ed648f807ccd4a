// The VMX seam: VMX instructions reach lp.vmx.execute with decoded operands (or #UD without a VMX unit), and
// in non-root operation intercept() is consulted first and can take events over.
import { describe, expect, it } from 'vitest';
import { assembleOrThrow } from '../guest/assembler.ts';
import { prepareGuest } from './testing/run-guest.ts';
import { writeIdtGate, LONG_MODE_LAYOUT as L } from './testing/long-mode.ts';
import type { LogicalProcessor } from './lp.ts';
import { EXITED, NATIVE, type InterceptAnswer, type VmxInstruction, type VmxInterceptEvent, type VmxUnit } from './vmx-seam.ts';

class FakeVmx implements VmxUnit {
  nonRoot = false;
  executed: VmxInstruction[] = [];
  events: VmxInterceptEvent[] = [];
  takeKinds = new Set<string>();
  execute(lp: LogicalProcessor, insn: VmxInstruction): void {
    this.executed.push(insn);
    // VMsucceed: clear the arithmetic flags. See SDM Vol. 3C, "Conventions".
    lp.setRflags(Number(lp.getReg('rflags')) & ~0x8d5);
  }
  intercept(_lp: LogicalProcessor, event: VmxInterceptEvent): InterceptAnswer {
    this.events.push(event);
    return this.takeKinds.has(event.kind) ? EXITED : NATIVE;
  }
}

describe('VMX seam', () => {
  it('without a VMX unit, VMX instructions raise #UD and say why', () => {
    const g = prepareGuest('vmxoff\nhlt');
    const { bytes } = assembleOrThrow('bits 64\nmov r15, 6\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 6, 0x200000);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r15')).toBe(6n);
    expect(g.lp.lastFault?.explanation).toMatch(/VMXOFF.*no VMX unit/);
  });

  it('passes operands: memory linear address, registers, sizes, length; RIP already advanced', () => {
    const g = prepareGuest(`
      mov rax, 0x5000
    at_vmxon:
      vmxon [rax + 8]
      vmread rbx, rcx
      vmwrite rdx, [rsi + rdi*4 + 16]
      vmlaunch
      invept r8, [r9]
      hlt`);
    const v = new FakeVmx();
    g.lp.vmx = v;
    g.lp.setReg('rsi', 0x100n);
    g.lp.setReg('rdi', 2n);
    g.lp.setReg('r9', 0x7000n);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(v.executed.map((i) => i.mnemonic)).toEqual(['VMXON', 'VMREAD', 'VMWRITE', 'VMLAUNCH', 'INVEPT']);
    const [vmxon, vmread, vmwrite, vmlaunch, invept] = v.executed as [VmxInstruction, VmxInstruction, VmxInstruction, VmxInstruction, VmxInstruction];
    expect(vmxon.mem?.linear).toBe(0x5008n);
    expect(vmxon.mem?.base).toBe(0);
    expect(vmxon.mem?.displacement).toBe(8n);
    expect(vmxon.length).toBe(5); // F3 0F C7 70 08
    expect(vmxon.rip).toBe(BigInt(g.labels.get('at_vmxon')!));
    expect([vmread.reg, vmread.rmReg, vmread.operandSize]).toEqual([1, 3, 8]); // VMREAD r/m64 = rbx, r64 = rcx
    expect(vmwrite.mem?.linear).toBe(0x100n + 8n + 16n);
    expect([vmwrite.mem?.index, vmwrite.mem?.scale, vmwrite.reg]).toEqual([7, 2, 2]);
    expect(vmlaunch.mem).toBeNull();
    expect([invept.reg, invept.mem?.linear]).toEqual([8, 0x7000n]);
  });

  it('in non-root operation, intercept() sees exiting events and can take them over', () => {
    const g = prepareGuest(`
      cpuid
      mov r10, 1
      out 0x80, al
      mov rax, cr3
      hlt
      mov r11, 1
      hlt`);
    const v = new FakeVmx();
    v.nonRoot = true;
    v.takeKinds.add('cpuid');
    v.takeKinds.add('hlt');
    g.lp.vmx = v;
    const start = g.lp.rip;
    g.lp.setReg('rax', 0n);
    // CPUID is taken over: the interpreter neither executes it nor advances RIP (the "VM exit" owns RIP).
    g.machine.run({ maxInstructions: 1 });
    expect(v.events[0]).toEqual({ kind: 'cpuid', length: 2 });
    expect(g.lp.rip).toBe(start);
    expect(g.lp.getReg('rbx')).not.toBe(0x756e6547n);
    g.lp.rip = start + 2; // what a hypervisor would do: skip CPUID
    g.machine.run({ maxInstructions: 4 });
    const kinds = v.events.map((e) => e.kind);
    expect(kinds).toEqual(['cpuid', 'io', 'cr-access', 'hlt']);
    expect(v.events[1]).toMatchObject({ kind: 'io', io: { port: 0x80, size: 1, direction: 'out', immediate: true, string: false } });
    expect(v.events[2]).toMatchObject({ kind: 'cr-access', cr: 3, access: 1, gpr: 0 });
    expect(g.lp.activity).toBe('active'); // HLT was taken over, not executed
  });

  it('exceptions are offered before delivery, with the interruption type', () => {
    const g = prepareGuest('int3\nud2');
    const v = new FakeVmx();
    v.nonRoot = true;
    v.takeKinds.add('exception');
    g.lp.vmx = v;
    g.machine.run({ maxInstructions: 1 });
    expect(v.events[0]).toEqual({ kind: 'exception', vector: 3, errorCode: -1, type: 6, length: 1, cr2: undefined, during: null, nmiUnblockedByIret: false });
  });
});

describe('EPT hook (lp.gpaTranslate) and VmExitTaken', () => {
  it('translates every guest-physical access; a thrown VmExitTaken abandons the instruction', async () => {
    const { VmExitTaken } = await import('./vmx-seam.ts');
    const OFF = 0x1000000;
    const g = prepareGuest(`
      mov qword [0x9000], 0x1234
      mov rax, [0x50008]
      mov rbx, 1
      hlt`);
    const mem = g.machine.memory;
    // Guest-physical = host-physical − 16 MiB: copy the guest's tables, descriptor tables and code up there.
    mem.writeBytes(OFF, mem.readBytes(0, 0x20000));
    mem.writeBytes(OFF + L.code, mem.readBytes(L.code, 0x100));
    mem.write8(0x300000, 0xf4); // a host "exit handler": HLT
    const seen: number[] = [];
    g.lp.gpaTranslate = (gpa, _access, info) => {
      seen.push(gpa);
      if (gpa - (gpa & 0xfff) === 0x50000 && !info.pagingStructure) {
        // The "VMX unit" performs an EPT-violation VM exit: host state, then abandon the instruction.
        g.lp.gpaTranslate = null;
        g.lp.tlb.flushAll();
        g.lp.rip = 0x300000;
        throw new VmExitTaken('EPT violation');
      }
      return gpa + OFF;
    };
    g.lp.tlb.flushAll();
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(mem.read64(OFF + 0x9000)).toBe(0x1234n);
    expect(mem.read64(0x9000)).toBe(0n);
    expect(g.lp.getReg('rbx')).not.toBe(1n); // the instruction after the exit never ran
    expect(g.lp.rip).toBe(0x300001);
    expect(seen).toContain(L.pml4); // paging-structure accesses went through EPT too
  });
});

describe('per-instruction VMX hook', () => {
  it('with boundaryHook, atBoundary runs before every guest instruction and can take over', () => {
    const g = prepareGuest('inc eax\ninc eax\ninc eax\ninc eax\nhlt');
    const seen: number[] = [];
    const unit: VmxUnit & { boundaryHook: boolean } = {
      nonRoot: true,
      boundaryHook: true,
      execute: () => undefined,
      intercept: () => NATIVE,
      atBoundary: (lp) => {
        seen.push(lp.rip);
        if (seen.length === 3) {
          // An "MTF VM exit": the hypervisor side takes over and stops stepping.
          unit.boundaryHook = false;
          lp.activity = 'hlt';
          return true;
        }
        return false;
      },
    };
    g.lp.vmx = unit;
    g.lp.setReg('rax', 0n);
    g.machine.run({ maxInstructions: 100 });
    expect(seen).toEqual([L.code, L.code + 2, L.code + 4]);
    expect(g.lp.getReg('rax')).toBe(2n);
  });
});
