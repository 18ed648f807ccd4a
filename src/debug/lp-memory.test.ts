// The inspectors on a running guest: x/nfu through the guest's page tables, and its register dump.
import { describe, expect, it } from 'vitest';
import { runGuest } from '../machine/testing/run-guest.ts';
import { examineLp, linearReader } from './lp-memory.ts';
import { formatRegisters, registersFromSnapshot } from './registers.ts';

describe('inspecting a logical processor', () => {
  const g = runGuest(`
    start:  mov rax, 0x1122334455667788
            push rax
            push 0x55
            mov rbx, message
            hlt
    message: db 'hi!', 0
  `);

  it('examines the stack and code by linear address', () => {
    expect(g.result.reason).toBe('all-halted');
    const rsp = g.lp.snapshot().rsp;
    expect(examineLp(g.lp, 'x/2gx $rsp').text).toBe(
      `0x${rsp.toString(16)}:\t0x0000000000000055\t0x1122334455667788`,
    );
    expect(examineLp(g.lp, 'x/s $rbx').text).toBe(`0x${g.labels.get('message')!.toString(16)}:\t"hi!"`);
    const start = g.labels.get('start')!;
    expect(examineLp(g.lp, `x/2i ${start}`, g.labels).text).toBe(
      `   0x${start.toString(16)} <start>:\tmov    rax,0x1122334455667788\n   0x${(start + 10).toString(16)} <start+10>:\tpush   rax`,
    );
  });

  it('reports unmapped linear addresses as gdb does', () => {
    // The helper maps the first 4 GiB; 0x4000_0000_0000 is not mapped.
    expect(examineLp(g.lp, 'x/xb 0x400000000000').text).toBe('0x400000000000:\tCannot access memory at address 0x400000000000');
    expect(linearReader(g.lp)(0x4000_0000_0000n, 1)).toBeNull();
  });

  it('dumps the registers from a snapshot', () => {
    const text = formatRegisters(registersFromSnapshot(g.lp.snapshot()));
    expect(text).toMatch(/^rax 0x1122334455667788  rbx 0x[0-9a-f]{16}/);
    expect(text).toContain(`rbx 0x${g.labels.get('message')!.toString(16).padStart(16, '0')}`);
    expect(text).toMatch(/cr0 0x[0-9a-f]{16} \[ PE .*PG \]/);
    expect(text).toMatch(/cs 0x0008/);
  });
});
