import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { startFileServer, type FileServerHandle } from '../src/cloud/http-server.js';
import { download, DownloadError } from '../src/device/downloader.js';
import { CheckpointError, decodeCheckpoint, encodeCheckpoint, type DownloadCheckpoint } from '../src/device/checkpoint.js';
import { recordingSink, testBytes } from './helpers/http.js';

const SIZE = 300_000;
const FILE = testBytes(SIZE, 3);
const SHA = createHash('sha256').update(FILE).digest('hex');
const MD5 = createHash('md5').update(FILE).digest('hex');
const noSleep = async () => {};

describe('download', () => {
  let server: FileServerHandle | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const serve = async (o: Parameters<typeof startFileServer>[0] = {}) => {
    server = await startFileServer({ files: { '/fw.bin': FILE }, ...o });
    return `${server.url}/fw.bin`;
  };

  it('downloads cleanly, checkpointing after every write', async () => {
    const url = await serve();
    const rec = recordingSink(SIZE);
    const cps: DownloadCheckpoint[] = [];
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA.toUpperCase(), onCheckpoint: (cp) => void cps.push(cp) });
    expect(r).toMatchObject({ size: SIZE, digest: SHA, attempts: 1, resumedFrom: 0, bytesReceived: SIZE });
    expect(rec.covered()).toBe(true);
    expect(rec.overlaps).toBe(0);
    expect(Buffer.compare(Buffer.from(rec.image), Buffer.from(FILE))).toBe(0);
    expect(cps.length).toBe(rec.writes.length);
    expect(cps.at(-1)).toMatchObject({ offset: SIZE, totalSize: SIZE, expectedDigest: SHA, etag: expect.stringMatching(/^"[A-Za-z0-9_-]{43}"$/) });
  });

  it('resumes with Range + If-Range after a dropped connection, writing each offset once', async () => {
    const url = await serve({ dropAfterBytes: 100_000 });
    const rec = recordingSink(SIZE);
    const sleeps: number[] = [];
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, sleep: async (ms) => void sleeps.push(ms), backoff: { initialMs: 50 } });
    expect(r.digest).toBe(SHA);
    expect(r.attempts).toBe(2);
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
    const [first, second] = server!.requests;
    expect(first.range).toBeUndefined();
    expect(first.bodyBytes).toBe(100_000);
    expect(second.range).toBe('bytes=100000-');
    expect(second.ifRange).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(second.status).toBe(206);
    expect(sleeps).toEqual([50]);
    expect(r.bytesReceived).toBe(SIZE);
  });

  it('keeps going when every response is cut (progress resets the retry budget)', async () => {
    const url = await serve({ dropAfterBytes: 40_000, dropTimes: Infinity });
    const rec = recordingSink(SIZE);
    const r = await download({ url, sink: rec.sink, hash: 'md5', expectedSize: SIZE, expectedDigest: MD5, retries: 1, sleep: noSleep });
    expect(r.digest).toBe(MD5);
    expect(r.attempts).toBe(Math.ceil(SIZE / 40_000));
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('handles a server that ignores Range: skips what it already has, hash stays right', async () => {
    const url = await serve({ ignoreRange: true, dropAfterBytes: 123_457 });
    const rec = recordingSink(SIZE);
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, sleep: noSleep });
    expect(r.digest).toBe(SHA);
    expect(server!.requests[1].range).toBe('bytes=123457-');
    expect(server!.requests[1].status).toBe(200);
    expect(r.bytesReceived).toBe(123_457 + SIZE);
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('retries 500s with exponential backoff, then succeeds', async () => {
    const url = await serve({ failFirst: 3 });
    const rec = recordingSink(SIZE);
    const sleeps: number[] = [];
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, retries: 5, backoff: { initialMs: 100, factor: 2, maxMs: 300 }, sleep: async (ms) => void sleeps.push(ms) });
    expect(r.attempts).toBe(4);
    expect(sleeps).toEqual([100, 200, 300]);
    expect(rec.covered()).toBe(true);
  });

  it('gives up after the retry budget, with a checkpoint to resume from', async () => {
    const url = await serve({ failFirst: 10 });
    const err = await download({ url, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, retries: 2, sleep: noSleep }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).code).toBe('RETRIES_EXHAUSTED');
    expect((err as DownloadError).status).toBe(500);
    expect((err as DownloadError).checkpoint?.offset).toBe(0);
    expect(server!.requests).toHaveLength(3);
  });

  it('resumes from a persisted checkpoint in a new downloader instance (power cut)', async () => {
    const url = await serve();
    const rec = recordingSink(SIZE);
    let persisted: Uint8Array | undefined;
    const cut = new AbortController();
    const err = await download({
      url,
      sink: rec.sink,
      hash: 'sha256',
      expectedSize: SIZE,
      expectedDigest: SHA,
      signal: cut.signal,
      onCheckpoint: (cp) => {
        persisted = encodeCheckpoint(cp); // what the device keeps in its flash
        if (cp.offset >= 120_000) cut.abort(new Error('power cut'));
      },
    }).catch((e: unknown) => e);
    expect((err as DownloadError).code).toBe('ABORTED');
    const saved = decodeCheckpoint(persisted!);
    expect(saved.offset).toBeGreaterThanOrEqual(120_000);
    expect(saved.offset).toBeLessThan(SIZE);

    // "Reboot": only the decoded checkpoint survives.
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, state: saved });
    expect(r.resumedFrom).toBe(saved.offset);
    expect(r.bytesReceived).toBe(SIZE - saved.offset); // nothing before the checkpoint is fetched or re-hashed
    expect(r.digest).toBe(SHA);
    expect(server!.requests.at(-1)?.range).toBe(`bytes=${saved.offset}-`);
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('finishes without any request when the checkpoint is already complete', async () => {
    const url = await serve();
    let last: DownloadCheckpoint | undefined;
    await download({ url, sink: recordingSink(SIZE).sink, hash: 'md5', expectedSize: SIZE, expectedDigest: MD5, onCheckpoint: (cp) => void (last = cp) });
    const before = server!.requests.length;
    const r = await download({ url, sink: recordingSink(SIZE).sink, hash: 'md5', expectedSize: SIZE, expectedDigest: MD5, state: last });
    expect(r.digest).toBe(MD5);
    expect(server!.requests.length).toBe(before);
  });

  it('ignores a checkpoint that belongs to another target', async () => {
    const url = await serve();
    const other: DownloadCheckpoint = { algorithm: 'sha256', offset: 1000, totalSize: SIZE, expectedDigest: 'f'.repeat(64), hashState: new Uint8Array(116) };
    const rec = recordingSink(SIZE);
    const r = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, state: other });
    expect(r.resumedFrom).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('restarts from zero when the server content changed under a checkpoint (If-Range fails)', async () => {
    const url = await serve();
    let saved: DownloadCheckpoint | undefined;
    const cut = new AbortController();
    await download({ url, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, signal: cut.signal, onCheckpoint: (cp) => {
      saved = cp;
      if (cp.offset > 50_000) cut.abort();
    } }).catch(() => {});
    server!.setFile('/fw.bin', testBytes(SIZE, 99));
    const rec = recordingSink(SIZE);
    const err = await download({ url, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, state: saved }).catch((e: unknown) => e);
    expect(server!.requests.at(-1)?.status).toBe(200);
    expect(rec.writes[0].offset).toBe(0);
    expect((err as DownloadError).code).toBe('DIGEST_MISMATCH');
  });

  it('rejects a wrong digest, a wrong size and a refused signed URL', async () => {
    const url = await serve();
    const wrong = await download({ url, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: '0'.repeat(64) }).catch((e: unknown) => e);
    expect((wrong as DownloadError).code).toBe('DIGEST_MISMATCH');
    const small = await download({ url, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE - 1, expectedDigest: SHA }).catch((e: unknown) => e);
    expect((small as DownloadError).code).toBe('SIZE_MISMATCH');
    const badHex = await download({ url, sink: recordingSink(SIZE).sink, hash: 'md5', expectedSize: SIZE, expectedDigest: SHA }).catch((e: unknown) => e);
    expect((badHex as DownloadError).code).toBe('DIGEST_MISMATCH');
    await server!.close();

    let now = 1_000_000_000_000;
    server = await startFileServer({ files: { '/fw.bin': FILE }, secret: 's3cret', now: () => now });
    const signed = server.signUrl('/fw.bin', now + 1000);
    expect((await download({ url: signed, sink: recordingSink(SIZE).sink, hash: 'md5', expectedSize: SIZE, expectedDigest: MD5 })).digest).toBe(MD5);
    now += 2000;
    const expired = await download({ url: signed, sink: recordingSink(SIZE).sink, hash: 'md5', expectedSize: SIZE, expectedDigest: MD5, sleep: noSleep }).catch((e: unknown) => e);
    expect((expired as DownloadError).code).toBe('HTTP_STATUS');
    expect((expired as DownloadError).status).toBe(403);
    expect(server.requests.at(-1)?.status).toBe(403);
    expect(server.requests.filter((q) => q.status === 403)).toHaveLength(1); // 403 is not retried
  });

  it('stops at a failing sink (flash write error) without retrying', async () => {
    const url = await serve();
    let calls = 0;
    const err = await download({ url, sink: async () => { if (++calls === 2) throw new Error('erase failed'); }, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA }).catch((e: unknown) => e);
    expect((err as DownloadError).code).toBe('SINK_FAILED');
    expect((err as DownloadError).checkpoint?.offset).toBeGreaterThan(0);
    expect(server!.requests).toHaveLength(1);
  });
});

