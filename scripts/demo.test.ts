// `npm run demo` (scripts/demo.ts), run in-process: the guest's serial text, the exit counts its program implies,
// shares that add up, and failures that say what went wrong instead of throwing. Time is measured with a fake clock
// (one tick per reading), so nothing here depends on the wall clock.
import { describe, expect, test } from 'vitest';
import { CPU_MODELS, DEFAULT_CPU_MODEL } from '../src/machine/cpu-model.ts';
import { EXIT_REASON, exitReasonByNumber } from '../src/vmx/exit-reasons.ts';
import { DEMO_CPUS, main, runDemo, USAGE, type DemoGuest, type DemoResult, type DemoSummary } from './demo.ts';

const {
  EXIT_REASON_CPUID: CPUID, EXIT_REASON_IO_INSTRUCTION: IO, EXIT_REASON_MSR_READ: MSR_READ, EXIT_REASON_MSR_WRITE: MSR_WRITE,
  EXIT_REASON_VMCALL: VMCALL, EXIT_REASON_CR_ACCESS: CR_ACCESS, EXIT_REASON_HLT: HLT,
} = EXIT_REASON;

/** The guest's UART set-up: LCR with DLAB, divisor low, divisor high, LCR 8N1, FCR, MCR — six OUTs. */
const UART_SETUP_OUTS = 6;

function demo(model?: string, budget?: number, cpus?: number): { result: DemoResult; text: string } {
  const out: string[] = [];
  let tick = 0;
  const result = runDemo({ model, budget, cpus, write: (t) => out.push(t), clock: () => tick++ });
  return { result, text: out.join('') };
}

function ok(r: { result: DemoResult; text: string }): DemoSummary {
  if (!r.result.ok) throw new Error(`the demo failed:\n${r.result.error}`);
  return r.result.summary;
}

/** What one guest's program implies: every byte it prints is an IN of LSR and an OUT to THR; the rest is counted in its source. */
function expectedCounts(g: DemoGuest): Record<number, number> {
  return {
    [IO]: UART_SETUP_OUTS + 2 * g.guestOutput.length,
    [CPUID]: 3, // leaves 40000000H, 1, 0
    [MSR_READ]: 2, // IA32_FEATURE_CONTROL, the scratch MSR
    [MSR_WRITE]: 1, // the scratch MSR
    [VMCALL]: 3, // PING, WRITE, EXIT_COUNT
    [CR_ACCESS]: 2, // MOV to CR0 clearing NE, and setting it again
    [HLT]: 1,
  };
}

/** The same, summed over every CPU's guest. */
function expectedTotals(s: DemoSummary): Record<number, number> {
  const out: Record<number, number> = {};
  for (const g of s.guests) for (const [r, n] of Object.entries(expectedCounts(g))) out[Number(r)] = (out[Number(r)] ?? 0) + n;
  return out;
}

/** Basic reason → count, from the table. */
const tableCounts = (s: DemoSummary): Record<number, number> => Object.fromEntries(s.rows.map((r) => [r.basicReason, r.count]));

