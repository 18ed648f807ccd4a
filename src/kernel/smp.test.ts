// The kernel on several CPUs: sleep points that migrate, the reports about VMX code split across CPUs, and IPIs
// to a CPU that runs a guest (a VM exit, then the function, in VMX root operation).
import { describe, expect, test } from 'vitest';
import { CpuFault } from '../machine/fault.ts';
import { VMX_CONTROL } from '../vmx/controls.ts';
import { EXIT_REASON } from '../vmx/exit-reasons.ts';
import { CALL_FUNCTION_VECTOR } from './smp.ts';
import { bootHost, enterVmx, explain, kitCurrentVmcs, kitVmxOn, read, write, writeReferenceVmcs, type Host } from './testing/reference-vm.ts';
import { Mutex, type Kernel } from './kernel.ts';
import type { HostCpu } from './host-cpu.ts';

const SPIN_GUEST = `
bits 64
.spin:  pause
        jmp .spin
`;

/** GFP_KERNEL allocations until the scheduler moves the task; the CPU it was on before. */
function migrate(k: Kernel): number {
  const from = k.cpu().id;
  for (let i = 0; i < 200; i++) {
    k.kmalloc(64);
    if (k.cpu().id !== from) return from;
  }
  throw new Error('the task never migrated in 200 sleep points');
}

