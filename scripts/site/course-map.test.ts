// The landing page and the chapter list claim only what is written: the course map comes from the
// manifest, and the chapters of the plan that are not in it are marked as coming.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CHAPTERS } from '../../chapters/manifest.ts';
import { HostCpu } from '../../src/kernel/host-cpu.ts';
import { Kernel } from '../../src/kernel/kernel.ts';
import { apiMembers, kernelApiPage } from './api-page.ts';
import { chaptersIndexPage } from './chapter-pages.ts';
import { courseMap, PLANNED_CHAPTERS } from './course.ts';

describe('course map', () => {
  test('every written chapter, with its exercises and points, then the planned ones not yet written', () => {
    const map = courseMap(CHAPTERS);
    expect(map.written.map((c) => c.number)).toEqual(CHAPTERS.map((c) => c.number));
    const ch1 = map.written.find((c) => c.number === 1)!;
    expect(ch1).toMatchObject({ title: 'The VMXON region', link: '/chapters/01-vmxon', exercises: 4, points: 50 });
    expect(map.coming.map((c) => c.number)).toEqual(PLANNED_CHAPTERS.map((c) => c.number).filter((n) => !CHAPTERS.some((c) => c.number === n)));
    // Every chapter of the plan is written (chapter 9 was the last): nothing is coming.
    expect(map.coming).toEqual([]);
    expect(PLANNED_CHAPTERS.every((p) => map.written.some((c) => c.number === p.number && c.title === p.title)), 'every planned chapter is in the manifest, with its planned title').toBe(true);
  });
  test('a planned chapter that lands stops being "coming"', () => {
    const withoutNine = CHAPTERS.filter((c) => c.number !== 9);
    expect(courseMap(withoutNine).coming.map((c) => c.number)).toContain(9);
    expect(courseMap(CHAPTERS).coming.map((c) => c.number)).not.toContain(9);
  });
  test('the chapter list names the coming chapters as coming, and says nothing of the kind when none is', () => {
    const withoutNine = CHAPTERS.filter((c) => c.number !== 9);
    const draft = chaptersIndexPage(withoutNine, courseMap(withoutNine).coming).content;
    expect(draft).toMatch(/\*\*Coming\*\* \(not written yet\): 9\. Events and MTF/);
    const page = chaptersIndexPage(CHAPTERS, courseMap(CHAPTERS).coming).content;
    expect(page).not.toMatch(/Coming|not written yet/);
  });
});

describe('the landing page (site/index.md)', () => {
  const index = readFileSync(resolve(import.meta.dirname, '../../site/index.md'), 'utf8');
  test('its feature texts are HTML, so no markdown backticks show literally', () => {
    const details = [...index.matchAll(/^\s+details: (.*)$/gm)].map((m) => m[1]!);
    expect(details.length).toBeGreaterThan(0);
    for (const d of details) expect(d).not.toContain('`');
  });
  test('it names no topic of a chapter that is not written', () => {
    for (const c of courseMap(CHAPTERS).coming) {
      for (const word of c.title.split(/ and /)) expect(index, `"${word}" (chapter ${c.number}, coming)`).not.toMatch(new RegExp(`\\b${word}\\b`));
    }
  });
});

describe('kernel and CPU API page', () => {
  test('lists public methods with their signature, doc comment and section, and skips private ones', () => {
    const text = `class K {
  // ==== memory
  /** Allocate. */
  kmalloc(size: number): bigint { return 0n; }
  // Little-endian.
  read8(va: bigint): number { return 0; }
  private secret(): void {}
  // ---- CPUs ----
  get id(): number { return 0; }
}`;
    expect(apiMembers(text, 'K')).toEqual([
      { name: 'kmalloc', signature: 'kmalloc(size: number): bigint', doc: 'Allocate.', note: '', section: 'memory' },
      { name: 'read8', signature: 'read8(va: bigint): number', doc: '', note: 'Little-endian.', section: 'memory' },
      { name: 'id', signature: 'id: number', doc: '', note: '', section: 'CPUs' },
    ]);
  });
  test('every call on the page is a real method of Kernel or HostCpu, and the cheat-sheet calls are all there', () => {
    const page = kernelApiPage().content;
    const calls = [...page.matchAll(/^\| `(k|cpu)\.(\w+)/gm)].map((m) => [m[1]!, m[2]!] as const);
    for (const [obj, name] of calls) {
      const proto = (obj === 'k' ? Kernel : HostCpu).prototype as unknown as Record<string, unknown>;
      expect(name in proto, `${obj}.${name}`).toBe(true);
    }
    const names = new Set(calls.map(([obj, name]) => `${obj}.${name}`));
    for (const n of ['k.cpu', 'k.kmalloc', 'k.kfree', 'k.get_zeroed_page', 'k.free_page', 'k.vmalloc', 'k.virt_to_phys', 'k.read32', 'k.write64', 'cpu.rdmsr', 'cpu.writeCr4', 'cpu.vmxon', 'cpu.rflags']) {
      expect(names.has(n), n).toBe(true);
    }
    expect(page).not.toMatch(/private|scratchOffset|withM64/);
  });
});
