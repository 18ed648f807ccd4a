// The memory type of a device under EPT, end to end: a guest of the reference VM writes "Hi" to the MMIO UART at its
// guest-physical address FEB00000H (identity-mapped by a 4-GiB EPT) and exits on CPUID; the test reads what the
// device received at that exit and again at the HLT exit after the guest's WBINVD. The EPT entry's memory type and
// "ignore PAT" decide, with the guest's own PAT entry; the MTRRs (which make the hole UC) play no part under EPT.
// See SDM Vol. 3C, "EPT and Memory Typing"; the cache model: src/machine/memtype/cache-model.ts.
import { describe, expect, it } from 'vitest';
import { bootHost, buildIdentityEpt, enterVmx, explain, read, runGuests, write, writeReferenceVmcs } from '../../kernel/testing/reference-vm.ts';
import { MMIO_UART_BASE } from '../../machine/devices/mmio-uart.ts';
import { UART_REG } from '../../machine/devices/uart16550.ts';
import { explainDevicePage } from '../../machine/memtype/explain-device.ts';
import { VMX_CONTROL } from '../controls.ts';

const EXIT_CPUID = 10n, EXIT_HLT = 12n;
const RWX = 7n, LARGE = 1n << 7n, IGNORE_PAT = 1n << 6n;
const EPT_WB = 6n << 3n, EPT_UC = 0n << 3n;
/** Guest PDE flags: present, writable, 2-MByte page; PWT | PCD selects PAT entry 3 (UC at power-up). */
const PDE_2M = 0x83n, PWT = 1n << 3n, PCD = 1n << 4n;
const UART_2M = BigInt(MMIO_UART_BASE) & ~((1n << 21n) - 1n);

const GUEST = `bits 64
  mov rbx, ${MMIO_UART_BASE}
  mov byte [rbx + ${UART_REG.RBR_THR_DLL}], 'H'
  mov al, [rbx + ${UART_REG.LSR}]
  mov byte [rbx + ${UART_REG.RBR_THR_DLL}], 'i'
  mov al, [rbx + ${UART_REG.LSR}]
  cpuid
  wbinvd
  hlt`;

/** Run the guest with the EPT PDE for the UART's 2-MByte page set to `eptFlags` and the guest PDE to `guestFlags`. */
function runDeviceGuest(eptFlags: bigint, guestFlags: bigint) {
  const host = bootHost({ model: 'skylake-i5-6300u' });
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const seen: { reason: bigint; text: string }[] = [];
  const rip = k.hostEntry('device_exit_handler', (_k, c) => {
    const reason = read(c, 'VM_EXIT_REASON');
    seen.push({ reason, text: host.mmioUart.text() });
    if (reason !== EXIT_CPUID) return;
    write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
    c.vmresume();
  });
  const g = writeReferenceVmcs(host, cpu, rip, GUEST);
  // Guest paging: the reference guest maps the first GiB; add GiB 3 (the MMIO hole) in 2-MByte pages.
  const pd = k.virt_to_phys(k.get_zeroed_page());
  for (let i = 0n; i < 512n; i++) {
    const pa = (3n << 30n) | (i << 21n);
    k.write64(k.phys_to_virt(pd) + 8n * i, pa | PDE_2M | (pa === UART_2M ? guestFlags : 0n));
  }
  k.write64(g.va + 0x1000n + 3n * 8n, pd | 3n);
  // EPT: guest-physical = host-physical for 4 GiB, memory type WB; the UART's 2-MByte page gets `eptFlags`.
  const eptp = buildIdentityEpt(k, 4);
  const eptPd3 = k.phys_to_virt(eptp & ~0xfffn) + 0x2000n + 3n * 0x1000n;
  k.write64(eptPd3 + 8n * ((UART_2M >> 21n) & 511n), UART_2M | RWX | LARGE | eptFlags);
  const caps = host.vmx[cpu.id]!.caps.effective;
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS));
  write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', (caps.proc2.allowed0 | VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) >>> 0);
  write(host, cpu, 'EPT_POINTER', eptp);
  cpu.vmlaunch();
  runGuests(host, 100_000);
  return { host, seen, why: () => explain(host, `exits: ${seen.map((s) => `${s.reason} '${s.text}'`).join(', ')}`) };
}

describe('a device under EPT: the EPT memory type decides what it receives', () => {
  it('EPT WB (ignore PAT = 0) with a WB guest mapping: WB — nothing arrives until the guest\'s WBINVD, then only the last byte', () => {
    const run = runDeviceGuest(EPT_WB, 0n);
    expect(run.seen, run.why()).toEqual([{ reason: EXIT_CPUID, text: '' }, { reason: EXIT_HLT, text: 'i' }]);
  });

  it('EPT WB with "ignore PAT" = 1: WB although the guest maps the UART UC (the hypervisor bug chapter 7 is about)', () => {
    const run = runDeviceGuest(EPT_WB | IGNORE_PAT, PWT | PCD);
    expect(run.seen, run.why()).toEqual([{ reason: EXIT_CPUID, text: '' }, { reason: EXIT_HLT, text: 'i' }]);
    const text = explainDevicePage(run.host.machine.cpus[0]!, MMIO_UART_BASE).join('\n');
    expect(text).toContain('memory type of guest-physical 0xFEB00000: WB');
    expect(text).toContain('EPT: memory type WB, ignore PAT = 1');
    expect(text).toContain('writes held in a dirty line');
  });

  it('EPT WB with ignore PAT = 0 and the guest\'s UC mapping: UC — every byte arrives at once', () => {
    const run = runDeviceGuest(EPT_WB, PWT | PCD);
    expect(run.seen, run.why()).toEqual([{ reason: EXIT_CPUID, text: 'Hi' }, { reason: EXIT_HLT, text: 'Hi' }]);
  });

  it('EPT UC: UC whatever the guest maps — every byte arrives at once', () => {
    const run = runDeviceGuest(EPT_UC, 0n);
    expect(run.seen, run.why()).toEqual([{ reason: EXIT_CPUID, text: 'Hi' }, { reason: EXIT_HLT, text: 'Hi' }]);
    expect(explainDevicePage(run.host.machine.cpus[0]!, MMIO_UART_BASE).join('\n')).toContain('cache model: every access went to the device');
  });
});
