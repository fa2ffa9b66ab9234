import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nodeSha256 } from '../src/node-sha256.js';
import { pureSha256 } from '../src/sha256.js';

describe('SHA-256 implementations', () => {
  it('the pure-TypeScript default and node:crypto agree, fed in any pieces', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }), (pieces) => {
        const a = pureSha256();
        const b = nodeSha256();
        for (const p of pieces) {
          a.update(p);
          b.update(p);
        }
        expect(Buffer.from(a.digest()).toString('hex')).toBe(Buffer.from(b.digest()).toString('hex'));
      }),
      { seed: 3, numRuns: 100 },
    );
    const empty = pureSha256();
    expect(Buffer.from(empty.digest()).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
