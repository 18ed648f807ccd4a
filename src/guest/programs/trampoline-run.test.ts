// The trampoline run on the emulated machine: an application processor started by INIT and SIPI
// reaches 64-bit mode, prints through port E9H and writes through its page tables.
import { describe, expect, it } from 'vitest';
import { DebugConsole, DEBUG_CONSOLE_PORT } from '../../machine/devices/debug-console.ts';
import { Machine } from '../../machine/machine.ts';
import { buildLongModeTrampoline } from './long-mode-trampoline.ts';

describe('long-mode trampoline on the machine', () => {
  it('takes an AP from SIPI (real mode) to 64-bit mode', () => {
    const t = buildLongModeTrampoline({
      base: 0x8000,
      stack: 0x7000,
      body: `mov al, 'L'
        out 0xe9, al
        mov rax, 0x1122334455667788
        mov [0x600008], rax        ; inside the identity-mapped first GiB
        push rax                   ; the stack works too
        hlt`,
    });
    const machine = new Machine({ cpus: 1 });
    const console = new DebugConsole();
    machine.io.register(DEBUG_CONSOLE_PORT, 1, console);
    machine.memory.writeBytes(0x8000, t.bytes);
    const lp = machine.cpus[0]!;
    lp.init(); // wait for SIPI, as an AP does after INIT
    lp.startup(t.sipiVector);
    const result = machine.run({ maxInstructions: 10_000 });
    expect(result.reason).toBe('all-halted');
    expect(console.text()).toBe('L');
    expect(machine.memory.read64(0x600008)).toBe(0x1122334455667788n);
    expect(machine.memory.read64(0x7000 - 8)).toBe(0x1122334455667788n);
  });
});
