// Exercise 5.4 — I/O: the exit qualification, the I/O bitmaps (with the FFFFH wrap rule) and a virtual 16550 at
// COM1 that the guest prints through. Decoding, the bitmap rule and the UART's registers are checked on their own
// against the SDM and the 16550 datasheet; then the part runs on the kit's hypervisor (not yours) on every model.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { createUart, decodeIoQualification, ioAccessExits, ioBitmapPosition, serialPart } from '#impl/05-exits/io';
import { CPU_MODELS, runPart, type PartRun } from './support.ts';

const IO_INSTRUCTION = 30;
const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const QUAL_RULE = 'SDM Vol. 3C, "Exit Qualification for I/O Instructions": bits 2:0 the size minus 1 (0 = 1 byte, 1 = 2, 3 = 4), ' +
  'bit 3 the direction (1 = IN), bit 4 string (INS/OUTS), bit 5 REP, bit 6 the operand (1 = immediate port, 0 = DX), bits 31:16 the port';
const BITMAP_RULE = 'SDM Vol. 3C, "I/O-Bitmap Addresses": bitmap A holds one bit for each port 0000H–7FFFH, bitmap B for 8000H–FFFFH; ' +
  'port n is bit (n mod 8) of byte ((n mod 8000H) / 8)';
const WRAP_RULE = 'SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally": with "use I/O bitmaps" = 1 an access exits if the bit of ' +
  'any port it touches is 1 — and if it wraps around the 16-bit I/O space (touches FFFFH and 0000H), it exits whatever the bits say';

describe('decodeIoQualification', () => {
  test('every field of the qualification', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(1, 2, 4), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), (port, size, isIn, str, rep, imm) => {
      const q = BigInt(((port << 16) | (imm ? 0x40 : 0) | (rep ? 0x20 : 0) | (str ? 0x10 : 0) | (isIn ? 8 : 0) | (size - 1)) >>> 0);
      const want = { port, size, direction: isIn ? 'in' : 'out', string: str, rep, immediate: imm };
      expect(decodeIoQualification(q), `qualification ${hex(q)}. ${QUAL_RULE}`).toEqual(want);
    }));
  });
});

describe('the I/O bitmaps', () => {
  test('ioBitmapPosition: bitmap, byte and bit of every port', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (port) => {
      const want = { bitmap: port < 0x8000 ? 'A' : 'B', byte: Math.floor((port % 0x8000) / 8), bit: port % 8 };
      expect(ioBitmapPosition(port), `port ${hex(port)}. ${BITMAP_RULE}`).toEqual(want);
    }));
  });

  test('ioAccessExits: any bit of the ports touched, and always when the access wraps at FFFFH', () => {
    const ports = fc.oneof(fc.integer({ min: 0xfff8, max: 0xffff }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(fc.property(ports, fc.constantFrom<1 | 2 | 4>(1, 2, 4), fc.uniqueArray(fc.oneof(fc.integer({ min: 0xfff8, max: 0xffff }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffff })), { maxLength: 6 }), (port, size, set) => {
      const isSet = (p: number): boolean => set.includes(p);
      let want = port + size - 1 > 0xffff;
      for (let p = port; p < port + size && p <= 0xffff; p++) want ||= isSet(p);
      expect(ioAccessExits(isSet, port, size), `a ${size}-byte access at ${hex(port)} with bits set for [${set.map(hex).join(', ')}]. ${WRAP_RULE}`).toBe(want);
    }));
  });

  test('the wrap, spelled out: 2 bytes at FFFFH exit with every bit clear; 2 bytes at FFFEH do not', () => {
    expect(ioAccessExits(() => false, 0xffff, 2), WRAP_RULE).toBe(true);
    expect(ioAccessExits(() => false, 0xfffd, 4), WRAP_RULE).toBe(true);
    expect(ioAccessExits(() => false, 0xfffe, 2), 'FFFEH and FFFFH: no wrap, no bit set, no exit').toBe(false);
  });
});

