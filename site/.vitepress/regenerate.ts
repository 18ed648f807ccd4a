// Dev server only: regenerate the derived pages when a chapter README, the manifest or a table
// changes, so `npm run docs` shows edits to chapters/*/README.md without a restart. A change
// to the manifest's chapter list also changes the sidebar, which needs a restart of the server.
import { resolve } from 'node:path';
import type { Plugin } from 'vite';
import { generateSite } from '../../scripts/site/generate.ts';
import { REPO_ROOT } from '../../scripts/site/load.ts';

export function regeneratePlugin(): Plugin {
  let pending: Promise<unknown> = Promise.resolve();
  return {
    name: 'vmxlab-regenerate',
    apply: 'serve',
    configureServer(server) {
      const watched = [resolve(REPO_ROOT, 'chapters'), resolve(REPO_ROOT, 'src/vmx')];
      server.watcher.add(watched);
      server.watcher.on('change', (file) => {
        if (!watched.some((w) => file.startsWith(w)) || file.endsWith('.test.ts')) return;
        pending = pending
          .then(() => generateSite())
          .catch((e: unknown) => server.config.logger.error(`vmxlab: regenerating pages failed: ${String(e)}`));
      });
    },
  };
}