describe('checkpoint codec', () => {
  const cp: DownloadCheckpoint = { algorithm: 'sha256', offset: 123_456, totalSize: SIZE, expectedDigest: SHA, etag: '"abc"', hashState: testBytes(116, 5) };

  it('round-trips, with and without an etag, for both algorithms', () => {
    expect(decodeCheckpoint(encodeCheckpoint(cp))).toEqual(cp);
    const { etag: _e, ...noEtag } = cp;
    expect(decodeCheckpoint(encodeCheckpoint(noEtag))).toEqual(noEtag);
    const md5: DownloadCheckpoint = { ...cp, algorithm: 'md5', expectedDigest: MD5, hashState: testBytes(156, 2) };
    expect(decodeCheckpoint(encodeCheckpoint(md5))).toEqual(md5);
  });

  it('detects every single-byte corruption and truncation', () => {
    const enc = encodeCheckpoint(cp);
    for (let i = 0; i < enc.length; i++) {
      const bad = enc.slice();
      bad[i] ^= 0x40;
      expect(() => decodeCheckpoint(bad), `byte ${i}`).toThrow(CheckpointError);
    }
    for (let n = 0; n < enc.length; n++) expect(() => decodeCheckpoint(enc.subarray(0, n))).toThrow(CheckpointError);
  });

  it('refuses to encode nonsense', () => {
    expect(() => encodeCheckpoint({ ...cp, offset: SIZE + 1 })).toThrow(CheckpointError);
    expect(() => encodeCheckpoint({ ...cp, expectedDigest: MD5 })).toThrow(CheckpointError);
    expect(() => encodeCheckpoint({ ...cp, etag: 'has space' })).toThrow(CheckpointError);
    expect(() => encodeCheckpoint({ ...cp, hashState: new Uint8Array(0) })).toThrow(CheckpointError);
  });

  it('throws only CheckpointError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        try {
          decodeCheckpoint(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(CheckpointError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});
