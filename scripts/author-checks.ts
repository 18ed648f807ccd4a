// Author checks: what must hold for every chapter before it ships.
//   1. every file the manifest names exists (exercise, solution, test, notes);
//   2. every exercise has at least one hint (plain markdown: no raw HTML tags), and its file contains a TODO;
//   3. exercise and solution files export the same names;
//   4. chapter tests import learner code only through `#impl/...`, and every assertion in them carries a message
//      in the notes' terms (vitest alone says "expected 270387 to be 19");
//   5. every untouched exercise (the committed stub) FAILS its own tests, and every solution passes
//      (the solution half runs in `npm test` as the chapters project; here we grade the stubs).
// The stubs are taken from git HEAD (a learner's edits do not count), or from the working tree for
// exercise files git does not know yet.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as TS from 'typescript';
import { CHAPTERS, allExercises, exercisePaths } from '../chapters/manifest.ts';
import { PRISTINE_DIR } from '../src/cli/grader.ts';
import { exportedNamesOf } from '../src/cli/precheck.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The compiler API through require: an ESM import of typescript first scans its 9 MB for exports.
const ts: typeof TS = createRequire(import.meta.url)('typescript');

export interface Finding {
  readonly check: string;
  readonly where: string;
  readonly message: string;
}

/** Text that markdown with HTML enabled takes for a tag (`<error>`, `</x`, `<!`), outside code spans; null if none. */
export function rawHtmlIn(markdown: string): string | null {
  const m = /<[A-Za-z/!][^>]*>?/.exec(markdown.replace(/`[^`]*`/g, ''));
  return m === null ? null : `"${m[0]}"`;
}

/** Checks 1–4: static, fast. */
export function staticChecks(root: string): Finding[] {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  for (const ref of allExercises()) {
    const p = exercisePaths(ref);
    const id = ref.exercise.id;
    if (seen.has(id)) findings.push({ check: 'unique-id', where: p.test, message: `exercise id '${id}' is used twice` });
    seen.add(id);
    for (const [what, file] of [['exercise', p.exercise], ['solution', p.solution], ['test', p.test], ['notes', p.notes]] as const) {
      if (!existsSync(join(root, file))) findings.push({ check: 'files-exist', where: file, message: `the ${what} file of '${id}' is missing` });
    }
    if (ref.exercise.hints.length === 0) findings.push({ check: 'has-hint', where: `chapters/${ref.chapter.slug}/chapter.ts`, message: `'${id}' has no hint` });
    for (const h of ref.exercise.hints) {
      const tag = rawHtmlIn(h);
      if (tag !== null) findings.push({ check: 'hint-markdown', where: `chapters/${ref.chapter.slug}/chapter.ts`, message: `a hint of '${id}' has ${tag} outside backticks: the site renders hints as markdown with HTML, so it would be taken for a tag` });
    }
    if (!existsSync(join(root, p.exercise)) || !existsSync(join(root, p.solution))) continue;
    const exerciseText = readFileSync(join(root, p.exercise), 'utf8');
    if (!/\bTODO\b/.test(exerciseText)) findings.push({ check: 'has-todo', where: p.exercise, message: 'no TODO marks what the learner must write' });
    const ex = exportedNamesOf(join(root, p.exercise));
    const sol = exportedNamesOf(join(root, p.solution));
    const onlyEx = [...ex].filter((n) => !sol.has(n));
    const onlySol = [...sol].filter((n) => !ex.has(n));
    if (onlyEx.length + onlySol.length > 0) {
      findings.push({
        check: 'same-exports',
        where: p.exercise,
        message: `exports differ from ${p.solution}: only in exercise [${onlyEx.join(', ')}], only in solution [${onlySol.join(', ')}]`,
      });
    }
    if (existsSync(join(root, p.test))) {
      const testText = readFileSync(join(root, p.test), 'utf8');
      if (/from\s+['"][./]*(exercises|solutions)\//.test(testText)) {
        findings.push({ check: 'impl-alias', where: p.test, message: 'imports exercises/ or solutions/ directly; use #impl/<chapter>/<file>' });
      }
      for (const line of assertionsWithoutMessage(p.test, testText)) {
        findings.push({ check: 'assertion-message', where: `${p.test}:${line}`, message: 'expect(value) without a message: say what the value means, in hex, naming the bit or field (expect(value, message))' });
      }
    }
  }
  for (const c of CHAPTERS) {
    if (c.exercises.length < 3 && c.number > 0) findings.push({ check: 'three-exercises', where: `chapters/${c.slug}/chapter.ts`, message: 'a chapter needs at least three graded exercises' });
  }
  return findings;
}

/** Lines (1-based) of `expect(x)` calls with no message argument. */
export function assertionsWithoutMessage(file: string, text: string): number[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const lines: number[] = [];
  const visit = (node: TS.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'expect' && node.arguments.length < 2) {
      lines.push(source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return lines;
}

/** Copy the committed stubs of every chapter to .pristine-exercises/ for the `pristine` condition. */
export function materializePristine(root: string): void {
  const target = join(root, PRISTINE_DIR);
  rmSync(target, { recursive: true, force: true });
  for (const c of CHAPTERS) {
    const dir = join(root, 'exercises', c.slug);
    const files = listFiles(root, `exercises/${c.slug}`);
    for (const rel of files) {
      let text: string;
      try {
        text = execFileSync('git', ['show', `HEAD:exercises/${c.slug}/${rel}`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        text = readFileSync(join(dir, rel), 'utf8'); // not committed yet: an author's new file
      }
      const out = join(target, c.slug, rel);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, text);
    }
  }
}

function listFiles(root: string, rel: string): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', rel], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.slice(rel.length + 1));
}

/** What vitest's JSON reporter says about one test file (the fields this check reads). */
interface JsonTestFile {
  readonly name: string;
  readonly status: string;
  readonly message?: string;
  readonly assertionResults: readonly { readonly status: string }[];
}

/**
 * Check 5: run every chapter test against the committed stubs; each stub must fail at least one test (and not merely
 * crash). One vitest process runs them all, test files sharing its module cache: the stubs hold no state, and
 * starting a process per file (as the learner's grader does, for isolation) was most of this check's time. Type
 * errors in a stub are the typecheck step's to report (tsconfig.json includes exercises/).
 */
export function stubsFail(root: string): Finding[] {
  materializePristine(root);
  const report = join(root, '.vmxlab', 'reports', 'pristine.json');
  mkdirSync(dirname(report), { recursive: true });
  rmSync(report, { force: true });
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  try {
    execFileSync(process.execPath, [vitest, 'run', '--project', 'chapters', '--isolate=false', '--reporter=json', `--outputFile.json=${report}`], {
      cwd: root, env: { ...process.env, VMXLAB_IMPL: 'pristine' }, stdio: 'ignore',
    });
  } catch {
    // Failing tests are what this check wants: vitest exits 1. The report says what happened.
  }
  if (!existsSync(report)) return [{ check: 'stub-fails', where: 'chapters/', message: 'vitest wrote no report for the stubs: run VMXLAB_IMPL=pristine npx vitest run --project chapters to see why' }];
  const files = (JSON.parse(readFileSync(report, 'utf8')) as { testResults: JsonTestFile[] }).testResults;
  const findings: Finding[] = [];
  for (const ref of allExercises()) {
    const p = exercisePaths(ref);
    const id = ref.exercise.id;
    const where = p.exercise;
    const file = files.find((f) => resolve(f.name) === resolve(root, p.test));
    const failed = file?.assertionResults.filter((a) => a.status === 'failed').length ?? 0;
    if (file === undefined) findings.push({ check: 'stub-fails', where, message: `the tests of '${id}' (${p.test}) did not run against the stub` });
    else if (file.assertionResults.length === 0) findings.push({ check: 'stub-fails', where, message: `the untouched stub of '${id}' does not even run: ${(file.message ?? file.status).split('\n')[0]}` });
    else if (failed === 0) findings.push({ check: 'stub-fails', where, message: `the untouched stub of '${id}' passes its tests: the tests cannot tell it from a solution` });
  }
  return findings;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const findings = [...staticChecks(ROOT), ...stubsFail(ROOT)];
  const total = allExercises().length;
  for (const f of findings) process.stdout.write(`✗ [${f.check}] ${f.where}: ${f.message}\n`);
  process.stdout.write(`author checks: ${total} exercises in ${CHAPTERS.length} chapters, ${findings.length} problem(s)\n`);
  process.exitCode = findings.length === 0 ? 0 : 1;
}
