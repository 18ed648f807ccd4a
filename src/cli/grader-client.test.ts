// The GraderClient's time limit, against a scripted worker (grader-fake-worker.ts): which exercise
// ran out of time, which results are kept, and what is graded again. The scripted loop never ends,
// so nothing here depends on how fast the machine is.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, expect, test, vi } from 'vitest';
import { GraderClient } from './grader-client.ts';

const REPO = resolve(import.meta.dirname, '../..');
const FAKE = resolve(import.meta.dirname, 'grader-fake-worker.ts');
const dirs: string[] = [];
afterEach(() => {
  vi.unstubAllEnvs();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A client on the scripted worker; `requests()` lists the ids of each request the workers received. */
function scripted(script: Record<string, 'pass' | 'loop'>) {
  const dir = mkdtempSync(join(tmpdir(), 'vmxlab-client-'));
  dirs.push(dir);
  const log = join(dir, 'requests.log');
  vi.stubEnv('VMXLAB_FAKE_SCRIPT', JSON.stringify(script));
  vi.stubEnv('VMXLAB_FAKE_LOG', log);
  const client = new GraderClient(REPO, 'exercises', 1000, FAKE);
  const requests = () => readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
  return { client, requests };
}

test('after a timeout, only the exercise that never finished says so; final results are kept and the rest is graded once', async () => {
  const { client, requests } = scripted({ selector: 'pass', descriptor: 'loop', 'vmx-status': 'pass' });
  try {
    const [selector, descriptor, status] = await client.grade(['selector', 'descriptor', 'vmx-status']);
    expect(descriptor!.problem).toMatch(/^exercises\/00-machine\/descriptor\.ts: did not finish within 1 s/);
    expect(selector!.passed).toBe(true);
    expect(status!.passed).toBe(true);
    // selector's result came from the first worker and was kept; vmx-status was graded by a fresh one; the loop
    // was not run (nor waited for) a second time.
    expect(selector!.title).not.toBe(status!.title);
    expect(requests()).toEqual(['selector descriptor vmx-status', 'vmx-status']);
  } finally {
    await client.close();
  }
});

test('when the looping exercise is the last one left, nothing is graded again', async () => {
  const { client, requests } = scripted({ selector: 'pass', descriptor: 'loop' });
  try {
    const results = await client.grade(['selector', 'descriptor']);
    expect(results.map((r) => r.passed)).toEqual([true, false]);
    expect(requests()).toEqual(['selector descriptor']);
    // The client still works: the next request starts a new worker.
    expect((await client.grade(['selector']))[0]!.passed).toBe(true);
  } finally {
    await client.close();
  }
});
