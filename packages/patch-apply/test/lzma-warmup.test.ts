import { describe, expect, it } from 'vitest';
import { compressRaw } from '../../diff-gen/src/lzma-compress.js';
import { warmupData, WARMUP_LENGTH, WARMUP_PROPS } from '../src/lzma-warmup-data.js';
import { WARMUP_STREAM, WARMUP_STREAM_LENGTH, WARMUP_STREAM_PROPS } from '../src/lzma-warmup-stream.js';
import { drive, firstDiff } from './helpers/lzma-drive.js';

describe('the decoder warm-up stream', () => {
  it('is what scripts/make-lzma-warmup.mjs makes of warmupData() (regenerate it when this fails)', async () => {
    const data = warmupData();
    expect(data.length).toBe(WARMUP_LENGTH);
    expect({ props: WARMUP_STREAM_PROPS, length: WARMUP_STREAM_LENGTH }).toEqual({ props: WARMUP_PROPS, length: WARMUP_LENGTH });
    expect(Buffer.compare(await compressRaw(data, WARMUP_PROPS), WARMUP_STREAM)).toBe(0);
  });

  it('decodes to warmupData()', async () => {
    const { LzmaDecoder } = await import('../src/lzma-decoder.js');
    const res = drive(new LzmaDecoder(WARMUP_PROPS), WARMUP_STREAM, WARMUP_LENGTH, { piece: () => 777, read: () => 1000 });
    expect(firstDiff(res.output, warmupData())).toBe(-1);
  });
});
