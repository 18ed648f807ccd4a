// A tiny static server for site/.vitepress/dist with vitepress's clean URLs
// (/chapters/00-machine → chapters/00-machine.html, /chapters/ → chapters/index.html).
// Binds to 127.0.0.1 on a free port.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** The file a URL path maps to, or null. */
export function resolveSitePath(root: string, urlPath: string): string | null {
  let path = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
  if (path.endsWith('/')) path += 'index';
  const rel = normalize(path).replace(/^([/\\])+/, '');
  if (rel.startsWith('..')) return null;
  const candidates = [join(root, rel), join(root, `${rel}.html`), join(root, rel, 'index.html')];
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return null;
}

export async function serveDist(root: string): Promise<{ server: Server; baseUrl: string }> {
  const abs = resolve(root);
  const server = createServer((req, res) => {
    const file = resolveSitePath(abs, req.url ?? '/');
    if (file === null) {
      const notFound = join(abs, '404.html');
      res.writeHead(404, { 'content-type': TYPES['.html'] });
      if (existsSync(notFound)) createReadStream(notFound).pipe(res);
      else res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { server, baseUrl: `http://127.0.0.1:${port}` };
}
