// Types for the site's client code: vite's import.meta.glob/env (through vitepress's own
// vite) and single-file Vue components.
/// <reference types="vitepress/client" />

declare module '*.vue' {
  import type { DefineComponent } from 'vue';
  const component: DefineComponent<object, object, unknown>;
  export default component;
}
