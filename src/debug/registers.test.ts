import { describe, expect, it } from 'vitest';
import { formatRegisters } from './registers.ts';

describe('formatRegisters', () => {
  it('dumps GPRs four per line, rip/rflags with flag names, selectors, control registers', () => {
    const text = formatRegisters({
      rax: 1n, rbx: 0x8000n, rcx: 0n, rdx: -1n,
      rip: 0x8005n, rflags: 0x246n,
      cs: 0x8n, ss: 0x10n,
      cr0: 0x80010031n, cr3: 0x1000n, efer: 0x500n,
    });
    expect(text.split('\n')).toEqual([
      'rax 0x0000000000000001  rbx 0x0000000000008000  rcx 0x0000000000000000  rdx 0xffffffffffffffff',
      'rip 0x0000000000008005  rflags 0x0000000000000246 [ PF ZF IF ]',
      'cs 0x0008  ss 0x0010',
      'cr0 0x0000000080010031 [ PE ET NE WP PG ]  cr3 0x0000000000001000',
      'efer 0x0000000000000500 [ LME LMA ]',
    ]);
  });

  it('shows IOPL and tolerates an empty or upper-case snapshot', () => {
    expect(formatRegisters({})).toBe('');
    expect(formatRegisters({ RFLAGS: 0x3202n })).toBe('rflags 0x0000000000003202 [ IF IOPL=3 ]');
  });
});