describe('the virtual UART (PC16550D registers)', () => {
  test('the divisor latch, line control, scratch, and a transmitter that is always ready', () => {
    const u = createUart();
    u.write(3, 0x80); // LCR.DLAB = 1
    u.write(0, 0x01); // DLL
    u.write(1, 0x00); // DLM
    expect([u.read(0), u.read(1)], 'with LCR.DLAB = 1, offsets 0 and 1 are the divisor latch (DLL, DLM)').toEqual([0x01, 0x00]);
    u.write(3, 0x03); // 8 data bits, no parity, 1 stop bit; DLAB = 0
    expect(u.read(3), 'LCR reads back what was written').toBe(0x03);
    u.write(7, 0x5a);
    expect(u.read(7), 'the scratch register reads back what was written').toBe(0x5a);
    expect(u.read(5) & 0x60, 'LSR: THRE (bit 5) and TEMT (bit 6) — a virtual transmitter is never busy').toBe(0x60);
    expect(u.read(5) & 0x01, 'LSR.DR = 0: nothing received').toBe(0);
    expect(u.read(2) & 0x0f, 'IIR bit 0 = 1: no interrupt pending').toBe(0x01);
    u.write(0, 0x68);
    u.write(0, 0x69);
    expect(u.output(), 'bytes written to offset 0 with DLAB = 0 go to THR, and out').toBe('hi');
    expect(u.read(0), 'RBR: nothing received').toBe(0);
  });
});

// The guest sets up COM1 as Linux's early console does, prints through it (polling LSR.THRE), and checks IN of
// every width; E9H (the debug console) and 80H (POST codes) are not intercepted.
const SERIAL_GUEST = `
bits 64
default rel
        mov dx, 0x3fb
        mov al, 0x80
        out dx, al                      ; LCR: DLAB = 1
        mov dx, 0x3f8
        mov al, 1
        out dx, al                      ; DLL: 115200 baud
        inc dx
        xor eax, eax
        out dx, al                      ; DLM
        mov dx, 0x3fb
        mov al, 3
        out dx, al                      ; LCR: 8N1, DLAB = 0
        mov dx, 0x3f9
        xor eax, eax
        out dx, al                      ; IER: no interrupts
        mov dx, 0x3fa
        mov al, 0xc7
        out dx, al                      ; FCR: FIFOs on, cleared
        mov dx, 0x3fc
        mov al, 0x0b
        out dx, al                      ; MCR: DTR, RTS, OUT2
        lea rsi, [msg]
.next:  lodsb
        test al, al
        jz .done
        mov bl, al
        mov dx, 0x3fd
.wait:  in al, dx                       ; LSR: wait for THRE
        test al, 0x20
        jz .wait
        mov al, bl
        mov dx, 0x3f8
        out dx, al
        jmp .next
.done:  mov al, 'e'
        out 0xe9, al                    ; the debug console: no VM exit
        out 0x80, al                    ; a POST code: no VM exit
        mov al, 0x5a
        mov dx, 0x3ff
        out dx, al                      ; the scratch register
        mov rax, 0x1122334455667788
        in al, dx                       ; IN AL keeps RAX[63:8]
        mov [in8], rax
        mov rax, 0x1122334455667788
        mov dx, 0x3fb
        in ax, dx                       ; IN AX: LCR, MCR; keeps RAX[63:16]
        mov [in16], rax
        mov rax, 0x1122334455667788
        mov dx, 0x3fd
        in eax, dx                      ; IN EAX: LSR, MSR, SCR and port 400H (no device: FFH); clears RAX[63:32]
        mov [in32], rax
        mov rax, 0x1122334455667788
        mov dx, 0xffff
        in ax, dx                       ; FFFFH and 0000H: wraps, exits although neither bit is set
        mov [inwrap], rax
        hlt
msg:    db 'hello, COM1', 10, 0
align 8
in8:    dq 0
in16:   dq 0
in32:   dq 0
inwrap: dq 0
`;

function ioExits(run: PartRun): string[] {
  return run.exits.filter((e) => e.reason === IO_INSTRUCTION).map((e) => {
    const q = Number(e.qualification & 0xffffffffn);
    return `${(q & 8) !== 0 ? 'IN' : 'OUT'} ${(q & 7) + 1} ${hex((q >>> 16) & 0xffff)}`;
  });
}

