import { describe, expect, it } from 'vitest';
import { IoSpace } from '../io.ts';
import { DEBUG_CONSOLE_PORT, DebugConsole } from './debug-console.ts';

function setup() {
  const io = new IoSpace();
  const con = new DebugConsole();
  io.register(DEBUG_CONSOLE_PORT, 1, con);
  return { io, con };
}

describe('port E9H debug console', () => {
  it('captures bytes written to E9H as text', () => {
    const { io, con } = setup();
    for (const ch of 'Hello, VMX\n') io.out(0xe9, 1, ch.charCodeAt(0));
    expect(con.text()).toBe('Hello, VMX\n');
    expect(Array.from(con.raw())).toEqual(Array.from(new TextEncoder().encode('Hello, VMX\n')));
  });

  it('reads back E9H (the presence check), and nothing claims the neighbouring port', () => {
    const { io } = setup();
    expect(io.in(0xe9, 1)).toBe(0xe9);
    expect(io.in(0xe9, 2)).toBe(0xffe9);
    expect(io.in(0xe9, 4)).toBe(0xffffffe9);
    expect(io.in(0xea, 1)).toBe(0xff);
  });

  it('takes only the low byte of a wider OUT', () => {
    const { io, con } = setup();
    io.out(0xe9, 2, 0x4241);
    io.out(0xe9, 4, 0x44434243);
    expect(con.text()).toBe('AC');
  });

  it('clear() empties the capture, decodes UTF-8, and reports bytes live', () => {
    const { io, con } = setup();
    const seen: number[] = [];
    con.onByte = (b) => seen.push(b);
    io.out(0xe9, 1, 0x78);
    con.clear();
    expect(con.text()).toBe('');
    for (const b of new TextEncoder().encode('é')) io.out(0xe9, 1, b);
    expect(con.text()).toBe('é');
    expect(seen).toEqual([0x78, 0xc3, 0xa9]);
  });

  it('keeps separate text per machine', () => {
    const a = setup();
    const b = setup();
    a.io.out(0xe9, 1, 0x61);
    b.io.out(0xe9, 1, 0x62);
    expect(a.con.text()).toBe('a');
    expect(b.con.text()).toBe('b');
  });
});
