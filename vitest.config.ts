import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests run against the TypeScript sources, so `npm test` needs no build step.
export default defineConfig({
  resolve: {
    alias: {
      '@otadiff/patch-apply': src('patch-apply'),
      '@otadiff/diff-gen': src('diff-gen'),
      '@otadiff/ota-core': src('ota-core'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
