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
  const problems: string[] = [];
  let compared = 0;
  if (tables.fields !== null) {
    problems.push(...compareSets('VMCS fields', idsWithPrefix(t, 'reference/vmcs-fields', 'field-'), tables.fields.map((f) => f.name)));
    compared++;
  }
  if (tables.exitReasons !== null) {
    problems.push(...compareSets('exit reasons', idsWithPrefix(t, 'reference/exit-reasons', 'exit-'), tables.exitReasons.map((r) => String(r.number))));
    compared++;
  }
  if (tables.errors !== null) {
    problems.push(...compareSets('VM-instruction errors', idsWithPrefix(t, 'reference/vm-instruction-errors', 'error-'), tables.errors.map((e) => String(e.number))));
    compared++;
  }
  if (tables.entryChecks !== null) {
    problems.push(...compareSets('VM-entry checks', idsWithPrefix(t, 'reference/entry-checks', 'check-'), tables.entryChecks.map((c) => c.id)));
    compared++;
  }
  if (tables.cpuModels !== null) {
    problems.push(...compareSets('CPU models', idsWithPrefix(t, 'reference/capability-msrs', 'model-'), tables.cpuModels.map((m) => m.name)));
    compared++;
  }
  if (compared === 0) problems.push('no table was available to compare');
  assertNone(problems, 'reference pages differ from the tables');
});