describe('npm run demo', () => {
  const run = demo();
  const s = ok(run);

  test.each([0, 1])('the guest on cpu %i prints through its UART: the hypervisor signature, VMX hidden, the MSRs, the hypercalls, the CR0 shadow', (cpu) => {
    const guest = s.guests[cpu]!;
    const g = guest.guestOutput;
    expect(g).toMatch(/^Hello from a VMX Lab guest/);
    expect(g).toContain('CPUID 40000000H: max leaf 40000000H, signature "VMXLabVMXLab"\n');
    expect(g).toContain('CPUID 1: ECX.hypervisor[31] = 1, ECX.VMX[5] = 0\n');
    expect(g).toContain('CPUID 0: vendor "GenuineIntel"\n');
    // Locked (bit 0), VMX enabled neither inside nor outside SMX (bits 2:1): what firmware that disabled VMX leaves.
    expect(g).toMatch(/RDMSR IA32_FEATURE_CONTROL \(3AH\) = [0-9A-F]{15}[19]\n/);
    expect(g).toContain('WRMSR then RDMSR 40000000H (the scratch MSR) = 0123456789ABCDEF\n');
    expect(g).toContain('VMCALL PING: "VMXLab"\n');
    expect(g).toContain('VMCALL WRITE: the hypervisor took 33 bytes (see its dmesg)\n');
    expect(guest.hypercallOutput).toBe('hello, hypervisor, from the guest');
    expect(s.dmesg).toContain('vmcall: guest wrote 33 bytes: "hello, hypervisor, from the guest"');
    // CR0.NE is host-owned: the guest reads the shadow (NE as it wrote it), bit 5.
    const cleared = /MOV to CR0 without NE, then MOV from CR0 = ([0-9A-F]{8})\n/.exec(g);
    const set = /MOV to CR0 with NE again = ([0-9A-F]{8})\n/.exec(g);
    expect(cleared, g).not.toBeNull();
    expect(set, g).not.toBeNull();
    expect(parseInt(cleared![1]!, 16) & 0x20).toBe(0);
    expect(parseInt(set![1]!, 16) & 0x20).toBe(0x20);
    expect(g).toMatch(/Bye: HLT\.\n$/);
  });

  test('EXIT_COUNT prints the number of the VM exit it caused (the third VMCALL), counted per CPU', () => {
    for (const g of s.guests) {
      const printed = /VMCALL EXIT_COUNT: (\d+) VM exits so far\n/.exec(g.guestOutput);
      expect(printed, g.guestOutput).not.toBeNull();
      const vmcalls = g.exits.flatMap((r, i) => (r === VMCALL ? [i + 1] : []));
      expect(Number(printed![1])).toBe(vmcalls[2]);
    }
  });

  test('each guest\'s output is streamed line by line, prefixed with its CPU, before the table', () => {
    for (const g of s.guests) {
      const prefix = `  cpu${g.cpu} com1| `;
      const streamed = run.text.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
      expect(streamed).toEqual(g.guestOutput.trimEnd().split('\n'));
    }
    expect(run.text.lastIndexOf('Bye: HLT.')).toBeLessThan(run.text.indexOf('VM exits on cpus'));
  });

  test('the table: one row per reason the guest triggers, named from the exit-reason table, with the exact counts', () => {
    const want = expectedTotals(s);
    expect(tableCounts(s)).toEqual(want);
    for (const r of s.rows) {
      expect(r.name).toBe(exitReasonByNumber(r.basicReason)!.name);
      expect(run.text).toMatch(new RegExp(`^  ${r.basicReason} ${r.name} +${r.count} `, 'm'));
    }
    expect(s.totalExits).toBe(s.guests.reduce((a, g) => a + g.exits.length, 0));
    expect(s.totalExits).toBe(Object.values(want).reduce((a, b) => a + b, 0));
    expect(run.text).toContain(`VM exits: ${s.totalExits} (cpu 0: ${s.guests[0]!.exits.length}, cpu 1: ${s.guests[1]!.exits.length})\n`);
    expect(run.text).toContain(`guest instructions: ${s.instructions}\n`);
    expect(s.instructions).toBeGreaterThan(s.totalExits);
  });

  test('shares of exits and of time each add up to 100%', () => {
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    expect(sum(s.rows.map((r) => r.share))).toBeCloseTo(1, 9);
    expect(sum(s.rows.map((r) => r.timeShare))).toBeCloseTo(1, 9);
    for (const r of s.rows) expect(r.share).toBeCloseTo(r.count / s.totalExits, 12);
    // With the fake clock each exit spans a whole number of ticks, at least one.
    for (const r of s.rows) expect(r.time).toBeGreaterThanOrEqual(r.count);
  });

  test(`${DEMO_CPUS} CPUs: a hypervisor and a guest on each, the same exits on each; VMX off on each at the end`, () => {
    expect(run.result.exitCode).toBe(0);
    expect(s.model).toBe(DEFAULT_CPU_MODEL.name);
    expect(s.cpus).toBe(2);
    expect(run.text).toContain('VM exits on cpus 0-1, one guest each');
    expect(s.guests.map((g) => g.cpu)).toEqual([0, 1]);
    expect(s.guests[1]!.exits).toEqual(s.guests[0]!.exits);
    for (const g of s.guests) {
      expect(s.dmesg).toContain(`vmx_lab_hv: cpu ${g.cpu}: guest launched`);
      expect(s.dmesg).toContain(`vmx_lab_hv: cpu ${g.cpu}: VMX off after ${g.exits.length} VM exits`);
    }
    expect(s.dmesg).not.toMatch(/BUG|WARNING/);
  });

  test.each([1, 4])('%i CPU(s): one guest per CPU, each with the exits its program implies', (cpus) => {
    const t = ok(demo(undefined, undefined, cpus));
    expect(t.guests.map((g) => g.cpu)).toEqual(Array.from({ length: cpus }, (_, i) => i));
    for (const g of t.guests) expect(g.guestOutput).toBe(s.guests[0]!.guestOutput);
    expect(tableCounts(t)).toEqual(expectedTotals(t));
    expect(t.dmesg).not.toMatch(/BUG|WARNING/);
  });
});

