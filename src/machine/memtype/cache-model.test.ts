// The cache model's visible effects, one guest per memory type (native: no VMX). The guest writes "Hi" to the MMIO
// UART's THR (polling LSR between the bytes, as a driver does), halts, then ends the effect (a fence, WBINVD, …) and
// halts again; the test reads what the device received at each halt. The type comes from the PDE that maps the UART
// (PAT, PCD, PWT) with IA32_PAT = TEST_PAT, and from the MTRRs: the pc board's firmware makes the hole UC; tests that
// need another type remove that range, so the default type WB is the MTRR type.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CPU_MODEL } from '../cpu-model.ts';
import { attachMmioUart, MMIO_UART_BASE, type MmioUart } from '../devices/mmio-uart.ts';
import { LSR, UART_REG } from '../devices/uart16550.ts';
import { prepareGuest } from '../testing/run-guest.ts';
import { LONG_MODE_LAYOUT } from '../testing/long-mode.ts';
import { MSR_IA32_CR_PAT, MTRRphysMask_MSR } from '../../x86/msr.ts';
import { CR0 } from '../../x86/control-registers.ts';
import type { Machine } from '../machine.ts';
import type { LogicalProcessor } from '../lp.ts';
import { explainDevicePage } from './explain-device.ts';
import { jitStats } from '../jit.ts';

/** IA32_PAT for these tests: entries 0 WB, 1 WT, 2 UC-, 3 UC, 4 WC, 5 WP, 6 UC-, 7 UC. */
const TEST_PAT = 0x0007050100070406n;
const PAT_INDEX = { WB: 0, WT: 1, 'UC-': 2, UC: 3, WC: 4, WP: 5 } as const;
type TypeName = keyof typeof PAT_INDEX;
/** The PDE of the long-mode helper's identity map that maps FEA00000H–FEBFFFFFH (2-MByte page). */
const UART_PDE = LONG_MODE_LAYOUT.pd + 3 * 0x1000 + ((MMIO_UART_BASE - 0xc0000000) >>> 21) * 8;
const PWT = 1 << 3, PCD = 1 << 4, PAT_LARGE = 1 << 12;
const FENCES = { sfence: 'db 0x0f, 0xae, 0xf8', mfence: 'db 0x0f, 0xae, 0xf0', lfence: 'db 0x0f, 0xae, 0xe8' } as const;

const HI = `
  mov rbx, ${MMIO_UART_BASE}
  mov byte [rbx + ${UART_REG.RBR_THR_DLL}], 'H'
  mov al, [rbx + ${UART_REG.LSR}]
  mov byte [rbx + ${UART_REG.RBR_THR_DLL}], 'i'
  mov al, [rbx + ${UART_REG.LSR}]
  hlt
`;

interface DeviceGuest {
  readonly machine: Machine;
  readonly lp: LogicalProcessor;
  readonly uart: MmioUart;
  /** Run to the next HLT. */
  run(): void;
}

function deviceGuest(source: string, opts: { type: TypeName; mtrrHole?: boolean }): DeviceGuest {
  const g = prepareGuest(source, { machine: { model: DEFAULT_CPU_MODEL } });
  const uart = attachMmioUart(g.machine.memory);
  const i = PAT_INDEX[opts.type];
  const pde = g.machine.memory.read32(UART_PDE);
  g.machine.memory.write32(UART_PDE, (pde | (i & 1 ? PWT : 0) | (i & 2 ? PCD : 0) | (i & 4 ? PAT_LARGE : 0)) >>> 0);
  g.lp.wrmsr(MSR_IA32_CR_PAT, TEST_PAT);
  // Without the firmware's UC range for the hole, the MTRR type is the default, WB: the PAT entry decides.
  if (opts.mtrrHole !== true) g.lp.wrmsr(MTRRphysMask_MSR(0), 0n);
  return {
    machine: g.machine, lp: g.lp, uart,
    run() {
      g.lp.activity = 'active';
      const r = g.machine.run({ maxInstructions: 10_000 });
      expect(r.reason, g.lp.lastFault?.message).toBe('all-halted');
    },
  };
}

