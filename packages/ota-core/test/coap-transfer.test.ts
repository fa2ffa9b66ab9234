import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { coapDownload } from '../src/device/coap-download.js';
import { startCoapFileServer, type CoapFileServerHandle } from '../src/cloud/coap-file-server.js';
import { BlockOptionError, decodeBlockOption, encodeBlockOption } from '../src/protocol/coap.js';
import { DownloadError } from '../src/device/downloader.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/device/checkpoint.js';
import { recordingSink, testBytes } from './helpers/http.js';
import { startUdpProxy } from './helpers/udp-proxy.js';

const SIZE = 40_000; // 40 blocks of 1024, the last one partial
const FILE = testBytes(SIZE, 21);
const SHA = createHash('sha256').update(FILE).digest('hex');
// Generous ACK timeout where nothing is lost (no spurious retries on a loaded CI
// machine); short ones where the test drops datagrams on purpose.
const fast = { ackTimeoutMs: 200, maxRetransmit: 3, random: () => 0, sleep: async () => {} };
const lossy = { ...fast, ackTimeoutMs: 15 };

describe('Block2 option codec', () => {
  it('round-trips NUM/M/SZX in the shortest encoding', () => {
    expect(encodeBlockOption({ num: 0, more: false, size: 16 })).toHaveLength(0);
    expect([...encodeBlockOption({ num: 1, more: true, size: 1024 })]).toEqual([0x1e]);
    expect([...encodeBlockOption({ num: 16, more: false, size: 16 })]).toEqual([0x01, 0x00]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xfffff }), fc.boolean(), fc.integer({ min: 0, max: 6 }), (num, more, szx) => {
        const b = { num, more, size: 16 << szx };
        expect(decodeBlockOption(encodeBlockOption(b))).toEqual(b);
      }),
    );
    expect(() => decodeBlockOption(Buffer.from([0x07]))).toThrow(BlockOptionError);
    expect(() => decodeBlockOption(Buffer.alloc(4))).toThrow(BlockOptionError);
    expect(() => encodeBlockOption({ num: 0, more: false, size: 2048 })).toThrow(RangeError);
  });
});

describe('CoAP block-wise download', () => {
  let server: CoapFileServerHandle | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
    await server?.close();
    server = undefined;
  });

  it('downloads block by block into the sink', async () => {
    server = await startCoapFileServer({ files: { '/fw/1.1.0.bin': FILE } });
    const rec = recordingSink(SIZE);
    const r = await coapDownload({ url: `${server.url}/fw/1.1.0.bin`, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, ...fast });
    expect(r).toMatchObject({ digest: SHA, size: SIZE, attempts: 40, resumedFrom: 0, bytesReceived: SIZE });
    expect(rec.writes.every((w, i) => w.offset === i * 1024)).toBe(true);
    expect(rec.overlaps).toBe(0);
    expect(server.requests.map((q) => q.block?.num)).toEqual([...Array(40).keys()]);
  });

  it('survives lost datagrams by retransmission, writing each offset once', async () => {
    server = await startCoapFileServer({ files: { '/fw.bin': FILE } });
    const proxy = await startUdpProxy(server.port);
    closers.push(proxy.close);
    let seed = 12345;
    proxy.state.drop = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 5) === 0; // ~20% loss both ways
    const rec = recordingSink(SIZE);
    const r = await coapDownload({ url: `coap://127.0.0.1:${proxy.port}/fw.bin`, sink: rec.sink, hash: 'md5', expectedSize: SIZE, expectedDigest: createHash('md5').update(FILE).digest('hex'), ...lossy, maxRetransmit: 6, blockSize: 512 });
    expect(proxy.state.dropped).toBeGreaterThan(0);
    expect(r.size).toBe(SIZE);
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('drops out mid-transfer, then a new client resumes at the block where it stopped', async () => {
    server = await startCoapFileServer({ files: { '/fw.bin': FILE } });
    const proxy = await startUdpProxy(server.port);
    closers.push(proxy.close);
    const rec = recordingSink(SIZE);
    let flash: Uint8Array | undefined;
    const err = await coapDownload({
      url: `coap://127.0.0.1:${proxy.port}/fw.bin`,
      sink: rec.sink,
      hash: 'sha256',
      expectedSize: SIZE,
      expectedDigest: SHA,
      blockSize: 256,
      retries: 2,
      ...lossy,
      onCheckpoint: (cp) => {
        flash = encodeCheckpoint(cp);
        if (cp.offset === 17 * 256) proxy.state.blackout = true; // the link goes down
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).code).toBe('RETRIES_EXHAUSTED');
    expect((err as DownloadError).checkpoint?.offset).toBe(17 * 256);

    proxy.state.blackout = false;
    const before = server.requests.length;
    const saved = decodeCheckpoint(flash!);
    expect(saved.etag).toMatch(/^[0-9a-f]+$/);
    // New instance, different preferred block size: it must resume on a block boundary.
    const r = await coapDownload({ url: `coap://127.0.0.1:${proxy.port}/fw.bin`, sink: rec.sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, state: saved, blockSize: 1024, ...fast });
    expect(r.resumedFrom).toBe(17 * 256);
    expect(r.bytesReceived).toBe(SIZE - 17 * 256);
    expect(r.digest).toBe(SHA);
    const first = server.requests[before].block!;
    expect(first.num * first.size).toBe(17 * 256);
    expect(rec.overlaps).toBe(0);
    expect(rec.covered()).toBe(true);
  });

  it('starts over when the ETag changes mid-transfer (file replaced)', async () => {
    server = await startCoapFileServer({ files: { '/fw.bin': FILE } });
    const fixed = testBytes(SIZE, 22);
    const rec = recordingSink(SIZE);
    const r = await coapDownload({
      url: `${server.url}/fw.bin`,
      sink: rec.sink,
      hash: 'sha256',
      expectedSize: SIZE,
      expectedDigest: createHash('sha256').update(fixed).digest('hex'),
      ...fast,
      onCheckpoint: (cp) => {
        if (cp.offset === 10 * 1024) server!.setFile('/fw.bin', fixed);
      },
    });
    expect(r.size).toBe(SIZE);
    expect(rec.writes.filter((w) => w.offset === 0)).toHaveLength(2);
    expect(Buffer.compare(Buffer.from(rec.image), Buffer.from(fixed))).toBe(0);
  });

  it('reports 4.04, a wrong digest and a wrong size', async () => {
    server = await startCoapFileServer({ files: { '/fw.bin': FILE } });
    const missing = await coapDownload({ url: `${server.url}/nope.bin`, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA, ...fast }).catch((e: unknown) => e);
    expect((missing as DownloadError).code).toBe('COAP_STATUS');
    expect(server.requests).toHaveLength(1); // not retried
    const wrong = await coapDownload({ url: `${server.url}/fw.bin`, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: '1'.repeat(64), ...fast }).catch((e: unknown) => e);
    expect((wrong as DownloadError).code).toBe('DIGEST_MISMATCH');
    const small = await coapDownload({ url: `${server.url}/fw.bin`, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE - 100, expectedDigest: SHA, ...fast }).catch((e: unknown) => e);
    expect((small as DownloadError).code).toBe('SIZE_MISMATCH');
    const bad = await coapDownload({ url: `http://127.0.0.1/fw.bin`, sink: recordingSink(SIZE).sink, hash: 'sha256', expectedSize: SIZE, expectedDigest: SHA }).catch((e: unknown) => e);
    expect((bad as DownloadError).code).toBe('BAD_URL');
  });
});

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});
