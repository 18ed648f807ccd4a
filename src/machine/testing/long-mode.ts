// Test and chapter helper: put a logical processor straight into 64-bit mode with a GDT, a TSS, an (empty)
// IDT and 4-level identity-mapped page tables built in guest memory — the state a boot loader leaves behind.
// See SDM Vol. 3A, "Initializing IA-32e Mode".

import { AR, encodeDescriptor } from '../../x86/segments.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import type { PhysicalMemory } from '../memory.ts';
import type { LogicalProcessor } from '../lp.ts';

/** Where the helper puts things (physical = linear, identity-mapped). */
export const LONG_MODE_LAYOUT = {
  gdt: 0x1000,
  idt: 0x2000,
  tss: 0x3000,
  /** PML4, PDPT, then four page directories (first 4 GiB in 2-MByte pages). */
  pml4: 0x10000,
  pdpt: 0x11000,
  pd: 0x12000,
  /** Initial RSP (the stack grows down from here). */
  stackTop: 0x80000,
  /** Suggested load address for guest code. */
  code: 0x100000,
  /** Interrupt stack (IST1) top. */
  istTop: 0x90000,
} as const;

/** GDT selectors the helper installs. */
export const SELECTORS = {
  CODE64: 0x08,
  DATA: 0x10,
  CODE32: 0x18,
  USER_CODE64: 0x20 | 3,
  USER_DATA: 0x28 | 3,
  TSS: 0x30,
} as const;

export interface LongModeOptions {
  /** Start address (default LONG_MODE_LAYOUT.code). */
  rip?: number;
  /** Map 2-MByte pages with U/S = 1 (so CPL-3 code can run). Default false. */
  userPages?: boolean;
  /** Set EFER.NXE. Default true. */
  nxe?: boolean;
  /** Leave RFLAGS.IF set. Default false. */
  interrupts?: boolean;
}

/** Write a 16-byte 64-bit IDT gate (interrupt gate by default). See SDM Vol. 3A, "64-Bit Mode IDT". */
export function writeIdtGate(mem: PhysicalMemory, idtBase: number, vector: number, handler: number,
  opts: { trap?: boolean; dpl?: number; ist?: number; selector?: number; present?: boolean } = {}): void {
  const a = idtBase + vector * 16;
  const sel = opts.selector ?? SELECTORS.CODE64;
  const type = opts.trap ? 0xf : 0xe;
  const present = opts.present ?? true;
  const lo = (handler & 0xffff) | (sel << 16);
  const hi = (Math.floor(handler / 65536) & 0xffff) * 65536 + (present ? 0x8000 : 0) + ((opts.dpl ?? 0) << 13) + (type << 8) + ((opts.ist ?? 0) & 7);
  mem.write32(a, lo >>> 0);
  mem.write32(a + 4, hi >>> 0);
  mem.write32(a + 8, Math.floor(handler / 2 ** 32) >>> 0);
  mem.write32(a + 12, 0);
}

/** Build the GDT/TSS/IDT/page tables in memory and load the LP's registers for 64-bit mode at CPL 0. */
export function enterLongMode(lp: LogicalProcessor, opts: LongModeOptions = {}): void {
  const mem = lp.memory;
  const L = LONG_MODE_LAYOUT;
  // GDT.
  const code64 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G;
  const data = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
  const code32 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G;
  const entries: [number, number][] = [
    [0, 0],
    encodeDescriptor(0, 0xffffffff, code64),
    encodeDescriptor(0, 0xffffffff, data),
    encodeDescriptor(0, 0xffffffff, code32),
    encodeDescriptor(0, 0xffffffff, code64 | (3 << AR.DPL_SHIFT)),
    encodeDescriptor(0, 0xffffffff, data | (3 << AR.DPL_SHIFT)),
    encodeDescriptor(L.tss, 0x67, AR.P | 0x9), // 64-bit TSS (available), low half
    [0, 0], // TSS base bits 63:32
  ];
  entries.forEach(([lo, hi], i) => {
    mem.write32(L.gdt + i * 8, lo);
    mem.write32(L.gdt + i * 8 + 4, hi);
  });
  // TSS: RSP0 and IST1.
  for (let i = 0; i < 0x68; i += 4) mem.write32(L.tss + i, 0);
  mem.write32(L.tss + 4, L.stackTop);
  mem.write32(L.tss + 0x24, L.istTop);
  // IDT: all gates not present (a test installs what it needs with writeIdtGate).
  for (let i = 0; i < 256 * 16; i += 4) mem.write32(L.idt + i, 0);
  // Page tables: PML4[0] → PDPT; PDPT[0..3] → PD0..3; each PD maps 1 GiB in 2-MByte pages.
  const us = opts.userPages ? 4 : 0;
  const clear = (base: number) => { for (let i = 0; i < 4096; i += 4) mem.write32(base + i, 0); };
  clear(L.pml4);
  clear(L.pdpt);
  mem.write32(L.pml4, L.pdpt | 0x3 | us);
  for (let g = 0; g < 4; g++) {
    const pd = L.pd + g * 0x1000;
    mem.write32(L.pdpt + g * 8, pd | 0x3 | us);
    mem.write32(L.pdpt + g * 8 + 4, 0);
    for (let i = 0; i < 512; i++) {
      const pa = g * 0x40000000 + i * 0x200000;
      mem.write32(pd + i * 8, (pa | 0x83 | us) >>> 0); // P RW PS
      mem.write32(pd + i * 8 + 4, 0);
    }
  }

  // Registers.
  lp.activity = 'active';
  lp.lgdt(BigInt(L.gdt), entries.length * 8 - 1);
  lp.lidt(BigInt(L.idt), 256 * 16 - 1);
  lp.cr4 = CR4.PAE;
  lp.cr3 = L.pml4;
  lp.efer = EFER.LME | EFER.LMA | (opts.nxe === false ? 0 : EFER.NXE);
  lp.cr0 = CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.PG;
  lp.setSegment('cs', { selector: SELECTORS.CODE64, base: 0n, limit: 0xffffffff, ar: code64 });
  for (const s of ['ds', 'es', 'ss', 'fs', 'gs'] as const) lp.setSegment(s, { selector: SELECTORS.DATA, base: 0n, limit: 0xffffffff, ar: data });
  lp.setSegment('tr', { selector: SELECTORS.TSS, base: BigInt(L.tss), limit: 0x67, ar: AR.P | 0xb });
  lp.setSegment('ldtr', { selector: 0, base: 0n, limit: 0, ar: AR.UNUSABLE });
  lp.setReg('rsp', BigInt(L.stackTop));
  lp.setRflags(RFLAGS.FIXED1 | (opts.interrupts ? RFLAGS.IF : 0));
  lp.rip = opts.rip ?? L.code;
  lp.tlb.flushAll();
  lp.updateMode();
}

/** Load bytes at a physical address. */
export function loadBytes(mem: PhysicalMemory, pa: number, bytes: ArrayLike<number>): void {
  mem.writeBytes(pa, bytes);
}
