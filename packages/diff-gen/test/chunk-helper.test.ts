import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatePackage } from '../src/generate.js';
import { applyEdit, codeLike } from './edits.js';

// The workers run compiled JavaScript: this test uses the build that `npm ci` (prepare) makes.
const DIST = new URL('../dist/index.js', import.meta.url);

describe('chunks on two threads', () => {
  it('give the same package as one thread, in both modes', async () => {
    expect(existsSync(DIST), 'packages/diff-gen/dist is missing: run `npm run build`').toBe(true);
    const dist = (await import(DIST.href)) as typeof import('../src/index.js');
    const old = codeLike((3 << 19) + 1000, 5);
    let neu = applyEdit(old, { kind: 'insert', at: 200_000, bytes: codeLike(3000, 6) });
    neu = applyEdit(neu, { kind: 'bump', at: 900_000, len: 40_000, delta: 8 });
    neu = applyEdit(neu, { kind: 'delete', at: 1_200_000, len: 5000 });
    for (const mode of ['inplace', 'ab'] as const) {
      const splitSize = 32 * 1024;
      let chunkEvents = 0;
      // From the build: sorted with the LCP helper, chunks shared with the chunk worker.
      const both = await dist.generatePackage(old, neu, { mode, splitSize, onProgress: (e) => void (e.phase === 'chunk' && chunkEvents++) });
      // From the sources: no compiled workers next to them, so everything on this thread.
      const one = await generatePackage(old, neu, { mode, splitSize });
      expect(Buffer.compare(Buffer.from(both.package), Buffer.from(one.package))).toBe(0);
      expect(chunkEvents).toBe(both.header.chunks.length);
    }
  });

  it('stops the worker and reports the error when a chunk fails here', async () => {
    const dist = (await import(DIST.href)) as typeof import('../src/index.js');
    const old = codeLike(3 << 19, 7);
    const neu = applyEdit(old, { kind: 'bump', at: 100_000, len: 9000, delta: 3 });
    await expect(dist.generatePackage(old, neu, { match: { maxCandidates: 0 } })).rejects.toThrow(/maxCandidates/);
    const boom = () => {
      throw new Error('progress boom');
    };
    await expect(dist.generatePackage(old, neu, { onProgress: (e) => e.phase === 'chunk' && boom() })).rejects.toThrow('progress boom');
  });
});
