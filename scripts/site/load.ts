// Loads the project's TypeScript tables (src/**, chapters/manifest.ts) at site-build time.
// The vitepress config is bundled to plain JS and run by Node, which cannot import `.ts`
// files by itself, so we go through tsx's scoped loader. A table that does not exist yet
// (its helper has not landed) loads as `null`; a file that exists but lacks the export
// the site needs is a build error, so the pages can never silently drift from the code.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';

/** Absolute path of the repository root (this file is scripts/site/load.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** Import `relPath` (relative to the repo root) or return null when the file is absent. */
export async function loadOptional(relPath: string): Promise<Record<string, unknown> | null> {
  const abs = resolve(REPO_ROOT, relPath);
  if (!existsSync(abs)) return null;
  const mod: unknown = await tsImport(pathToFileURL(abs).href, { parentURL: pathToFileURL(REPO_ROOT + '/').href });
  return mod as Record<string, unknown>;
}

/**
 * Read export `name` of `relPath`. Returns null when the file does not exist; throws when the
 * file exists but the export is missing or is not an array (the contract helpers agreed on).
 */
export async function loadTable<T>(relPath: string, name: string): Promise<readonly T[] | null> {
  const mod = await loadOptional(relPath);
  if (mod === null) return null;
  const value = mod[name];
  if (!Array.isArray(value)) {
    throw new Error(`site: ${relPath} exists but does not export an array named ${name} (got ${typeof value})`);
  }
  return value as readonly T[];
}
