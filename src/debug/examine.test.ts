// gdb's x/nfu, compared with the exact text gdb prints (tab after the address and between values;
// 8 bytes or halfwords, 4 words or 2 giants per line; zero-padded hex for x with a unit).
import { describe, expect, it } from 'vitest';
import { examine } from './examine.ts';
import type { ReadMemory } from './examine.ts';

/** Memory holding `data` at `base`; everything else unreadable. */
function memoryAt(base: bigint, data: number[]): ReadMemory {
  return (addr, size) => {
    const off = Number(addr - base);
    if (off < 0 || off + size > data.length) return null;
    return Uint8Array.from(data.slice(off, off + size));
  };
}

function text(spec: string, read: ReadMemory, regs?: Record<string, bigint>): string {
  return examine(spec, read, { regs }).text;
}

describe('x/nfu output as gdb prints it', () => {
  const mem = memoryAt(0x1000n, [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff, 0x80, 0x7f, 0, 0, 0, 0]);

  it('x/4xb', () => {
    expect(text('x/4xb 0x1000', mem)).toBe('0x1000:\t0x01\t0x02\t0x03\t0x04');
  });

  it('x/9db wraps after 8 bytes and prints signed decimals', () => {
    const m = memoryAt(0x1fa4n, [1, 2, 3, 4, 5, 6, 7, 0xff, 0x80]);
    expect(text('x/9db 0x1fa4', m)).toBe('0x1fa4:\t1\t2\t3\t4\t5\t6\t7\t-1\n0x1fac:\t-128');
  });

  it('x/2ub and x/3uh are unsigned; halfwords are little-endian', () => {
    expect(text('x/2ub 0x1009', mem)).toBe('0x1009:\t255\t128');
    expect(text('x/3uh 0x1000', mem)).toBe('0x1000:\t513\t1027\t1541');
  });

  it('x/4gx prints two zero-padded giants per line', () => {
    const m = memoryAt(0x8000n, [
      0x07, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
      0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    expect(text('x/4gx 0x8000', m)).toBe(
      '0x8000:\t0x0000000000000007\t0x1122334455667788\n0x8010:\t0x8000000000000000\t0xffffffffffffffff',
    );
  });

  it('defaults to one hex word; x/5xw puts 4 per line', () => {
    expect(text('x 0x1000', mem)).toBe('0x1000:\t0x04030201');
    expect(text('x/5xw 0x1000', mem)).toBe('0x1000:\t0x04030201\t0x08070605\t0x7f80ff09\t0x00000000\n0x1010:\tCannot access memory at address 0x1010');
  });

  it('x/t, x/o, x/d on words, x/a, x/z', () => {
    expect(text('x/2tb 0x1000', mem)).toBe('0x1000:\t00000001\t00000010');
    expect(text('x/3ob 0x1007', mem)).toBe('0x1007:\t010\t011\t0377');
    expect(text('x/ob 0x100c', mem)).toBe('0x100c:\t0');
    expect(text('x/dw 0x1009', memoryAt(0x1009n, [0xfe, 0xff, 0xff, 0xff]))).toBe('0x1009:\t-2');
    expect(text('x/a 0x1000', mem)).toBe('0x1000:\t0x807060504030201');
    expect(text('x/zh 0x100c', mem)).toBe('0x100c:\t0x0000');
  });

  it('x/c shows value and character', () => {
    const m = memoryAt(0x2000n, [0x48, 0x69, 0x0a, 0x01, 0xff, 0x27]);
    expect(text('x/6c 0x2000', m)).toBe("0x2000:\t72 'H'\t105 'i'\t10 '\\n'\t1 '\\001'\t-1 '\\377'\t39 '\\''");
  });

  it('x/f reads doubles by default and floats with w', () => {
    const d = new DataView(new ArrayBuffer(12));
    d.setFloat64(0, 1.5, true);
    d.setFloat32(8, -0.25, true);
    const m = memoryAt(0x3000n, Array.from(new Uint8Array(d.buffer)));
    expect(text('x/f 0x3000', m)).toBe('0x3000:\t1.5');
    expect(text('x/fw 0x3008', m)).toBe('0x3008:\t-0.25');
  });

  it('x/s prints NUL-terminated strings with C escapes', () => {
    const m = memoryAt(0x4000n, [...Buffer.from('Hi\n"x"'), 0, ...Buffer.from('ok'), 0]);
    expect(text('x/2s 0x4000', m)).toBe('0x4000:\t"Hi\\n\\"x\\""\n0x4007:\t"ok"');
  });

  it('x/i disassembles, marks the current rip, and evaluates $registers', () => {
    // B8 01 00 00 00 = mov eax, 1; 0F 01 C1 = vmcall; F4 = hlt
    const m = memoryAt(0x8000n, [0xb8, 1, 0, 0, 0, 0x0f, 0x01, 0xc1, 0xf4]);
    expect(text('x/3i $rip', m, { rip: 0x8000n })).toBe('=> 0x8000:\tmov    eax,0x1\n   0x8005:\tvmcall\n   0x8008:\thlt');
    expect(text('/1i $rip + 5', m, { rip: 0x8000n })).toBe('   0x8005:\tvmcall');
    const r = examine('x/2i 0x8005', m);
    expect(r.ok && r.next).toBe(0x8009n);
  });
});

describe('symbols', () => {
  it('labels addresses <symbol+offset> like gdb, and x/a values too', () => {
    const m = memoryAt(0x8000n, [0xb8, 1, 0, 0, 0, 0xf4, 0, 0, 0x05, 0x80, 0, 0, 0, 0, 0, 0]);
    const symbols = new Map([['start', 0x8000], ['start.done', 0x8005], ['ptr', 0x8008]]);
    expect(examine('x/2i 0x8000', m, { symbols }).text).toBe('   0x8000 <start>:\tmov    eax,0x1\n   0x8005 <start.done>:\thlt');
    expect(examine('x/3xb 0x8005', m, { symbols }).text).toBe('0x8005 <start.done>:\t0xf4\t0x00\t0x00');
    expect(examine('x/a 0x8008', m, { symbols }).text).toBe('0x8008 <ptr>:\t0x8005 <start.done>');
    expect(examine('x/xb 0x8001', m, { symbols }).text).toBe('0x8001 <start+1>:\t0x01');
    const call = memoryAt(0x8010n, [0xe8, 0xeb, 0xff, 0xff, 0xff]); // call 0x8000
    expect(examine('x/i 0x8010', call, { symbols }).text).toBe('   0x8010 <ptr+8>:\tcall   0x8000 <start>');
  });
});

describe('errors', () => {
  const mem = memoryAt(0x1ffen, [1, 2]);

  it('stops at unreadable memory with gdb\'s message', () => {
    const r = examine('x/4xb 0x1ffe', mem);
    expect(r.ok).toBe(false);
    expect(r.text).toBe('0x1ffe:\t0x01\t0x02\tCannot access memory at address 0x2000');
    expect(!r.ok && r.error).toBe('Cannot access memory at address 0x2000');
    expect(examine('x/i 0x5000', mem).text).toBe('   0x5000:\tCannot access memory at address 0x5000');
    expect(examine('x/s 0x5000', mem).text).toBe('0x5000:\t<error: Cannot access memory at address 0x5000>');
  });

  it('explains bad specs', () => {
    expect(examine('x/4q 0x1000', mem)).toMatchObject({ ok: false, error: expect.stringContaining("Invalid format letter 'q'") });
    expect(examine('x/4x', mem)).toMatchObject({ ok: false, error: expect.stringContaining('Argument required') });
    expect(examine('x/x $nosuch', mem)).toMatchObject({ ok: false, error: expect.stringContaining('"nosuch"') });
    expect(examine('x/x 0x10 +', mem)).toMatchObject({ ok: false, error: expect.stringContaining('Bad address expression') });
  });
});
