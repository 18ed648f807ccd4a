// One vitest config, two projects:
//   unit     — tests of src/ (the emulator, kernel, tools)
//   chapters — the graded chapter tests; `#impl/...` resolves to exercises/ by default
//              and to solutions/ when VMXLAB_IMPL=solutions (the package-imports condition).
import { defineConfig } from 'vitest/config';

const conditions = process.env.VMXLAB_IMPL === 'solutions' ? ['solutions'] : [];

export default defineConfig({
  test: {
    setupFiles: ['./vitest.setup.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['src/**/*.test.ts', 'scripts/**/*.test.ts'] } },
      {
        extends: true,
        resolve: { conditions: [...conditions, 'module', 'node', 'import', 'default'] },
        ssr: { resolve: { conditions: [...conditions, 'module', 'node', 'import', 'default'] } },
        test: { name: 'chapters', include: ['chapters/**/*.test.ts'] },
      },
    ],
  },
});
