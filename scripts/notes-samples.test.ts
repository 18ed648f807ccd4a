// The notes' TypeScript samples compile as written: every ```ts block of a chapter README is type-checked
// with the project's compiler options, as if it were a file next to the learner's exercises of that chapter
// (exercises/<slug>/), so its relative imports resolve the way they would for the learner.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

interface Sample {
  /** "chapters/01-vmxon/README.md:21" — where the fence opens. */
  readonly where: string;
  /** The virtual file it is checked as. */
  readonly file: string;
  readonly code: string;
}

/** Every ```ts / ```typescript block of a markdown text. */
export function tsSamples(markdown: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*(ts|typescript)\b/.exec(lines[i]!);
    if (open === null) continue;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !lines[j]!.startsWith(open[1]!)) body.push(lines[j++]!);
    out.push({ line: i + 1, code: body.join('\n') });
    i = j;
  }
  return out;
}

function chapterSamples(): Sample[] {
  const samples: Sample[] = [];
  for (const slug of readdirSync(join(ROOT, 'chapters')).sort()) {
    let text: string;
    try {
      text = readFileSync(join(ROOT, 'chapters', slug, 'README.md'), 'utf8');
    } catch {
      continue;
    }
    for (const s of tsSamples(text)) {
      samples.push({ where: `chapters/${slug}/README.md:${s.line}`, file: join(ROOT, 'exercises', slug, `__notes-sample-${s.line}.ts`), code: s.code });
    }
  }
  return samples;
}

/** Type-check the samples together; one message per diagnostic, naming the README line. */
function typeCheck(samples: readonly Sample[]): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
  const virtual = new Map(samples.map((s) => [s.file, s]));
  const host = ts.createCompilerHost(config.options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => {
    const s = virtual.get(name);
    return s !== undefined ? ts.createSourceFile(name, s.code, lang) : getSourceFile(name, lang, ...rest);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => virtual.has(name) || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => virtual.get(name)?.code ?? readFile(name);
  // Each sample is a module of its own (so two samples may declare the same names).
  const program = ts.createProgram({ rootNames: [...virtual.keys()], options: { ...config.options, moduleDetection: ts.ModuleDetectionKind.Force }, host });
  return [...virtual.values()].flatMap((s) => {
    const source = program.getSourceFile(s.file)!;
    return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)].map((d) => {
      const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line + 1;
      const [readme, fence] = s.where.split(':');
      return `${readme}:${Number(fence) + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
  });
}

describe('code samples in the notes', () => {
  test('tsSamples finds ts fences and only those', () => {
    const md = 'text\n```ts\nconst a = 1;\n```\n```text\nnot code\n```\n````typescript\nconst b = 2;\n````\n';
    expect(tsSamples(md)).toEqual([{ line: 2, code: 'const a = 1;' }, { line: 8, code: 'const b = 2;' }]);
  });
  test('every ```ts sample of every chapter README compiles as written (and a broken one would be reported)', () => {
    const samples = chapterSamples();
    expect(samples.length).toBeGreaterThanOrEqual(4);
    // One program for all (type-checking the kit once is the slow part), with one sample that must fail.
    const broken: Sample = { where: 'chapters/x/README.md:10', file: join(ROOT, 'exercises', '01-vmxon', '__notes-broken.ts'), code: 'const n: number = 1n;' };
    const problems = typeCheck([...samples, broken]);
    expect(problems.filter((p) => p.startsWith('chapters/x/'))).toEqual([expect.stringMatching(/^chapters\/x\/README\.md:11: Type 'bigint' is not assignable to type 'number'/)]);
    expect(problems.filter((p) => !p.startsWith('chapters/x/'))).toEqual([]);
  }, 120_000);
});
