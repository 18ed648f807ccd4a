// The generated reference pages list exactly what the project's tables hold — read back from
// the built HTML, compared with the tables loaded from src/.
import { join } from 'node:path';
import { loadSiteTables } from '../../scripts/site/generate.ts';
import { anchorIdsInFile } from './crawl.ts';
import { assertNone, test, type TestContext } from './harness.ts';

function idsWithPrefix(t: TestContext, page: string, prefix: string): string[] {
  const ids = anchorIdsInFile(join(t.site.distDir, `${page}.html`));
  return ids.filter((id) => id.startsWith(prefix)).map((id) => id.slice(prefix.length));
}

function compareSets(what: string, onPage: readonly string[], inTable: readonly string[]): string[] {
  const page = new Set(onPage);
  const table = new Set(inTable);
  const problems: string[] = [];
  for (const x of table) if (!page.has(x)) problems.push(`${what}: ${x} is in the table but not on the page`);
  for (const x of page) if (!table.has(x)) problems.push(`${what}: ${x} is on the page but not in the table`);
  if (onPage.length !== page.size) problems.push(`${what}: the page lists some entries twice`);
  return problems;
}

test('reference pages list exactly the entries of the project tables', async (t) => {
  const tables = await loadSiteTables();
  assertNone([
    ...compareSets('VMCS fields', idsWithPrefix(t, 'reference/vmcs-fields', 'field-'), tables.fields.map((f) => f.name)),
    ...compareSets('exit reasons', idsWithPrefix(t, 'reference/exit-reasons', 'exit-'), tables.exitReasons.map((r) => String(r.number))),
    ...compareSets('VM-instruction errors', idsWithPrefix(t, 'reference/vm-instruction-errors', 'error-'), tables.errors.map((e) => String(e.number))),
    ...compareSets('VM-entry checks', idsWithPrefix(t, 'reference/entry-checks', 'check-'), tables.entryChecks.map((c) => c.id)),
    ...compareSets('CPU models', idsWithPrefix(t, 'reference/capability-msrs', 'model-'), tables.cpuModels.map((m) => m.name)),
    ...compareSets('not implemented', idsWithPrefix(t, 'reference/not-implemented', 'ni-'), tables.notImplemented.map((r) => r.id)),
    ...compareSets('modes not implemented', idsWithPrefix(t, 'reference/not-implemented', 'mode-'), tables.modesNotImplemented.map((m) => m.id)),
  ], 'reference pages differ from the tables');
});
