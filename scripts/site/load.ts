// Loads the project's TypeScript tables (src/**, chapters/manifest.ts) at site-build time, with their real types.
// The vitepress config is bundled to plain JS and run by Node, which cannot import `.ts` files by itself, so the
// modules go through tsx's loader — afresh on every call (a new loader namespace), so that the dev server, which
// regenerates the pages when a table changes, shows the edited table rather than the one bundled at start.
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';

/** Absolute path of the repository root (this file is scripts/site/load.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** The modules the site reads, by path from the repository root, each with its type. */
export interface SiteModules {
  'chapters/manifest.ts': typeof import('../../chapters/manifest.ts');
  'src/machine/cpu-model.ts': typeof import('../../src/machine/cpu-model.ts');
  'src/machine/not-implemented.ts': typeof import('../../src/machine/not-implemented.ts');
  'src/vmx/controls.ts': typeof import('../../src/vmx/controls.ts');
  'src/vmx/emulated-msrs.ts': typeof import('../../src/vmx/emulated-msrs.ts');
  'src/vmx/entry/index.ts': typeof import('../../src/vmx/entry/index.ts');
  'src/vmx/errors.ts': typeof import('../../src/vmx/errors.ts');
  'src/vmx/exit-reasons.ts': typeof import('../../src/vmx/exit-reasons.ts');
  'src/vmx/fields.ts': typeof import('../../src/vmx/fields.ts');
  'src/vmx/msrs.ts': typeof import('../../src/vmx/msrs.ts');
  'src/x86/msr.ts': typeof import('../../src/x86/msr.ts');
}

/** Import one of the site's modules afresh. A missing module or export is a build error, never an empty page. */
export async function loadModule<P extends keyof SiteModules>(path: P): Promise<SiteModules[P]> {
  const url = pathToFileURL(resolve(REPO_ROOT, path)).href;
  return (await tsImport(url, { parentURL: pathToFileURL(REPO_ROOT + '/').href })) as SiteModules[P];
}
