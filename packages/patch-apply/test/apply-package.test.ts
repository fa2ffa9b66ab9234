import { describe, expect, it } from 'vitest';
import { generatePackage } from '../../diff-gen/src/generate.js';
import { applyPackage } from '../src/apply-package.js';
import { image, pair } from './helpers/images.js';

describe('applyPackage with consumeOld', () => {
  it('restores NEW in OLD\'s own buffer when it fits, and into a new one when it does not', async () => {
    const shrunk = { old: image(50_000, 3), neu: image(40_000, 3).map((b, i) => (i % 500 === 0 ? b ^ 1 : b)) };
    for (const { old, neu } of [pair(50_000), shrunk]) {
      for (const mode of ['inplace', 'ab'] as const) {
        const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 16384, dictSize: 4096 });
        const mine = Buffer.from(old);
        const { image: out } = applyPackage(mine, pkg, { consumeOld: true, pieceSize: 1000 });
        expect(Buffer.compare(out, neu)).toBe(0);
        const shared = out.buffer === mine.buffer;
        // Only an inplace package whose NEW fits in OLD's buffer is restored in it.
        expect(shared).toBe(mode === 'inplace' && neu.length <= old.length);
        // Without consumeOld the caller's OLD stays as it was.
        const kept = Buffer.from(old);
        expect(Buffer.compare(applyPackage(kept, pkg).image, neu)).toBe(0);
        expect(Buffer.compare(kept, old)).toBe(0);
      }
    }
  });
});
