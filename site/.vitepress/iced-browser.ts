// iced-x86 (the assembler's encoder) ships as a Node build: it reads its .wasm file with `fs`
// and takes TextDecoder from `util`. For the playground we rewrite those two spots so the same
// package runs in a browser worker: the wasm bytes are inlined (base64) and the text codecs come
// from the platform. Synchronous WebAssembly compilation of a large module is only allowed off
// the main thread, which is why the playground runs the emulator in a Web Worker.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Plugin } from 'vite';

const ICED_JS = /[\\/]node_modules[\\/]iced-x86[\\/]iced_x86\.js$/;

export function rewriteIcedForBrowser(code: string, file: string): string {
  const wasm = readFileSync(join(dirname(file), 'iced_x86_bg.wasm')).toString('base64');
  const util = 'const { TextDecoder, TextEncoder } = require(`util`);';
  const load = /const path = require\('path'\)\.join\(__dirname, 'iced_x86_bg\.wasm'\);\s*const bytes = require\('fs'\)\.readFileSync\(path\);/;
  if (!code.includes(util) || !load.test(code)) {
    throw new Error('iced-browser: iced_x86.js does not look like the iced-x86 1.21 Node build any more');
  }
  return code
    .replace(util, 'const { TextDecoder, TextEncoder } = globalThis;')
    .replace(load, `const bytes = Uint8Array.from(atob(${JSON.stringify(wasm)}), (c) => c.charCodeAt(0));`);
}

/** Vite plugin (client and worker bundles). */
export function icedBrowserPlugin(): Plugin {
  return {
    name: 'vmxlab-iced-browser',
    enforce: 'pre',
    transform(code, id, options) {
      if (options?.ssr === true || id.startsWith('\0') || !ICED_JS.test(id.split('?')[0])) return null;
      return { code: rewriteIcedForBrowser(code, id.split('?')[0]), map: null };
    },
  };
}

/** The same rewrite for the dev server's dependency pre-bundling (esbuild). */
export const icedEsbuildPlugin = {
  name: 'vmxlab-iced-browser',
  setup(build: { onLoad: (o: { filter: RegExp }, cb: (a: { path: string }) => { contents: string; loader: 'js' }) => void }) {
    build.onLoad({ filter: ICED_JS }, (args) => ({
      contents: rewriteIcedForBrowser(readFileSync(args.path, 'utf8'), args.path),
      loader: 'js',
    }));
  },
};
