// Watch-mode latency: from saving an exercise file to the verdict on screen, measured end to end on
// the real `vmxlab watch` process (in a scratch copy of the course, so your files are never touched).
// DESIGN.md target: ≤ 0.5 s (median) for one chapter's exercise on the 2-core box.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scratchCourse } from '../src/cli/scratch.ts';

const REPO = resolve(import.meta.dirname, '..');
const EXERCISE = 'exercises/00-machine/descriptor.ts';
const SOLUTION = 'solutions/00-machine/descriptor.ts';

export interface WatchBench {
  name: 'watch-regrade';
  /** Save → verdict, each run, in seconds. */
  samples: number[];
  median: number;
}

export async function benchWatch(runs = 6): Promise<WatchBench> {
  const root = scratchCourse(REPO, 'vmxlab-bench-');
  const stub = readFileSync(join(root, EXERCISE), 'utf8');
  const solution = readFileSync(join(root, SOLUTION), 'utf8');
  const child = spawn(process.execPath, [join(root, 'bin/vmxlab.js'), 'watch', 'descriptor', '--no-docs'], {
    cwd: root,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const verdicts = () => (output.match(/[✓✗] (PASS|FAIL) descriptor/g) ?? []).length;
  const waitVerdicts = async (n: number) => {
    while (verdicts() < n) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    await waitVerdicts(1); // the first grade, with a cold worker: not counted
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const before = verdicts();
      const t0 = performance.now();
      writeFileSync(join(root, EXERCISE), i % 2 === 0 ? solution : stub);
      await waitVerdicts(before + 1);
      samples.push((performance.now() - t0) / 1000);
      await new Promise((r) => setTimeout(r, 300)); // let a duplicate file event settle
    }
    const sorted = [...samples].sort((a, b) => a - b);
    return { name: 'watch-regrade', samples, median: sorted[Math.floor(sorted.length / 2)]! };
  } finally {
    child.kill('SIGTERM');
    rmSync(root, { recursive: true, force: true });
  }
}
