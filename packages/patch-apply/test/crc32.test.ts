import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/crc32.js';
import { nodeCrc32 } from '../src/node-crc32.js';

describe('CRC-32', () => {
  it('zlib (host) and the pure-TypeScript default agree, continued or not', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    // Continuing from a CRC of 0 is continuing from the start (the empty input's CRC is 0).
    expect(crc32(new TextEncoder().encode('123456789'), 0)).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        const whole = crc32(Uint8Array.from([...a, ...b]));
        expect(nodeCrc32(a)).toBe(crc32(a));
        expect(nodeCrc32(b, nodeCrc32(a))).toBe(whole);
        expect(crc32(b, crc32(a))).toBe(whole);
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});
