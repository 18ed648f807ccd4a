// External interrupts and NMIs arriving while a real guest runs, against SDM Vol. 3C, "Pin-Based VM-Execution
// Controls", "VM-Exit Controls" (acknowledge interrupt on exit), "Changes to Event Blocking", "Information for VM
// Exits Due to Vectored Events", "Information for VM Exits During Event Delivery", "Saving Non-Register State"
// and "Updating Non-Register State". Expected values are computed here from those rules.
import type { VmcsFieldName } from '../fields.ts';
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import type { LocalApic } from '../../machine/apic.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { read, runRecordedGuest, write, type Host, type ReferenceGuest } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const EXTERNAL_INTERRUPT = BigInt(EXIT_REASON.EXIT_REASON_EXTERNAL_INTERRUPT);
const EXCEPTION_NMI = BigInt(EXIT_REASON.EXIT_REASON_EXCEPTION_NMI), CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const VALID = 1n << 31n, BIT12 = 1n << 12n, ERROR_CODE_VALID = 1n << 11n;
const TYPE_EXTERNAL = 0n, TYPE_NMI = 2n, TYPE_HARDWARE = 3n;
const VECTOR = 0x41;
const GUEST = 'bits 64\nmov eax, 1\ncpuid';

/** Make `vector` pending in the CPU's local APIC (software-enabled, TPR 0), as a fixed self-IPI would. */
function raiseInterrupt(cpu: HostCpu, vector: number): LocalApic {
  const apic = cpu.lp.apic as LocalApic;
  apic.writeXapic(0xf0, 0x1ff); // SVR: APIC software-enabled
  apic.deliver({ vector, deliveryMode: 'fixed', destMode: 'physical', destination: 0, shorthand: 'self', level: true, trigger: 'edge' });
  return apic;
}
const inIrr = (apic: LocalApic, v: number): boolean => ((apic.registers().irr[v >> 5]! >>> (v & 31)) & 1) === 1;
const inIsr = (apic: LocalApic, v: number): boolean => ((apic.registers().isr[v >> 5]! >>> (v & 31)) & 1) === 1;

function setControl(host: Host, cpu: HostCpu, field: VmcsFieldName, bits: number): void {
  write(host, cpu, field, read(cpu, field) | BigInt(bits));
}