describe('on every CPU model', () => {
  // One CPU: what differs between models is the CPU, not the SMP start (that runs on the default model above).
  test.each(CPU_MODELS.map((m) => m.name).filter((n) => n !== DEFAULT_CPU_MODEL.name))('%s', (model) => {
    const s = ok(demo(model, undefined, 1));
    for (const g of s.guests) {
      expect(g.guestOutput).toContain('signature "VMXLabVMXLab"');
      expect(g.guestOutput).toContain('ECX.hypervisor[31] = 1, ECX.VMX[5] = 0');
    }
    expect(tableCounts(s)).toEqual(expectedTotals(s));
  });
});

describe('failures are reported, not thrown', () => {
  test('an unknown model: exit code 1 and the list of models', () => {
    const r = demo('no-such-cpu');
    expect(r.result.ok).toBe(false);
    expect(r.result.exitCode).toBe(1);
    expect(r.text).toContain("demo: unknown CPU model 'no-such-cpu'. Models: ");
    expect(r.text).toContain(DEFAULT_CPU_MODEL.name);
  });

  test('a budget too small: says so, with the last exits and dmesg', () => {
    const r = demo(undefined, 500);
    expect(r.result.exitCode).toBe(1);
    expect(r.text).toContain('demo: the guest on cpu 0, 1 did not reach its HLT within the budget of 500 guest instructions');
    expect(r.text).toContain('dmesg:');
    expect(r.text).toMatch(/VM exits: the last \d+ of \d+:/);
    expect(r.text).not.toContain('VM exits on cpus');
  });

  test('the command line: --help, a bad option, a bad budget', () => {
    const out: string[] = [];
    const write = (t: string): void => void out.push(t);
    expect(main(['--help'], write)).toBe(0);
    expect(out.join('')).toBe(USAGE);
    expect(USAGE).toContain('--model NAME');
    expect(USAGE).toContain('--budget N');
    expect(USAGE).toContain('--cpus N');
    out.length = 0;
    expect(main(['--frobnicate'], write)).toBe(2);
    expect(out.join('')).toMatch(/^demo: Unknown option '--frobnicate'/);
    out.length = 0;
    expect(main(['--budget', 'lots'], write)).toBe(2);
    expect(out.join('')).toContain("--budget wants a positive whole number of guest instructions, not 'lots'");
    out.length = 0;
    expect(main(['--cpus', '9'], write)).toBe(2);
    expect(out.join('')).toContain("--cpus wants a whole number from 1 to 8, not '9'");
    out.length = 0;
    expect(main(['--model', 'no-such-cpu'], write)).toBe(1);
  });
});
