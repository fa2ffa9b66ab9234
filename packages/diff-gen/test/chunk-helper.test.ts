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
    // Throwing from the 40th chunk on: most of those are the worker's, delivered in its message
    // listener, where a throw used to escape as an uncaught exception instead of rejecting here.
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      let seen = 0;
      await expect(dist.generatePackage(old, neu, { splitSize: 4096, onProgress: (e) => e.phase === 'chunk' && ++seen >= 40 && boom() })).rejects.toThrow('progress boom');
      await new Promise((resolve) => setTimeout(resolve, 100)); // messages still in flight
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});