describe('external-interrupt exiting', () => {
  it('with "acknowledge interrupt on exit": exit 1 before the next guest instruction even with IF = 0, the vector in the interruption information, the interrupt acknowledged (every model)', () => {
    for (const model of CPU_MODELS) {
      const eff = capabilitiesOf(model).effective;
      if ((eff.pin.allowed1 & C.PIN_BASED_EXT_INTR_MASK) === 0 || (eff.exit.allowed1 & C.VM_EXIT_ACK_INTR_ON_EXIT) === 0) continue;
      let apic: LocalApic | null = null;
      const run = runRecordedGuest({
        model: model.name, source: GUEST,
        setup: (host, cpu) => {
          setControl(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', C.PIN_BASED_EXT_INTR_MASK);
          setControl(host, cpu, 'VM_EXIT_CONTROLS', C.VM_EXIT_ACK_INTR_ON_EXIT);
          apic = raiseInterrupt(cpu, VECTOR);
        },
      });
      const what = `${model.name}\n${run.why()}`;
      const e = run.exits[0]!;
      expect(e.reason, what).toBe(EXTERNAL_INTERRUPT);
      expect(e.guestRip, `${what}: no guest instruction ran`).toBe(run.guest.rip);
      expect(e.qualification, what).toBe(0n);
      const cpu = run.host.kernel.cpu();
      expect(read(cpu, 'VM_EXIT_INTR_INFO'), what).toBe(BigInt(VECTOR) | (TYPE_EXTERNAL << 8n) | VALID);
      expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & VALID, what).toBe(0n);
      expect(inIsr(apic!, VECTOR) && !inIrr(apic!, VECTOR), `${what}: acknowledged (IRR → ISR)`).toBe(true);
    }
  });

  it('without "acknowledge interrupt on exit": the interruption information is invalid and the interrupt stays pending', () => {
    let apic: LocalApic | null = null;
    const run = runRecordedGuest({
      source: GUEST,
      setup: (host, cpu) => {
        setControl(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', C.PIN_BASED_EXT_INTR_MASK);
        apic = raiseInterrupt(cpu, VECTOR);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(EXTERNAL_INTERRUPT);
    expect(read(run.host.kernel.cpu(), 'VM_EXIT_INTR_INFO') & VALID).toBe(0n);
    expect(inIrr(apic!, VECTOR) && !inIsr(apic!, VECTOR)).toBe(true);
    expect(apic!.pendingVector()).toBe(VECTOR);
  });

  it('a guest in the HLT activity state exits from it, and is saved as HLT', () => {
    const run = runRecordedGuest({
      source: GUEST,
      setup: (host, cpu) => {
        if (!host.vmx[cpu.id]!.caps.misc.activityHlt) throw new Error('the default model supports the HLT activity state');
        setControl(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', C.PIN_BASED_EXT_INTR_MASK);
        write(host, cpu, 'GUEST_ACTIVITY_STATE', 1);
        raiseInterrupt(cpu, VECTOR);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(EXTERNAL_INTERRUPT);
    expect(read(run.host.kernel.cpu(), 'GUEST_ACTIVITY_STATE')).toBe(1n);
  });

  it('with the control 0, RFLAGS.IF = 0 blocks the interrupt: no exit, the guest runs on', () => {
    let apic: LocalApic | null = null;
    const run = runRecordedGuest({ source: GUEST, setup: (_host, cpu) => { apic = raiseInterrupt(cpu, VECTOR); } });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(apic!.pendingVector()).toBe(VECTOR);
  });

  it('with the control 0 and IF = 1, the interrupt is delivered through the guest IDT', () => {
    const run = runRecordedGuest({
      source: `${GUEST}\nhandler:\ncpuid`,
      setup: (host, cpu, g) => {
        guestIdt(host, cpu, g, VECTOR, 'handler');
        write(host, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | BigInt(RFLAGS.IF));
        raiseInterrupt(cpu, VECTOR);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(run.exits[0]?.guestRip).toBe(BigInt(run.guest.labels.get('handler')!));
  });
});

describe('NMI exiting', () => {
  it('an NMI exits with reason 0, vector 2 type 2; it is consumed and NMIs are blocked after the exit (every model)', () => {
    for (const model of CPU_MODELS) {
      if ((capabilitiesOf(model).effective.pin.allowed1 & C.PIN_BASED_NMI_EXITING) === 0) continue;
      const run = runRecordedGuest({
        model: model.name, source: GUEST,
        setup: (host, cpu) => {
          setControl(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', C.PIN_BASED_NMI_EXITING);
          cpu.lp.nmiPending = true;
        },
      });
      const what = `${model.name}\n${run.why()}`;
      const e = run.exits[0]!;
      expect(e.reason, what).toBe(EXCEPTION_NMI);
      expect(e.guestRip, what).toBe(run.guest.rip);
      expect(e.qualification, what).toBe(0n);
      const cpu = run.host.kernel.cpu();
      // Bit 12 is undefined with "NMI exiting" = 1 and "virtual NMIs" = 0.
      expect(read(cpu, 'VM_EXIT_INTR_INFO') & ~BIT12, what).toBe(2n | (TYPE_NMI << 8n) | VALID);
      expect(read(cpu, 'GUEST_INTERRUPTIBILITY_INFO') & 8n, `${what}: the guest was not NMI-blocked`).toBe(0n);
      expect(cpu.lp.nmiPending, `${what}: consumed`).toBe(false);
      expect(cpu.lp.nmiBlocked, `${what}: "VM exits caused directly by NMIs cause blocking by NMI"`).toBe(true);
    }
  });

  it('blocking by NMI in the guest holds the NMI back: no exit', () => {
    const run = runRecordedGuest({
      source: GUEST,
      setup: (host, cpu) => {
        setControl(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', C.PIN_BASED_NMI_EXITING);
        write(host, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 8);
        cpu.lp.nmiPending = true;
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(run.host.kernel.cpu().lp.nmiPending).toBe(true);
  });

  it('without NMI exiting the NMI is delivered; a #GP during its delivery exits with the NMI in IDT-vectoring', () => {
    const run = runRecordedGuest({
      source: GUEST,
      setup: (host, cpu) => {
        write(host, cpu, 'EXCEPTION_BITMAP', 1 << 13); // the guest IDT has limit 0: delivering vector 2 raises #GP
        cpu.lp.nmiPending = true;
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXCEPTION_NMI);
    const cpu = run.host.kernel.cpu();
    expect(read(cpu, 'VM_EXIT_INTR_INFO') & ~BIT12).toBe(13n | (TYPE_HARDWARE << 8n) | ERROR_CODE_VALID | VALID);
    expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE'), 'IDT entry 2, EXT = 1').toBe(2n * 8n + 2n + 1n);
    expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & ~BIT12).toBe(2n | (TYPE_NMI << 8n) | VALID);
    expect(e.guestRip).toBe(run.guest.rip);
  });
});

/** A guest IDT at guest-physical pa + 6000H with one 64-bit interrupt gate. */
function guestIdt(host: Host, cpu: HostCpu, g: ReferenceGuest, vector: number, label: string): void {
  const idt = Number(g.pa) + 0x6000;
  host.kernel.memset(g.va + 0x6000n, 0, 0x1000);
  writeIdtGate(host.machine.memory, idt, vector, g.labels.get(label)!, { selector: 0x08 });
  write(host, cpu, 'GUEST_IDTR_BASE', idt);
  write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
}
