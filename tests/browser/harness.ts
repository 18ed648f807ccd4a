// A very small test harness for the browser tests: files register tests with `test()`, run.ts
// runs them side by side against one browser and one static server, and prints `N passed, N failed`
// with the results in registration order.
import type { Browser, BrowserContext, Page } from 'playwright-core';

export interface SiteInfo {
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  /** Absolute path of site/.vitepress/dist. */
  distDir: string;
  /** Site paths of every built page, e.g. "/", "/chapters/00-machine". */
  pages: string[];
  /** Where screenshots go. */
  screenshotDir: string;
}

export interface TestContext {
  site: SiteInfo;
  browser: Browser;
  /** A fresh page in a fresh context that records console errors and off-machine requests. */
  newPage(): Promise<WatchedPage>;
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, uncaught exceptions, failed same-origin requests, HTTP errors. */
  errors: string[];
  /** Requests to any host other than the test server (they are aborted). */
  offMachine: string[];
  close(): Promise<void>;
}

export interface BrowserTest {
  name: string;
  fn: (t: TestContext) => Promise<void>;
}

export const TESTS: BrowserTest[] = [];

export function test(name: string, fn: (t: TestContext) => Promise<void>): void {
  TESTS.push({ name, fn });
}

/** Work that several tests await (e.g. the crawl of every page), started with the first tests instead of by one of them. */
export const PREPARE: ((t: TestContext) => void)[] = [];

export function prepare(fn: (t: TestContext) => void): void {
  PREPARE.push(fn);
}

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEqual<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) {
    throw new AssertionError(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** A list of problems, reported together so one run shows all of them. */
export function assertNone(problems: readonly string[], what: string, max = 25): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, max).map((p) => `  - ${p}`).join('\n');
  const more = problems.length > max ? `\n  … and ${problems.length - max} more` : '';
  throw new AssertionError(`${what} (${problems.length}):\n${shown}${more}`);
}
