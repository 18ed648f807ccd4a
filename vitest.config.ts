// One vitest config, two projects:
//   unit     — tests of src/ (the emulator, kernel, tools)
//   chapters — the graded chapter tests; `#impl/...` resolves to exercises/ by default
//              to solutions/ when VMXLAB_IMPL=solutions, and to the committed stubs (.pristine-exercises/)
//              when VMXLAB_IMPL=pristine — package-imports conditions in package.json.
import { defineConfig } from 'vitest/config';

// VMXLAB_IMPL=solutions grades the reference; =pristine grades the original stubs (author checks).
const impl = process.env.VMXLAB_IMPL;
const conditions = impl === 'solutions' || impl === 'pristine' ? [impl] : [];

export default defineConfig({
  test: {
    setupFiles: ['./vitest.setup.ts'],
    // Tests end by instruction budgets and scripted events, never by the clock. This limit is only a safety net
    // for a stuck test; 5 s (vitest's default) is exceeded by correct tests on a loaded 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      // Worker threads, not isolated: the test files of one worker share the module cache, so src/ is imported
      // once per worker instead of once per file (on two cores: 84 s of CPU instead of 124 s for this project).
      // Every machine, kernel and VMX unit is an object a test creates, so no state crosses files; the suite also
      // passes isolated (`npx vitest run --project unit --isolate`). Chapter tests keep isolated processes: they
      // run learner code, as the grader does (npm test turns isolation off only for the reference solutions).
      { extends: true, test: { name: 'unit', include: ['src/**/*.test.ts', 'scripts/**/*.test.ts'], pool: 'threads', isolate: false } },
      {
        extends: true,
        resolve: { conditions: [...conditions, 'module', 'node', 'import', 'default'] },
        ssr: { resolve: { conditions: [...conditions, 'module', 'node', 'import', 'default'] } },
        test: { name: 'chapters', include: ['chapters/**/*.test.ts'] },
      },
    ],
  },
});
