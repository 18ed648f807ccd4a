// Several logical processors: each sees its own local APIC at FEE00000H, and the BSP starts an AP with
// INIT + SIPI through the ICR; the AP runs a real-mode → long-mode trampoline.
import { describe, expect, it } from 'vitest';
import { assembleOrThrow } from '../guest/assembler.ts';
import { Machine } from './machine.ts';
import { DebugConsole, DEBUG_CONSOLE_PORT } from './devices/debug-console.ts';
import { enterLongMode, LONG_MODE_LAYOUT as L } from './testing/long-mode.ts';

describe('SMP', () => {
  it('each LP reads its own APIC ID through the same physical address', () => {
    const m = new Machine({ cpus: 3, quantum: 5 });
    m.cpus.forEach((lp, i) => {
      const origin = 0x100000 + i * 0x1000;
      enterLongMode(lp, { rip: origin });
      const { bytes } = assembleOrThrow(`bits 64\nmov rbx, 0xfee00000\nmov eax, [rbx + 0x20]\nmov [${0x9000 + i * 4}], eax\nhlt`, { origin });
      m.memory.writeBytes(origin, bytes);
    });
    expect(m.run({ maxInstructions: 1000 }).reason).toBe('all-halted');
    // xAPIC ID register: ID in bits 31:24. See SDM Vol. 3A, "Local APIC ID".
    expect([0, 1, 2].map((i) => m.memory.read32(0x9000 + i * 4) >>> 24)).toEqual([0, 1, 2]);
  });

  it('INIT-SIPI from the BSP starts the AP in real mode at vector × 1000H', () => {
    const m = new Machine({ cpus: 2, quantum: 50 });
    const con = new DebugConsole();
    m.io.register(DEBUG_CONSOLE_PORT, 1, con);
    const [bsp, ap] = m.cpus as [typeof m.cpus[0], typeof m.cpus[0]];
    expect(ap!.activity).toBe('wait-for-sipi');
    enterLongMode(bsp!);
    const boot = assembleOrThrow(`bits 64
      mov rbx, 0xfee00000
      mov dword [rbx + 0x310], 1 << 24  ; ICR high: destination APIC ID 1
      mov dword [rbx + 0x300], 0x4500   ; INIT, level assert
      mov dword [rbx + 0x300], 0x4608   ; start-up IPI, vector 08H → 8000H
      mov al, 'B'
      out 0xe9, al
      hlt`, { origin: L.code });
    m.memory.writeBytes(L.code, boot.bytes);
    const tramp = assembleOrThrow(`
      bits 16
      org 0x8000
      cli
      xor ax, ax
      mov ds, ax
      lgdt [gdtr]
      mov eax, cr0
      or al, 1
      mov cr0, eax
      jmp 0x18:pm32
      bits 32
    pm32:
      mov ax, 0x10
      mov ds, ax
      mov ss, ax
      mov eax, cr4
      or eax, 0x20
      mov cr4, eax
      mov eax, ${L.pml4}
      mov cr3, eax
      mov ecx, 0xc0000080
      rdmsr
      or eax, 0x100
      wrmsr
      mov eax, cr0
      or eax, 0x80000000
      mov cr0, eax
      jmp 0x08:lm64
      bits 64
    lm64:
      mov rsp, 0x70000
      mov rbx, 0xfee00000
      mov eax, [rbx + 0x20]
      shr eax, 24
      add al, '0'
      out 0xe9, al
      hlt
      align 8
    gdt: dq 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF, 0x00CF9A000000FFFF
    gdtr: dw 31
      dd gdt`, { origin: 0x8000, bits: 16 });
    m.memory.writeBytes(0x8000, tramp.bytes);
    const r = m.run({ maxInstructions: 10_000 });
    expect(r.reason).toBe('all-halted');
    expect(con.text()).toContain('B');
    expect(con.text()).toContain('1'); // the AP printed its own APIC ID from 64-bit mode
    expect(ap!.bits).toBe(64);
  });
});

describe('CR8 and the APIC TPR', () => {
  it('MOV CR8 writes TPR[7:4] and reads it back', () => {
    const m = new Machine();
    const lp = m.cpus[0]!;
    enterLongMode(lp);
    const { bytes } = assembleOrThrow(`bits 64
      mov eax, 5
      mov cr8, rax
      mov rbx, 0xfee00000
      mov ecx, [rbx + 0x80]
      mov rdx, cr8
      hlt`, { origin: L.code });
    m.memory.writeBytes(L.code, bytes);
    m.run({ maxInstructions: 100 });
    expect(lp.getReg('rcx')).toBe(0x50n);
    expect(lp.getReg('rdx')).toBe(5n);
  });
});
