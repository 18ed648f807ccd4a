// End-to-end tests of the learner CLI on a throwaway copy of the course, part 2: progress, hints, reset and
// watch mode, as a learner meets them after some work (part 1, cli.test.ts, grades pristine stubs, solutions and
// bad input). Runs `node bin/vmxlab.js` for real. A file of its own so the two parts run side by side.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runVmxlab, scratchGitCourse } from './scratch.ts';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

// These run the real CLI (a node process, then vitest inside it): seconds, not milliseconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });

const REPO = resolve(import.meta.dirname, '../..');
let root: string;
const ex = (f: string) => join(root, 'exercises/00-machine', f);

const vmxlab = (args: string[], env: Record<string, string> = {}) => runVmxlab(root, args, env);

beforeAll(() => {
  root = scratchGitCourse(REPO, 'vmxlab-cli-');
  // Where part 1 leaves a learner: a descriptor.ts that throws at import (the reset test restores it).
  writeFileSync(ex('descriptor.ts'), `${readFileSync(ex('descriptor.ts'), 'utf8')}\nthrow new Error('boom at import');\n`);
  mkdirSync(join(root, '.vmxlab'), { recursive: true }); // the CLI's state directory, made by any earlier run
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('progress, hints and reset', () => {
  test('a damaged state file is set aside, and progress is recomputed from the files at once, keeping hint counts', () => {
    // Two exercises solved; the other two fail fast (descriptor.ts throws at import, the rest are stubs).
    for (const f of ['selector.ts', 'vmx-status.ts']) writeFileSync(ex(f), readFileSync(join(root, 'solutions/00-machine', f)));
    const state = join(root, '.vmxlab/state.json');
    // Cut off mid-write: no passes recorded, but the hint counts can still be read.
    writeFileSync(state, '{ "version": 1, "hintsShown": { "selector": 2, "descriptor": 1 }, "passed": { "selec');
    const r = vmxlab(['list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/could not be read/);
    expect(r.stderr).toMatch(/progress recomputed: 2\/\d+ exercises pass; 3 hint\(s\) shown before are kept/);
    expect(readdirSync(join(root, '.vmxlab')).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
    expect(r.stdout).toMatch(/✓ done +0\.selector /);
    expect(r.stdout).toMatch(/✓ done +0\.vmx-status /);
    expect(r.stdout).toMatch(/· pending 0\.descriptor /);
    const saved = JSON.parse(readFileSync(state, 'utf8')) as { hintsShown: Record<string, number> };
    expect(saved.hintsShown).toEqual({ selector: 2, descriptor: 1 });
  });

  test('hints are revealed one at a time, and remembered; the id may be written as list prints it', () => {
    const first = vmxlab(['hint', '0.descriptor']);
    expect(first.stdout).toMatch(/Hints for 0\.descriptor \(2\/3\)/); // one was kept from the damaged file
    const second = vmxlab(['hint', 'descriptor']);
    expect(second.stdout).toMatch(/\(3\/3\)/);
    expect(second.stdout).toMatch(/\n\s+3\. /);
  });

  test('an unknown exercise is named in the error', () => {
    const r = vmxlab(['hint', 'no-such-exercise']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no exercise 'no-such-exercise'.*0\.selector/);
    expect(vmxlab(['reset', '3.selector']).stderr).toMatch(/'selector' is in chapter 0 \(0\.selector\)/);
  });

  test('reset restores the stub and backs up the learner file', () => {
    const file = join(root, 'exercises/00-machine/descriptor.ts');
    const r = vmxlab(['reset', '0.descriptor']);
    expect(r.code).toBe(0);
    expect(readFileSync(file, 'utf8')).not.toContain('boom at import');
    const backup = /saved at (\S+)/.exec(r.stdout)?.[1];
    expect(backup !== undefined && existsSync(backup)).toBe(true);
    expect(readFileSync(backup!, 'utf8')).toContain('boom at import');
  });

  test('reset of a passed exercise makes it pending again', () => {
    expect(vmxlab(['list']).stdout).toMatch(/✓ done +0\.selector /);
    const r = vmxlab(['reset', 'selector']);
    expect(r.stdout).toMatch(/0\.selector is pending again/);
    expect(vmxlab(['list']).stdout).toMatch(/· pending 0\.selector /);
  });

  test('`vmxlab list | head`: a reader that goes away is not a crash', async () => {
    const child = spawn(process.execPath, [join(root, 'bin/vmxlab.js'), 'list'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // closed before the first write, as `head` does after its lines
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolveExit) => child.on('exit', resolveExit));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });
});

describe('watch mode without a terminal', () => {
  test('prints a verdict at once and re-grades on save', async () => {
    const child = spawn(process.execPath, [join(root, 'bin/vmxlab.js'), 'watch', 'descriptor', '--no-docs'], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    const waitFor = (re: RegExp) =>
      new Promise<void>((resolveWait, reject) => {
        const check = () => {
          if (re.test(output)) resolveWait();
        };
        child.stdout.on('data', (d: Buffer) => {
          output += d.toString();
          check();
        });
        child.on('exit', () => reject(new Error(`watch mode exited early:\n${output}`)));
        check();
      });
    try {
      await waitFor(/checking…[\s\S]*✗ FAIL descriptor/);
      expect(output).toMatch(/\[[#-]+\] \d+\/\d+/); // the progress bar
      writeFileSync(join(root, 'exercises/00-machine/descriptor.ts'), readFileSync(join(root, 'solutions/00-machine/descriptor.ts')));
      await waitFor(/✓ PASS descriptor[^\n]*\n\s+Reference solution: solutions\/00-machine\/descriptor\.ts/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