/** A guest spinning on `cpu` (launched from there), whose VM exits call `onExit`; true if the model allows `pin`. */
function launchSpinner(host: Host, cpuId: number, pin: number, exitCtls: number, onExit: (cpu: HostCpu) => void): void {
  const k = host.kernel;
  const rip = k.hostEntry(`spin_exit_${cpuId}`, (_k, cpu) => onExit(cpu));
  expect(k.smp_call_function_single(cpuId, () => {
    const cpu = k.cpu();
    enterVmx(host, cpu);
    writeReferenceVmcs(host, cpu, rip, SPIN_GUEST);
    write(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', read(cpu, 'PIN_BASED_VM_EXEC_CONTROL') | BigInt(pin));
    write(host, cpu, 'VM_EXIT_CONTROLS', read(cpu, 'VM_EXIT_CONTROLS') | BigInt(exitCtls));
    cpu.vmlaunch();
    expect(cpu.inVmxNonRoot(), explain(host)).toBe(true);
  })).toBe(0);
}

describe('VMX code that migrates', () => {
  test('a sleep point between VMXON and VMPTRLD moves the task: #UD, and the kernel names the migration', () => {
    const host = bootHost({ cpus: 2, seed: 7 });
    const k = host.kernel;
    k.get_cpu();
    kitVmxOn(k); // pinned: the kit's own setup allocates too
    k.put_cpu();
    const from = migrate(k);
    const to = k.cpu().id;
    expect(() => kitCurrentVmcs(k)).toThrow(CpuFault); // VMCLEAR outside VMX operation: #UD
    expect(k.dmesg()).toContain(`BUG: VMCLEAR on CPU ${to}, but this task's previous VMX instruction ran on CPU ${from}: the scheduler moved it (CPU ${from} → CPU ${to} at kmalloc(GFP_KERNEL))`);
  });

  test('with get_cpu() the same sequence stays on one CPU, and nothing is reported', () => {
    const host = bootHost({ cpus: 2, seed: 7 });
    const k = host.kernel;
    const cpu = k.get_cpu();
    kitVmxOn(k);
    for (let i = 0; i < 50; i++) k.kmalloc(64, 'GFP_ATOMIC');
    kitCurrentVmcs(k);
    expect(k.cpu().id).toBe(cpu);
    k.put_cpu();
    expect(k.dmesg()).not.toMatch(/BUG/);
  });

  test('a HostCpu kept across a migration runs its VMX instruction where the task is, and that is reported', () => {
    const host = bootHost({ cpus: 2, seed: 7 });
    const k = host.kernel;
    k.get_cpu();
    const handle = k.cpu();
    kitVmxOn(k, handle);
    k.put_cpu();
    const from = migrate(k);
    const now = k.cpu().id;
    expect(now).not.toBe(handle.id);
    // CPU `now` is not in VMX operation: VMPTRST there is #UD, whichever handle the code used.
    expect(() => handle.vmptrst()).toThrow(CpuFault);
    expect(k.dmesg()).toContain(`BUG: VMPTRST through the HostCpu of CPU ${handle.id}, but this task runs on CPU ${now}: the instruction runs on CPU ${now}. The scheduler moved it: CPU ${from} → CPU ${now} at kmalloc(GFP_KERNEL).`);
    // Once per migration: the next instructions of the same sequence add nothing.
    const before = k.dmesg();
    expect(() => handle.vmptrst()).toThrow(CpuFault);
    expect(k.dmesg().split('through the HostCpu').length).toBe(before.split('through the HostCpu').length);
  });

  test('a VM exit that loads another CPU\'s host state is reported, once, naming the fields', () => {
    const host = bootHost({ cpus: 2 });
    const k = host.kernel;
    const cpu0 = k.allCpus()[0]!;
    let exits = 0;
    const rip = k.hostEntry('foreign_exit', () => void exits++);
    k.smp_call_function_single(1, () => {
      const cpu = k.cpu();
      enterVmx(host, cpu);
      writeReferenceVmcs(host, cpu, rip);
      // The mistake: host-state bases taken from CPU 0.
      write(host, cpu, 'HOST_GDTR_BASE', cpu0.sgdt().base);
      write(host, cpu, 'HOST_TR_BASE', cpu0.lp.getSegment('tr').base);
      cpu.vmlaunch();
    });
    k.run({ maxInstructions: 10_000 });
    expect(exits, explain(host)).toBeGreaterThan(0);
    const d = k.dmesg();
    expect(d).toMatch(/BUG: a VM exit on CPU 1 loaded another CPU's host state: HOST_GDTR_BASE = 0x[0-9a-f]+ \(CPU 0's, not CPU 1's/);
    expect(d).toMatch(/HOST_TR_BASE = 0x[0-9a-f]+ \(CPU 0's/);
    expect(d).not.toMatch(/HOST_GS_BASE/);
  });

  test('host state written on the launching CPU: no report', () => {
    const host = bootHost({ cpus: 2 });
    const k = host.kernel;
    let exits = 0;
    const rip = k.hostEntry('own_exit', () => void exits++);
    k.smp_call_function_single(1, () => {
      const cpu = k.cpu();
      enterVmx(host, cpu);
      writeReferenceVmcs(host, cpu, rip);
      cpu.vmlaunch();
    });
    k.run({ maxInstructions: 10_000 });
    expect(exits, explain(host)).toBeGreaterThan(0);
    expect(k.dmesg()).not.toMatch(/BUG/);
  });
});

describe('IPIs to a CPU that runs a guest', () => {
  test('with external-interrupt exiting: a VM exit (reason 1), then the function in VMX root operation, then the exit handler', () => {
    const host = bootHost({ cpus: 2 });
    const k = host.kernel;
    const order: string[] = [];
    launchSpinner(host, 1, VMX_CONTROL.PIN_BASED_EXT_INTR_MASK, VMX_CONTROL.VM_EXIT_ACK_INTR_ON_EXIT, (cpu) => {
      const info = read(cpu, 'VM_EXIT_INTR_INFO');
      order.push(`exit ${read(cpu, 'VM_EXIT_REASON')} vector ${(info & 0xffn).toString(16)} valid ${info >> 31n}`);
      cpu.vmresume();
    });
    k.on_each_cpu((c) => order.push(`fn on ${c}, ${k.cpu().inVmxNonRoot() ? 'non-root' : 'root'}`));
    expect(order, explain(host)).toEqual([
      'fn on 0, root',
      'fn on 1, root',
      `exit ${EXIT_REASON.EXIT_REASON_EXTERNAL_INTERRUPT} vector ${CALL_FUNCTION_VECTOR.toString(16)} valid 1`,
    ]);
    expect(k.allCpus()[1]!.inVmxNonRoot(), 'the handler resumed the guest').toBe(true);
    // The IPI was taken (acknowledged and EOIed): the next run sees no second exit.
    k.run({ maxInstructions: 5_000 });
    expect(order).toHaveLength(3);
    expect(k.dmesg()).not.toMatch(/BUG|WARNING/);
  });

  test('without "acknowledge interrupt on exit" the vector stays pending until the host takes it; same order', () => {
    const host = bootHost({ cpus: 2 });
    const k = host.kernel;
    const order: string[] = [];
    launchSpinner(host, 1, VMX_CONTROL.PIN_BASED_EXT_INTR_MASK, 0, (cpu) => {
      order.push(`exit ${read(cpu, 'VM_EXIT_REASON')} info valid ${read(cpu, 'VM_EXIT_INTR_INFO') >> 31n}`);
      cpu.vmresume();
    });
    expect(k.smp_call_function_single(1, () => order.push('fn'))).toBe(0);
    k.run({ maxInstructions: 5_000 });
    expect(order, explain(host)).toEqual(['fn', `exit ${EXIT_REASON.EXIT_REASON_EXTERNAL_INTERRUPT} info valid 0`]);
  });

  test('without external-interrupt exiting the guest gets the interrupt: the function never runs, and the kernel says why', () => {
    const host = bootHost({ cpus: 2 });
    const k = host.kernel;
    let ran = false;
    launchSpinner(host, 1, 0, 0, (cpu) => cpu.vmresume());
    k.smp_call_function_single(1, () => void (ran = true));
    expect(ran).toBe(false);
    expect(k.dmesg()).toMatch(/BUG: CPU 1 did not take the function-call IPI .*Without "external-interrupt exiting" the guest receives the interrupt itself/);
  });

  test('smp_call_function_single refuses a CPU that does not exist', () => {
    const k = bootHost({ cpus: 2 }).kernel;
    expect(k.smp_call_function_single(2, () => undefined)).toBe(-22);
    expect(k.smp_call_function_single(-1, () => undefined)).toBe(-22);
  });
});

describe('sleeping and atomic context', () => {
  test('CONFIG_DEBUG_ATOMIC_SLEEP: a GFP_KERNEL allocation with preemption disabled is reported; GFP_ATOMIC is not', () => {
    const k = bootHost({ cpus: 2, debugAtomicSleep: true }).kernel;
    k.preempt_disable();
    k.kmalloc(32, 'GFP_ATOMIC');
    expect(k.dmesg()).not.toMatch(/BUG/);
    k.kmalloc(32);
    k.preempt_enable();
    expect(k.dmesg()).toMatch(/BUG: sleeping function called from invalid context at kmalloc\(GFP_KERNEL\)\n.*in_atomic\(\): 1, irqs_disabled\(\): [01]/);
  });

  test('without it (the default) the same call is silent', () => {
    const k = bootHost({ cpus: 2 }).kernel;
    k.preempt_disable();
    k.kmalloc(32);
    k.preempt_enable();
    expect(k.dmesg()).not.toMatch(/BUG/);
  });

  test('local_bh_disable keeps the task on its CPU, as preempt_disable does', () => {
    const k = bootHost({ cpus: 4, seed: 3 }).kernel;
    k.local_bh_disable();
    const cpu = k.cpu().id;
    for (let i = 0; i < 40; i++) k.kmalloc(16);
    expect(k.cpu().id).toBe(cpu);
    k.local_bh_enable();
    k.local_bh_enable();
    expect(k.dmesg()).toMatch(/WARNING: local_bh_enable\(\) without local_bh_disable\(\)/);
  });

  test('local_irq_save/restore nest: interrupts come back on only at the outer restore', () => {
    const k = bootHost({ cpus: 1 }).kernel;
    const lp = k.cpu().lp;
    lp.setReg('rflags', lp.getReg('rflags') | 0x200n);
    const outer = k.local_irq_save();
    const inner = k.local_irq_save();
    k.local_irq_restore(inner);
    expect(lp.getReg('rflags') & 0x200n).toBe(0n);
    k.local_irq_restore(outer);
    expect(lp.getReg('rflags') & 0x200n).toBe(0x200n);
  });

  test('msleep and mutex_lock are sleep points; msleep in atomic context and a double lock are bugs', () => {
    const k = bootHost({ cpus: 4, seed: 3 }).kernel;
    const seen = new Set<number>();
    const m = new Mutex();
    for (let i = 0; i < 40; i++) {
      k.mutex_lock(m);
      seen.add(k.cpu().id);
      k.mutex_unlock(m);
      k.msleep(1);
      seen.add(k.cpu().id);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(k.dmesg()).not.toMatch(/BUG/);
    k.mutex_lock(m);
    k.mutex_lock(m);
    expect(k.dmesg()).toMatch(/BUG: mutex_lock of a mutex this task already holds/);
    k.preempt_disable();
    k.msleep(5);
    expect(k.dmesg()).toMatch(/BUG: scheduling while atomic/);
  });
});
