// The structure of src/vmx, checked on the import statements: VM entry and VM exit share code only through
// src/vmx/transition/ (VMCS access, the transition CPU, interruption-info and non-register-state bits, CR0
// merging, host-state loading), so entry/ and exit/ never import each other, and transition/ imports neither.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const VMX = dirname(fileURLToPath(import.meta.url));
const SRC = resolve(VMX, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** Every module a file imports or re-exports (static and dynamic), as an absolute path. */
function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm)].map((m) => m[2]!);
  return specs.flatMap((s) => {
    if (s.startsWith('.')) return [resolve(dirname(file), s)];
    if (s.startsWith('#src/')) return [resolve(SRC, s.slice('#src/'.length) + '.ts')];
    return [];
  });
}

/** Imports from files under `from` (a folder of src/vmx) into any of the folders `forbidden`. */
function crossings(from: string, forbidden: readonly string[]): string[] {
  const out: string[] = [];
  for (const file of tsFiles(join(VMX, from))) {
    for (const target of importsOf(file)) {
      const into = forbidden.find((f) => target.startsWith(join(VMX, f) + '/'));
      if (into !== undefined) out.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
    }
  }
  return out;
}

describe('src/vmx layering', () => {
  it('finds the imports it checks (a self-test of the scanner)', () => {
    const here = join(VMX, 'entry', 'x.ts');
    expect(importsOf(here, "import type { A } from '../exit/index.ts';\nexport { b } from \"./b.ts\";\nconst c = await import('../exit/c.ts');\nimport '#src/vmx/exit/d';\nimport fc from 'fast-check';"))
      .toEqual([join(VMX, 'exit/index.ts'), join(VMX, 'entry/b.ts'), join(VMX, 'exit/c.ts'), join(VMX, 'exit/d.ts')]);
  });
  it('entry/ does not import exit/', () => {
    expect(crossings('entry', ['exit'])).toEqual([]);
  });
  it('exit/ does not import entry/', () => {
    expect(crossings('exit', ['entry'])).toEqual([]);
  });
  it('transition/ (shared by both) imports neither entry/ nor exit/', () => {
    expect(crossings('transition', ['entry', 'exit'])).toEqual([]);
  });
});
