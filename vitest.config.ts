import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (pkg: string, file = 'index') => fileURLToPath(new URL(`./packages/${pkg}/src/${file}.ts`, import.meta.url));

// Tests run against the TypeScript sources, so `npm test` needs no build step.
export default defineConfig({
  resolve: {
    // Exact matches: '@otadiff/patch-apply/host-apply' is a file of its own, not a path under index.ts.
    alias: [
      { find: /^@otadiff\/patch-apply$/, replacement: src('patch-apply') },
      { find: /^@otadiff\/patch-apply\/host-apply$/, replacement: src('patch-apply', 'host-apply') },
      { find: /^@otadiff\/diff-gen$/, replacement: src('diff-gen') },
      { find: /^@otadiff\/ota-core$/, replacement: src('ota-core') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['./vitest.global-setup.ts'],
  },
});
