// Before running an exercise's tests, read the learner's file the way the compiler does and
// catch the two problems that would otherwise surface as confusing runtime errors:
// a syntax error, and a name the tests import that the file no longer exports.
// Only the TypeScript parser runs here (no type checking), so this takes milliseconds.
import { readFileSync } from 'node:fs';
import ts from 'typescript';

/** A message naming the file and line, or undefined when the file is fine. */
export function precheckExercise(file: string, displayName: string, requiredExports: readonly string[]): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return `${displayName}: the file is missing. Restore it with \`npx vmxlab reset <exercise>\`.`;
  }
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const diagnostics = (source as unknown as { parseDiagnostics?: readonly ts.Diagnostic[] }).parseDiagnostics ?? [];
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

/** Names a module exports (declarations with `export`, and `export { a, b as c }` lists). */
export function exportedNames(source: ts.SourceFile): Set<string> {
  const names = new Set<string>();
  const isExported = (node: ts.Node) =>
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
