// What the grader tells a learner about code that is wrong in the ways the notes warn about, graded for real
// (a worker process, vitest, the chapter tests) on a throwaway copy of the course.
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { GraderClient } from './grader-client.ts';
import type { ExerciseResult } from './result.ts';
import { scratchCourse } from './scratch.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const REPO = resolve(import.meta.dirname, '../..');
let root: string;
let results: Map<string, ExerciseResult>;

/** Replace `from` (which must occur) in a file of the scratch course. */
function edit(file: string, from: string, to: string): void {
  const path = join(root, file);
  const text = readFileSync(path, 'utf8');
  if (!text.includes(from)) throw new Error(`test setup: '${from}' not in ${file}`);
  writeFileSync(path, text.replace(from, to));
}

beforeAll(async () => {
  root = scratchCourse(REPO, 'vmxlab-grading-');
  // Chapter 1 solved, except the common mistake "Setting only CR4.VMXE" (ERRATA.md, Hypervisor From Scratch).
  cpSync(join(root, 'solutions/01-vmxon'), join(root, 'exercises/01-vmxon'), { recursive: true });
  const fixedBits = 'exercises/01-vmxon/fixed-bits.ts';
  const text = readFileSync(join(root, fixedBits), 'utf8');
  const at = text.indexOf('export function enterVmxCrState');
  writeFileSync(join(root, fixedBits), `${text.slice(0, at)}export function enterVmxCrState(cpu: HostCpu): void {\n  cpu.writeCr4(cpu.readCr4() | X86_CR4_VMXE);\n}\n`);
  // The selector mask of ERRATA.md: & 0xF8 instead of & ~7.
  cpSync(join(root, 'solutions/00-machine/selector.ts'), join(root, 'exercises/00-machine/selector.ts'));
  edit('exercises/00-machine/selector.ts', 'return selector & 0xffff & ~(TI_BIT | RPL_MASK);', 'return selector & 0xf8;');
  const client = new GraderClient(root, 'exercises');
  try {
    const graded = await client.grade(['fixed-bits', 'vmxon', 'selector', 'first-launch']);
    results = new Map(graded.map((r) => [r.id, r]));
  } finally {
    await client.close();
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const messages = (id: string) => results.get(id)!.failures.map((f) => f.message);

describe('an enterVmxCrState that only sets CR4.VMXE', () => {
  test('fails fixed-bits, on the hosts whose CR0.NE is 0, naming CR0_FIXED0 and the bit', () => {
    const r = results.get('fixed-bits')!;
    expect(r.problem).toBeUndefined();
    expect(r.passed).toBe(false);
    expect(r.failures.length).toBeGreaterThan(0);
    for (const f of r.failures) {
      expect(f.test).toMatch(/CR0\.NE = 0/);
      expect(f.message.split('\n')[0]).toMatch(/IA32_VMX_CR0_FIXED0 \(486H\) = 0x80000021.*'0x20 \(NE\)'/);
    }
  });
  test('fails vmxon too (VMXON raises #GP), and nothing else in it', () => {
    const r = results.get('vmxon')!;
    expect(r.passed).toBe(false);
    expect(r.failures.map((f) => f.test)).toEqual([expect.stringMatching(/CR0\.NE = 0/)]);
    // The oops names the instruction and the rule.
    expect(messages('vmxon')[0]).toMatch(/#GP error code 0 in VMXON/);
    expect(messages('vmxon')[0]).toMatch(/CR0 bits 0x20 must be 1/);
  });
});

test('a failed property leads with its assertion, in hex; fast-check\'s report comes after', () => {
  const property = results.get('selector')!.failures.find((f) => /for every selector/.test(f.test))!;
  const lines = property.message.split('\n');
  expect(lines[0]).toMatch(/^hostSelector\(0x[0-9a-f]+\) = 0x[0-9a-f]+: /);
  expect(lines.findIndex((l) => /Enable verbose mode/.test(l))).toBeGreaterThan(0);
});

test('chapter 4 failures are text, not one line of JSON', () => {
  const first = messages('first-launch')[0]!;
  expect(first.split('\n')[0]).toMatch(/^model [\w-]+: insmod: insmod first_launch: the kernel oopsed .* Error: TODO: init/);
  for (const m of messages('first-launch')) expect(m).not.toMatch(/\{"ok":/);
});
