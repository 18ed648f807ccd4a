#!/usr/bin/env node
// The `vmxlab` command: runs the TypeScript CLI through tsx (no build step for learners).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
