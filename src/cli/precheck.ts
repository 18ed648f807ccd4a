// Before running an exercise's tests, read the learner's file the way the compiler does and
// catch the problems that would otherwise surface as confusing runtime errors: a syntax error,
// a name the tests import that the file no longer exports (both from the parser alone, in
// milliseconds), and a type error (a number compared with a bigint fails a test as "expected true
// to be false"; the compiler says what is wrong, and where). The type check keeps one language
// service warm, so a re-check after a save only checks the file that changed.
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type * as TS from 'typescript';

// The compiler through require(): an ESM import of this 9-MB CommonJS file first scans all of it for
// its export names, which costs about a second on every start of the grader.
const ts: typeof TS = createRequire(import.meta.url)('typescript');

/** A message naming the file and line, or undefined when the file is fine. */
export function precheckExercise(file: string, displayName: string, requiredExports: readonly string[]): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return `${displayName}: the file is missing. Restore it with \`npx vmxlab reset <exercise>\`.`;
  }
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const diagnostics = (source as unknown as { parseDiagnostics?: readonly TS.Diagnostic[] }).parseDiagnostics ?? [];
  if (diagnostics.length > 0) {
    const d = diagnostics[0]!;
    const { line, character } = source.getLineAndCharacterOfPosition(d.start ?? 0);
    return `${displayName}:${line + 1}:${character + 1}: syntax error: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  }
  const exported = exportedNames(source);
  const missing = requiredExports.filter((n) => !exported.has(n));
  if (missing.length > 0) {
    return `${displayName}: does not export ${missing.map((n) => `'${n}'`).join(', ')}, which the tests import. Keep the exported names of the original file.`;
  }
  return undefined;
}

/** Names the module in `file` exports (see exportedNames). */
export function exportedNamesOf(file: string): Set<string> {
  return exportedNames(ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS));
}

/** Names a module exports (declarations with `export`, and `export { a, b as c }` lists). */
export function exportedNames(source: TS.SourceFile): Set<string> {
  const names = new Set<string>();
  const isExported = (node: TS.Node) =>
    ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const stmt of source.statements) {
    if (ts.isExportDeclaration(stmt) && stmt.exportClause !== undefined && ts.isNamedExports(stmt.exportClause)) {
      for (const el of stmt.exportClause.elements) names.add(el.name.text);
      continue;
    }
    if (!isExported(stmt)) continue;
    if (ts.isVariableStatement(stmt)) {
      for (const decl of stmt.declarationList.declarations) if (ts.isIdentifier(decl.name)) names.add(decl.name.text);
    } else if (
      (ts.isFunctionDeclaration(stmt) || ts.isClassDeclaration(stmt) || ts.isInterfaceDeclaration(stmt) ||
        ts.isTypeAliasDeclaration(stmt) || ts.isEnumDeclaration(stmt)) &&
      stmt.name !== undefined
    ) {
      names.add(stmt.name.text);
    }
  }
  return names;
}

/** Runtime names a test file imports from `#impl/...` (type-only imports excluded). */
export function importedImplNames(testFile: string): string[] {
  const source = ts.createSourceFile(testFile, readFileSync(testFile, 'utf8'), ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const names: string[] = [];
  for (const stmt of source.statements) {
    if (!ts.isImportDeclaration(stmt) || !ts.isStringLiteral(stmt.moduleSpecifier)) continue;
    if (!stmt.moduleSpecifier.text.startsWith('#impl/')) continue;
    const clause = stmt.importClause;
    if (clause === undefined || clause.isTypeOnly) continue;
    const bindings = clause.namedBindings;
    if (bindings !== undefined && ts.isNamedImports(bindings)) {
      for (const el of bindings.elements) if (!el.isTypeOnly) names.push((el.propertyName ?? el.name).text);
    }
  }
  return names;
}

export interface TypeCheck {
  /** The first type error of each file as "display:line:col: type error TSnnnn: …", by file; a file that compiles is absent. */
  check(files: readonly { file: string; display: string }[]): Map<string, string>;
}

/**
 * Type-checks exercise files with the project's compiler options (`tsconfig.json` at `root`, less the DOM), resolving
 * `#impl/...` with the package-imports `conditions` the tests use. Only errors located in a checked file
 * are reported for it: the learner's other files are graded as their own exercises.
 */
export function createTypeCheck(root: string, conditions: readonly string[] = []): TypeCheck {
  const config = ts.getParsedCommandLineOfConfigFile(resolve(root, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: () => undefined,
  });
  const project = config?.options ?? {};
  // Exercises run in Node: the node types stay, the DOM library (for the site's code) goes. It is the largest file
  // of the program and parsing it is most of the cost of a first check (once per grader start).
  const lib = project.lib?.filter((l) => !/^lib\.dom\b/i.test(l));
  const options: TS.CompilerOptions = { ...project, ...(lib !== undefined ? { lib } : {}), noEmit: true, customConditions: [...conditions] };
  const roots: string[] = [];
  // A file's version is its modification time and size: a save changes it, an unchanged file is not re-read.
  const version = (f: string): string => {
    const st = statSync(f, { throwIfNoEntry: false });
    return st === undefined ? 'missing' : `${st.mtimeMs}:${st.size}`;
  };
  const host: TS.LanguageServiceHost = {
    getScriptFileNames: () => roots,
    getScriptVersion: version,
    getScriptSnapshot: (f) => {
      const text = ts.sys.readFile(f);
      return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
    },
    getCurrentDirectory: () => root,
    getCompilationSettings: () => options,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: ts.sys.fileExists,
    readFile: ts.sys.readFile,
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
  };
  const service = ts.createLanguageService(host, ts.createDocumentRegistry());
  return {
    check(files) {
      // Every file a root first, so one program serves the whole request.
      for (const { file } of files) if (!roots.includes(file)) roots.push(file);
      const problems = new Map<string, string>();
      for (const { file, display } of files) {
        const errors = service.getSemanticDiagnostics(file).filter((d) => d.category === ts.DiagnosticCategory.Error);
        const first = errors[0];
        if (first === undefined) continue;
        const where = first.file !== undefined && first.start !== undefined ? first.file.getLineAndCharacterOfPosition(first.start) : undefined;
        const at = where === undefined ? display : `${display}:${where.line + 1}:${where.character + 1}`;
        const more = errors.length > 1 ? ` (+${errors.length - 1} more type error${errors.length > 2 ? 's' : ''} in this file)` : '';
        problems.set(file, `${at}: type error TS${first.code}: ${ts.flattenDiagnosticMessageText(first.messageText, ' ')}${more}`);
      }
      return problems;
    },
  };
}