describe('cache model: what a device mapped with each memory type receives', () => {
  it('UC: every write reaches the device, in order, and every read does too', () => {
    const g = deviceGuest(HI, { type: 'UC' });
    g.run();
    expect(g.uart.text()).toBe('Hi');
    expect(g.uart.reads[UART_REG.LSR]).toBe(2);
    expect(g.lp.caches.cachedLines()).toEqual([]);
  });

  it('UC-: as UC', () => {
    const g = deviceGuest(HI, { type: 'UC-' });
    g.run();
    expect(g.uart.text()).toBe('Hi');
  });

  it('WB: the output is missing until WBINVD writes the line back — and then only its last byte arrives', () => {
    const g = deviceGuest(`${HI}\n wbinvd\n hlt`, { type: 'WB' });
    g.run();
    expect(g.uart.text()).toBe('');
    // One line fill read the eight registers once; the second LSR read hit the line.
    expect(g.uart.reads.slice(0, 8)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(g.lp.caches.cachedLines()).toEqual([{ base: MMIO_UART_BASE, dirty: true }]);
    g.run();
    expect(g.uart.text()).toBe('i');
    expect(g.lp.caches.cachedLines()).toEqual([]);
  });

  it('WB: CLFLUSH of the line writes it back too', () => {
    const g = deviceGuest(`${HI}\n clflush [rbx]\n hlt`, { type: 'WB' });
    g.run();
    expect(g.uart.text()).toBe('');
    g.run();
    expect(g.uart.text()).toBe('i');
  });

  it('WB: INVD drops the dirty line — the output is lost for good', () => {
    const g = deviceGuest(`${HI}\n invd\n wbinvd\n hlt`, { type: 'WB' });
    g.run();
    g.run();
    expect(g.uart.text()).toBe('');
    expect(g.lp.caches.eventCounts.dropped).toBe(1);
  });

  it('WB: a status read is stale — input that arrives after the line was filled is not seen', () => {
    const src = `
      mov rbx, ${MMIO_UART_BASE}
      mov al, [rbx + ${UART_REG.LSR}]
      mov [0x5000], al
      hlt
      mov al, [rbx + ${UART_REG.LSR}]
      mov [0x5001], al
      mov al, [rbx + ${UART_REG.RBR_THR_DLL}]
      mov [0x5002], al
      hlt`;
    for (const [type, lsr, rbr] of [['UC', LSR.THRE | LSR.TEMT | LSR.DR, 0x78], ['WB', LSR.THRE | LSR.TEMT, 0], ['WT', LSR.THRE | LSR.TEMT, 0], ['WP', LSR.THRE | LSR.TEMT, 0], ['WC', LSR.THRE | LSR.TEMT | LSR.DR, 0x78]] as const) {
      const g = deviceGuest(src, { type });
      g.run();
      g.uart.pushInput('x');
      g.run();
      const m = g.machine.memory;
      expect([m.read8(0x5000), m.read8(0x5001), m.read8(0x5002)], type).toEqual([LSR.THRE | LSR.TEMT, lsr, rbr]);
    }
  });

  it('WT: writes go through, in order; reads are cached (the second LSR read does not reach the device)', () => {
    const g = deviceGuest(HI, { type: 'WT' });
    g.run();
    expect(g.uart.text()).toBe('Hi');
    expect(g.uart.reads[UART_REG.LSR]).toBe(1);
    expect(g.lp.caches.cachedLines()).toEqual([{ base: MMIO_UART_BASE, dirty: false }]);
  });

  it('WP: writes go through and invalidate the line, so the next read fills it again', () => {
    const g = deviceGuest(HI, { type: 'WP' });
    g.run();
    expect(g.uart.text()).toBe('Hi');
    expect(g.uart.reads[UART_REG.LSR]).toBe(2); // each LSR read after a write refills the line
    expect(g.lp.caches.eventCounts.fill).toBe(2);
  });

  for (const fence of ['sfence', 'mfence'] as const) {
    it(`WC: writes combine until ${fence.toUpperCase()} — then only the last byte written to THR arrives; reads are not cached`, () => {
      const g = deviceGuest(`${HI}\n ${FENCES[fence]}\n hlt`, { type: 'WC' });
      g.run();
      expect(g.uart.text()).toBe('');
      expect(g.uart.reads[UART_REG.LSR]).toBe(2);
      expect(g.lp.caches.pendingWriteCombining()).toEqual([{ base: MMIO_UART_BASE, bytes: 1 }]);
      g.run();
      expect(g.uart.text()).toBe('i');
      expect(g.lp.caches.pendingWriteCombining()).toEqual([]);
    });
  }

  it('WC: LFENCE does not drain the buffers; CPUID (serializing), OUT and locked instructions do', () => {
    const g = deviceGuest(`${HI}\n ${FENCES.lfence}\n hlt\n cpuid\n hlt`, { type: 'WC' });
    g.run();
    g.run();
    expect(g.uart.text()).toBe('');
    g.run();
    expect(g.uart.text()).toBe('i');
    const o = deviceGuest(`${HI}\n mov al, 0\n out 0x80, al\n hlt`, { type: 'WC' });
    o.run();
    o.run();
    expect(o.uart.text()).toBe('i');
    for (const locked of ['lock inc dword [0x5000]', 'xchg [0x5000], eax']) {
      const l = deviceGuest(`${HI}\n ${locked}\n hlt`, { type: 'WC' });
      l.run();
      l.run();
      expect(l.uart.text(), locked).toBe('i');
    }
  });

  it('the firmware\'s UC MTRR for the hole wins over a WB PAT entry: UC', () => {
    const g = deviceGuest(HI, { type: 'WB', mtrrHole: true });
    g.run();
    expect(g.uart.text()).toBe('Hi');
    expect(g.lp.caches.pages.get(MMIO_UART_BASE / 4096)?.decision.rule).toBe('mtrr-and-pat');
  });

  it('a WC PAT entry over the UC MTRR is WC (the one type the PAT can set over MTRR UC)', () => {
    const g = deviceGuest(`${HI}\n ${FENCES.sfence}\n hlt`, { type: 'WC', mtrrHole: true });
    g.run();
    expect(g.uart.text()).toBe('');
    g.run();
    expect(g.uart.text()).toBe('i');
  });

  it('PAT UC- (PCD = 1) over a WB MTRR: UC', () => {
    const g = deviceGuest(HI, { type: 'UC-' });
    g.run();
    expect(g.uart.text()).toBe('Hi');
    expect(g.lp.caches.pages.get(MMIO_UART_BASE / 4096)?.decision.type).toBe(0);
  });

  it('CR0.CD = 1: UC for lines not cached ("no-fill"), while a line cached before still serves reads', () => {
    const src = `
      mov rbx, ${MMIO_UART_BASE}
      mov al, [rbx + ${UART_REG.LSR}]
      mov rax, cr0
      bts rax, 30
      mov cr0, rax
      mov byte [rbx + 0x40], 1
      mov al, [rbx + 0x40]
      mov al, [rbx + ${UART_REG.LSR}]
      mov byte [rbx], 'H'
      hlt
      wbinvd
      mov byte [rbx], 'i'
      mov al, [rbx + ${UART_REG.LSR}]
      hlt`;
    const g = deviceGuest(src, { type: 'WB' });
    g.run();
    expect(g.lp.cr0 & CR0.CD).toBe(CR0.CD);
    // The line at offset 40H was never cached: it was read and written as UC (offsets 8–FFFH are reserved).
    expect(g.uart.reads[8]).toBe(56 + 1); // the first fill's 56 reserved bytes, then the UC read
    // The UART's line was cached under WB before CD = 1: the LSR read hit it, the THR write was held (dirty line).
    expect(g.uart.reads[UART_REG.LSR]).toBe(1);
    expect(g.uart.text()).toBe('');
    g.run();
    // WBINVD wrote 'H' back; afterwards nothing is cached and no fill happens: UC.
    expect(g.uart.text()).toBe('Hi');
    expect(g.uart.reads[UART_REG.LSR]).toBe(2);
    expect(g.lp.caches.cachedLines()).toEqual([]);
  });

  it('compiled code (a hot loop the block compiler runs) meets the same effects as interpreted code', () => {
    const loop = `
      mov rbx, ${MMIO_UART_BASE}
      mov ecx, 2000
    top:
      mov byte [rbx + ${UART_REG.RBR_THR_DLL}], cl
      mov al, [rbx + ${UART_REG.LSR}]
      dec ecx
      jnz top
      hlt`;
    const uc = deviceGuest(loop, { type: 'UC' });
    const compiledBefore = jitStats.compiled;
    uc.run();
    expect(jitStats.compiled).toBeGreaterThan(compiledBefore); // the loop ran as compiled code
    expect(uc.uart.raw().length).toBe(2000);
    expect(uc.uart.reads[UART_REG.LSR]).toBe(2000);
    const wb = deviceGuest(loop, { type: 'WB' });
    wb.run();
    expect(wb.uart.raw().length).toBe(0);
    expect(wb.uart.reads[UART_REG.LSR]).toBe(1);
    expect(wb.lp.caches.eventCounts.held).toBe(2000);
  });

  it('a machine without a CPU model has no MTRRs: device pages stay UC under a WB PAT entry', () => {
    const g = prepareGuest(HI);
    const uart = attachMmioUart(g.machine.memory);
    g.machine.run({ maxInstructions: 1000 });
    expect(uart.text()).toBe('Hi');
    expect(explainDevicePage(g.lp, MMIO_UART_BASE).join('\n')).toContain('no MTRRs');
  });

  it('RAM behaves the same under every type, and its pages keep their frame in the TLB (no cache model)', () => {
    const results = new Set<string>();
    for (const type of Object.keys(PAT_INDEX) as TypeName[]) {
      // The same PDE bits on the 2-MByte page at 200000H (RAM): write, read back, fence-free.
      const g = prepareGuest(`
        mov rbx, 0x200000
        mov qword [rbx], 0x1234
        mov byte [rbx + 1], 0x56
        mov rax, [rbx]
        mov [rbx + 8], rax
        hlt`, { machine: { model: DEFAULT_CPU_MODEL } });
      const pde = LONG_MODE_LAYOUT.pd + 8;
      const i = PAT_INDEX[type];
      g.machine.memory.write32(pde, (g.machine.memory.read32(pde) | (i & 1 ? PWT : 0) | (i & 2 ? PCD : 0) | (i & 4 ? PAT_LARGE : 0)) >>> 0);
      g.lp.wrmsr(MSR_IA32_CR_PAT, TEST_PAT);
      g.machine.run({ maxInstructions: 1000 });
      results.add(g.machine.memory.read64(0x200008).toString(16));
      const slot = (0x200000 >>> 12) & 1023;
      expect(g.lp.tlb.bytes[slot], type).not.toBeNull();
      expect(g.lp.caches.pages.size + g.lp.caches.cachedLines().length + g.lp.caches.pendingWriteCombining().length, type).toBe(0);
    }
    expect([...results]).toEqual(['5634']);
  });

  it('explainDevicePage: which type the accesses used, which rule decided, and what the model did with them', () => {
    const g = deviceGuest(HI, { type: 'WB' });
    g.run();
    const text = explainDevicePage(g.lp, MMIO_UART_BASE).join('\n');
    expect(text).toContain('memory type of physical 0xFEB00000: WB');
    expect(text).toContain('PAT: leaf');
    expect(text).toContain('writes held in a dirty line');
    expect(text).toContain('2 writes held');
  });
});