describe('the serial part, in a guest', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: the bitmaps intercept exactly COM1', (model) => {
    const run = runPart({ model, part: serialPart().part, source: 'bits 64\nhlt\n' });
    const proc = Number(run.field('CPU_BASED_VM_EXEC_CONTROL'));
    expect((proc >>> 25) & 1, run.why('"use I/O bitmaps" (primary processor-based bit 25) must be 1')).toBe(1);
    expect((proc >>> 24) & 1, run.why('"unconditional I/O exiting" (bit 24) should be 0 (the CPU ignores it when the bitmaps are used)')).toBe(0);
    const k = run.host.kernel;
    for (const [field, first] of [['IO_BITMAP_A', 0], ['IO_BITMAP_B', 0x8000]] as const) {
      const pa = run.field(field);
      expect(pa & 0xfffn, run.why(`${field} must be the 4-KByte-aligned physical address of a bitmap page`)).toBe(0n);
      const got = k.readBytes(k.phys_to_virt(pa), 4096);
      const want = new Uint8Array(4096);
      for (let port = 0x3f8; port <= 0x3ff; port++) if (port >= first && port < first + 0x8000) want[(port - first) >> 3]! |= 1 << (port & 7);
      const diff = want.findIndex((b, i) => b !== got[i]);
      expect(diff, run.why(`${field} byte ${diff}: expected 0x${want[diff]?.toString(16)}, found 0x${got[diff]?.toString(16)} (the bits of ports 3F8H–3FFH and nothing else). ${BITMAP_RULE}`)).toBe(-1);
    }
    expect(run.freeAfterRelease, run.why('release() must free both bitmap pages')).toBe(run.freeBeforeSetup);
  });

  // Needs I/O exits in the emulator (src/vmx/nonroot/io.ts).
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: the guest prints through COM1; only COM1 and the wrap exit; IN writes AL, AX or EAX', (model) => {
    const serial = serialPart();
    const run = runPart({ model, part: serial.part, source: SERIAL_GUEST, budget: 40_000 });
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    expect(serial.uart.output(), run.why('what the guest wrote to THR (3F8H with DLAB = 0)')).toBe('hello, COM1\n');
    expect(run.host.console.text(), run.why('OUT to E9H is not intercepted: it reaches the debug console without a VM exit')).toBe('e');
    const ports = ioExits(run).map((x) => x.split(' ')[2]!);
    expect(ports.filter((p) => !['0x3f8', '0x3f9', '0x3fa', '0x3fb', '0x3fc', '0x3fd', '0x3fe', '0x3ff', '0xffff'].includes(p)), run.why(`I/O exits only for COM1 (3F8H–3FFH), and for the access that wraps at FFFFH. ${WRAP_RULE}`)).toEqual([]);
    expect(ioExits(run).slice(-4), run.why(`the last four I/O exits: OUT to the scratch register, then IN of 1, 2 and 4 bytes, then the 2-byte IN at FFFFH that wraps. ${QUAL_RULE}`)).toEqual(['IN 1 0x3ff', 'IN 2 0x3fb', 'IN 4 0x3fd', 'IN 2 0xffff']);
    const at = (label: string): bigint => run.qword(label);
    expect(hex(at('in8')), run.why('IN AL from the scratch register: AL = 5AH, RAX[63:8] unchanged')).toBe('0x112233445566775a');
    expect(hex(at('in16')), run.why('IN AX from 3FBH: AL = LCR (03H), AH = MCR (0BH) — each byte of a wide access goes to the next port; RAX[63:16] unchanged')).toBe('0x1122334455660b03');
    expect(hex(at('in32')), run.why('IN EAX from 3FDH: LSR 60H, MSR B0H, SCR 5AH, and FFH from port 400H where no device answers; a 32-bit result clears RAX[63:32]')).toBe('0xff5ab060');
    expect(hex(at('inwrap')), run.why('IN AX from FFFFH touches FFFFH and 0000H: no device, FFFFH')).toBe('0x112233445566ffff');
  });

  // Needs I/O exits in the emulator (src/vmx/nonroot/io.ts).
  test('string I/O is not emulated: the part stops the guest and says why', () => {
    const run = runPart({ part: serialPart().part, source: 'bits 64\ndefault rel\nlea rsi, [m]\nmov ecx, 2\nmov dx, 0x3f8\nrep outsb\nhlt\nm: db "hi"\n' });
    expect(run.outcome.kind, run.why('REP OUTSB exits before its first iteration, with bits 4 (string) and 5 (REP) of the qualification set')).toBe('stopped');
    expect(run.outcome.kind === 'stopped' ? run.outcome.why : '', run.why()).toMatch(/string|OUTS/i);
  });
});
