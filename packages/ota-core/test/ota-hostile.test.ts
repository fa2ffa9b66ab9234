// A hostile server and a hostile broker: each is refused with a clear error, nothing
// is handed to the bootloader, and the device keeps running (and booting) its image.
// Updates are v2 packages: a full image comes as a raw (OTA_RAW) package, and the device
// first fetches the signed head (HEAD_FETCH_BYTES, then the rest of a longer head), checks
// it, and downloads the rest of the package from where that fetch ended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { connectAsync } from 'mqtt';
import { Aedes, type Client } from 'aedes';
import { packRaw } from '@otadiff/diff-gen';
import { parseHeader, recordsOffset } from '@otadiff/patch-apply';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { answerHonestly, chunkFrame, head, startHostileServer, streamUntilClosed, writeThenCut, type HostileServer, type Responder } from './helpers/hostile-http.js';
import { testBytes } from './helpers/http.js';
import { DN, firmwarePair, packageKeys, PK, same, SPLIT, startRig, type Rig, type RigOptions } from './helpers/ota-rig.js';
import { deviceState, expectFailure, expectOldImageKept, packageNotice, recordWrites, testCloud, writtenUpTo } from './helpers/refusal.js';
import type { StoredPackage } from '../src/cloud/cloud-store.js';
import { buildUpgradeMessage, OtaStep, type UpgradeInfo } from '../src/protocol/messages.js';
import type { OtaCloudClient } from '../src/cloud/mqtt-client.js';
import type { OtaServiceEvent } from '../src/device/service-types.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { fileDigest } from '../src/protocol/signature.js';
import { upgradeTopic } from '../src/protocol/topics.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(96 * 1024);
const NEU = pair.neu;
/** What the cloud serves for the full image 2.0.0: a raw package (the store's, byte for byte; see bench). */
const RAW = packRaw(NEU, { splitSize: SPLIT, firmwareVersion: '2.0.0' }).package;
const SIZE = RAW.length;
/** The first head fetch asks for bytes 0..H-1; the download proper resumes at H. */
const H = HEAD_FETCH_BYTES;
/** The bare image, where a v1 cloud served full images. */
const device = { productKey: PK, deviceName: DN };
// Small budgets so that every refusal below comes in well under a second.
const download = { retries: 2, backoff: { initialMs: 1, maxMs: 5 } };

interface Bench {
  rig: Rig;
  /** The store's raw package of 2.0.0 (RAW), on the cloud's file server. */
  raw: StoredPackage;
  writes: Array<{ offset: number; length: number }>;
  /** A notice for RAW, served by the cloud unless `over.url` says otherwise. */
  notice(over?: Partial<UpgradeInfo>): UpgradeInfo;
  push(info: UpgradeInfo): () => Promise<void>;
}

/** A single-slot device on a rig (running 1.0.0), a second cloud client to push hand-made notices, a record of the OTA partition writes. */
async function bench(o: Partial<RigOptions> = {}, run: (b: Bench) => Promise<void>): Promise<void> {
  const rig = await startRig({ ...pair, mode: 'full', deviceAb: false, ...o, service: { download, ...o.service } });
  let cloud: OtaCloudClient | undefined;
  try {
    const raw = (await rig.cloud.store.rawPackage(PK, '2.0.0'))!;
    expect(same(raw.bytes, RAW)).toBe(true);
    cloud = await testCloud(rig);
    await rig.svc.start();
    const c = cloud;
    await run({ rig, raw, writes: recordWrites(rig), notice: (over = {}) => packageNotice(rig, raw, over), push: (info) => () => c.pushUpgrade(device, info) });
  } finally {
    await cloud?.close();
    await rig.close();
  }
}

async function withServer(respond: Responder, run: (s: HostileServer) => Promise<void>): Promise<void> {
  const server = await startHostileServer(respond);
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

/** `pkg` with its signed head kept and every byte after it replaced: it passes the head checks, not the digest. */
function otherRecords(pkg: Uint8Array, seed: number): Uint8Array {
  const out = pkg.slice();
  const from = recordsOffset(parseHeader(pkg));
  out.set(testBytes(pkg.length - from, seed), from);
  return out;
}

describe('a package swapped on the server after the notice', () => {
  it('same size and signed head, other records: downloaded to the notice size, refused by its digest (-3)', async () => {
    await bench({}, async ({ rig, raw, writes, notice, push }) => {
      rig.cloud.files.setFile(raw.path, otherRecords(RAW, 99));
      const error = await expectFailure(rig, push(notice()), OtaStep.VERIFY_FAILED);
      expect(error).toMatchObject({ name: 'DownloadError', code: 'DIGEST_MISMATCH' });
      expect(error?.message).toMatch(/^sha256 [0-9a-f]{64} != expected [0-9a-f]{64}$/);
      expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`]); // the head passed, the rest came
      expect(writtenUpTo(writes)).toBe(SIZE);
      expect((await deviceState(rig)).download).toBeUndefined(); // the next notice starts over
      await expectOldImageKept(rig, pair.old);
    });
  });

  for (const delta of [4096, -4096]) {
    it(`${delta > 0 ? 'a larger' : 'a smaller'} package: refused on the head fetch's Content-Range, nothing written (-3)`, async () => {
      await bench({}, async ({ rig, raw, writes, notice, push }) => {
        rig.cloud.files.setFile(raw.path, testBytes(SIZE + delta, 99));
        const error = await expectFailure(rig, push(notice()), OtaStep.VERIFY_FAILED);
        expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `server size ${SIZE + delta} != notice size ${SIZE}` });
        expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${H - 1}`]); // not retried
        expect(writes).toEqual([]);
        await expectOldImageKept(rig, pair.old);
      });
    });
  }

  it('swapped mid-download: the ETag changes, the device starts over and refuses the new bytes (-3)', async () => {
    let swap: () => void = () => {};
    const service = { download: { ...download, sleep: async () => swap() } }; // between the cut and the resume
    // Two responses are cut after 30000 body bytes: the 1 KiB head fetch (which ends first) and the download.
    await bench({ cloud: { fileServer: { dropAfterBytes: 30_000, dropTimes: 2 } }, service }, async ({ rig, raw, writes, notice, push }) => {
      swap = () => rig.cloud.files.setFile(raw.path, testBytes(SIZE, 99));
      const error = await expectFailure(rig, push(notice()), OtaStep.VERIFY_FAILED);
      expect(error).toMatchObject({ code: 'DIGEST_MISMATCH' });
      const reqs = rig.cloud.files.requests;
      expect(reqs.map((r) => [r.range, r.status, r.bodyBytes])).toEqual([
        [`bytes=0-${H - 1}`, 206, H],
        [`bytes=${H}-`, 206, 30_000],
        [`bytes=${H + 30_000}-`, 200, SIZE], // If-Range failed: the whole new file
      ]);
      expect(reqs[1].ifRange).toMatch(/^"[A-Za-z0-9_-]{43}"$/); // the head fetch's ETag
      expect(reqs[2].ifRange).toBe(reqs[1].ifRange);
      // Written from 0 again (the partition cleared first), never past the notice size.
      expect(writes.filter((w) => w.offset === 0)).toHaveLength(2);
      expect(writtenUpTo(writes)).toBe(SIZE);
      await expectOldImageKept(rig, pair.old);
    });
  });

  for (const kind of ['raw package', 'diff'] as const) {
    for (const delta of [0, 4096]) {
      it(`a ${kind} swapped for ${delta === 0 ? 'other bytes of its size' : 'a larger file'}: refused on its head, nothing more fetched`, async () => {
        await bench(kind === 'diff' ? { mode: 'inplace' } : {}, async ({ rig, raw, writes, push }) => {
          const pkg = kind === 'diff' ? (await rig.cloud.store.diffPackage(PK, '1.0.0', '2.0.0'))! : raw;
          rig.cloud.files.setFile(pkg.path, testBytes(pkg.size + delta, 5));
          const error = await expectFailure(rig, push(packageNotice(rig, pkg)), delta === 0 ? OtaStep.UPGRADE_FAILED : OtaStep.VERIFY_FAILED);
          if (delta === 0) expect(error?.message).toMatch(/^refused: not a usable otadiff package: /);
          else expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `server size ${pkg.size + delta} != notice size ${pkg.size}` });
          expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${Math.min(H, pkg.size) - 1}`]); // the head only
          expect(writes).toEqual([]);
          await expectOldImageKept(rig, pair.old);
        });
      });
    }
  }
});

describe('a truncated or extended download', () => {
  it('truncated, the connection closed early every time: the retry budget ends it (-2), the checkpoint stays', async () => {
    // The head comes whole; then the file stops at 20000 bytes but the server claims all of it, and cuts every resume short.
    await withServer(
      (req, sock, n) => {
        if (n === 0) return answerHonestly(req, sock, RAW, { ETag: '"t"' });
        if (n === 1) {
          sock.write(head(206, { 'Content-Length': SIZE - H, 'Content-Range': `bytes ${H}-${SIZE - 1}/${SIZE}`, ETag: '"t"' }));
          return writeThenCut(sock, RAW.subarray(H, 20_000));
        }
        sock.write(head(206, { 'Content-Length': SIZE - 20_000, 'Content-Range': `bytes 20000-${SIZE - 1}/${SIZE}`, ETag: '"t"' }), () => sock.destroy());
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.DOWNLOAD_FAILED);
          expect(error).toMatchObject({ code: 'RETRIES_EXHAUSTED' });
          expect(error?.message).toMatch(/^gave up after 3 failed attempts: connection (lost|closed) at 20000/);
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`, 'bytes=20000-', 'bytes=20000-']);
          expect(writtenUpTo(writes)).toBe(20_000);
          expect((await deviceState(rig)).download?.checkpoint?.offset).toBe(20_000); // a later notice resumes here
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('extended: a Content-Length larger than the notice size on the head fetch is refused before a byte is written (-3)', async () => {
    await withServer(
      (req, sock) => {
        sock.write(head(200, { 'Content-Length': SIZE + 1000, Connection: 'close' }));
        sock.end(Buffer.concat([RAW, testBytes(1000, 4)]));
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `server size ${SIZE + 1000} != notice size ${SIZE}` });
          expect(s.requests).toHaveLength(1);
          expect(writes).toEqual([]);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('extended: a Content-Length larger than the notice size on the download is refused before a byte of it is written (-3)', async () => {
    await withServer(
      (req, sock, n) => {
        if (n === 0) return answerHonestly(req, sock, RAW, { ETag: '"x"' });
        sock.write(head(200, { 'Content-Length': SIZE + 1000, ETag: '"x"', Connection: 'close' }));
        sock.end(Buffer.concat([RAW, testBytes(1000, 4)]));
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `server size ${SIZE + 1000} != expected ${SIZE}` });
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`]);
          expect(writtenUpTo(writes)).toBe(H); // the head fetch's bytes only
          expect((await deviceState(rig)).download).toBeUndefined();
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('extended: a chunked body with more bytes than the notice size stops at the size (-3)', async () => {
    await withServer(
      (req, sock) => {
        sock.write(head(200, { 'Transfer-Encoding': 'chunked', Connection: 'close' }));
        for (let p = 0; p < SIZE; p += 16_384) sock.write(chunkFrame(RAW.subarray(p, p + 16_384)));
        sock.write(chunkFrame(testBytes(1000, 4)));
        sock.end('0\r\n\r\n');
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `body runs past ${SIZE} bytes` });
          // The head was cut from the first 200, the rest asked for from there (and the 200 skipped up to it).
          expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ fetched: H, rangeHonoured: false });
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`]);
          expect(writtenUpTo(writes)).toBeLessThanOrEqual(SIZE);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });
});

describe('a Content-Range that lies on resume', () => {
  // The head comes whole (bytes 0..H-1), the download (bytes=H-) is cut at 30000 bytes, and the
  // resume (Range: bytes=30000-) is answered with a lie.
  const CUT = 30_000;
  const lies: Array<{ name: string; headers: Record<string, string | number>; body: Uint8Array; code: string; message: RegExp; step: number; upTo?: number }> = [
    {
      name: 'a later start than asked for',
      headers: { 'Content-Range': `bytes 40000-${SIZE - 1}/${SIZE}`, 'Content-Length': SIZE - 40_000 },
      body: RAW.subarray(40_000),
      code: 'RANGE_MISMATCH',
      message: /^server resumed at 40000, we are at 30000$/,
      step: OtaStep.DOWNLOAD_FAILED,
    },
    {
      name: 'a wrong total',
      headers: { 'Content-Range': `bytes ${CUT}-${SIZE + 999}/${SIZE + 1000}`, 'Content-Length': SIZE + 1000 - CUT },
      body: Buffer.concat([RAW.subarray(CUT), testBytes(1000, 4)]),
      code: 'SIZE_MISMATCH',
      message: new RegExp(`^server size ${SIZE + 1000} != expected ${SIZE}$`),
      step: OtaStep.VERIFY_FAILED,
    },
    {
      name: 'a range that ends before the one asked for',
      headers: { 'Content-Range': `bytes 0-9999/${SIZE}`, 'Content-Length': 10_000 },
      body: RAW.subarray(0, 10_000),
      code: 'RANGE_MISMATCH',
      message: /^server sent bytes 0-9999, we asked for 30000-$/,
      step: OtaStep.DOWNLOAD_FAILED,
    },
    {
      name: 'a body longer than its Content-Range',
      headers: { 'Content-Range': `bytes ${CUT}-${CUT + 999}/${SIZE}`, 'Content-Length': SIZE - CUT },
      body: RAW.subarray(CUT),
      code: 'RANGE_MISMATCH',
      message: new RegExp(`^body runs past its Content-Range bytes ${CUT}-${CUT + 999}/${SIZE}$`),
      step: OtaStep.DOWNLOAD_FAILED,
      upTo: CUT + 1000,
    },
    {
      name: 'no usable Content-Range at all',
      headers: { 'Content-Range': `bytes */${SIZE}`, 'Content-Length': SIZE - CUT },
      body: RAW.subarray(CUT),
      code: 'RANGE_MISMATCH',
      message: new RegExp(`^bad Content-Range bytes \\*/${SIZE}$`),
      step: OtaStep.DOWNLOAD_FAILED,
    },
  ];

  for (const lie of lies) {
    it(`${lie.name}: refused (${lie.step}), nothing written past what was proven`, async () => {
      await withServer(
        (req, sock, n) => {
          if (n === 0) return answerHonestly(req, sock, RAW, { ETag: '"v1"' });
          if (n === 1) {
            sock.write(head(206, { 'Content-Length': SIZE - H, 'Content-Range': `bytes ${H}-${SIZE - 1}/${SIZE}`, ETag: '"v1"' }));
            return writeThenCut(sock, RAW.subarray(H, CUT));
          }
          sock.write(head(206, { ...lie.headers, ETag: '"v1"', Connection: 'close' }));
          sock.end(lie.body);
        },
        async (s) =>
          bench({}, async ({ rig, writes, notice, push }) => {
            const error = await expectFailure(rig, push(notice({ url: s.url })), lie.step);
            expect(error).toMatchObject({ name: 'DownloadError', code: lie.code });
            expect(error?.message).toMatch(lie.message);
            expect(s.requests.map((r) => [r.headers.range, r.headers['if-range']])).toEqual([
              [`bytes=0-${H - 1}`, undefined],
              [`bytes=${H}-`, '"v1"'],
              [`bytes=${CUT}-`, '"v1"'],
            ]);
            expect(writtenUpTo(writes)).toBeLessThanOrEqual(lie.upTo ?? CUT);
            const cp = (await deviceState(rig)).download?.checkpoint;
            if (lie.code === 'SIZE_MISMATCH') expect(cp).toBeUndefined();
            else expect(cp?.offset).toBeGreaterThanOrEqual(CUT);
            await expectOldImageKept(rig, pair.old);
          }),
      );
    });
  }
});

describe('a Content-Range that lies on the head fetch', () => {
  it(`on the first fetch (bytes=0-${H - 1}), a range shorter than asked: refused (-2) before anything is written`, async () => {
    await withServer(
      (req, sock) => {
        // ...with the first 4 KiB as the body, which a device trusting the body rather than the range would use.
        sock.write(head(206, { 'Content-Range': `bytes 0-9/${SIZE}`, 'Content-Length': 4096, Connection: 'close' }));
        sock.end(RAW.subarray(0, 4096));
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.DOWNLOAD_FAILED);
          expect(error).toMatchObject({ code: 'RANGE_MISMATCH', message: `server sent bytes 0-9, we asked for 0-${H - 1}` });
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`]);
          expect(writes).toEqual([]);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  // RSA-2048 (a 256-byte signature) and 38 chunks of 4 KiB: a signed head of LONG bytes, longer than the
  // first fetch, so the device asks for bytes H..LONG-1 in a second ranged request.
  const rsa = packageKeys('rsa-2048');
  const long = packRaw(testBytes(150 * 1024, 44), { splitSize: 4096, firmwareVersion: '2.0.0', signingKey: rsa.privateKey }).package;
  const LONG = recordsOffset(parseHeader(long));
  const N = long.length;
  const second: Array<{ name: string; headers: Record<string, string | number>; body: Uint8Array; code: string; message: string; step: number }> = [
    {
      name: 'a range shorter than asked',
      headers: { 'Content-Range': `bytes ${H}-${H + 5}/${N}`, 'Content-Length': LONG - H },
      body: long.subarray(H, LONG),
      code: 'RANGE_MISMATCH',
      message: `server sent bytes ${H}-${H + 5}, we asked for ${H}-${LONG - 1}`,
      step: OtaStep.DOWNLOAD_FAILED,
    },
    {
      name: 'the head again from byte 0',
      headers: { 'Content-Range': `bytes 0-${LONG - 1}/${N}`, 'Content-Length': LONG },
      body: long.subarray(0, LONG),
      code: 'RANGE_MISMATCH',
      message: `bad Content-Range bytes 0-${LONG - 1}/${N}`,
      step: OtaStep.DOWNLOAD_FAILED,
    },
    {
      name: 'a wrong total',
      headers: { 'Content-Range': `bytes ${H}-${LONG - 1}/${N + 1000}`, 'Content-Length': LONG - H },
      body: long.subarray(H, LONG),
      code: 'SIZE_MISMATCH',
      message: `server size ${N + 1000} != notice size ${N}`,
      step: OtaStep.VERIFY_FAILED,
    },
  ];

  for (const lie of second) {
    it(`on the second fetch of a long signed head (bytes=${H}-${LONG - 1}), ${lie.name}: refused (${lie.step}) before anything is written`, async () => {
      await withServer(
        (req, sock, n) => {
          if (n === 0) return answerHonestly(req, sock, long, { ETag: '"l"' });
          sock.write(head(206, { ...lie.headers, ETag: '"l"', Connection: 'close' }));
          sock.end(lie.body);
        },
        async (s) =>
          bench({ trustedKeys: [rsa.publicKey] }, async ({ rig, writes, push }) => {
            const error = await expectFailure(rig, push(packageNotice(rig, { bytes: long }, { url: s.url })), lie.step);
            expect(error).toMatchObject({ name: 'DownloadError', code: lie.code, message: lie.message });
            expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-${LONG - 1}`]);
            expect(rig.events.some((e) => e.type === 'header')).toBe(false);
            expect(writes).toEqual([]);
            await expectOldImageKept(rig, pair.old);
          }),
      );
    });
  }
});

describe('an endless body', () => {
  const MiB = 1024 * 1024;
  const garbage = testBytes(16_384, 8);

  it('chunked forever after a good head: stopped at the notice size with an error; the server sees each connection go (-3)', async () => {
    const streams: Array<Promise<number>> = [];
    await withServer(
      (req, sock) => {
        sock.write(head(200, { 'Transfer-Encoding': 'chunked' }));
        sock.write(chunkFrame(RAW.subarray(0, H)));
        streams.push(streamUntilClosed(sock, () => chunkFrame(garbage)));
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `body runs past ${SIZE} bytes` });
          expect(writtenUpTo(writes)).toBeLessThanOrEqual(SIZE);
          await s.idle(); // the device hung up, on the head fetch and on the download...
          for (const n of await Promise.all(streams)) expect(n).toBeLessThan(SIZE + 16 * MiB); // ...after little more than it could use
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`]);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('the announced Content-Length, then bytes forever on the same connection: exactly the announced bytes are taken (-3)', async () => {
    const streams: Array<Promise<number>> = [];
    await withServer(
      (req, sock) => {
        sock.write(head(200, { 'Content-Length': SIZE }));
        sock.write(RAW.subarray(0, H));
        streams.push(streamUntilClosed(sock, () => garbage));
      },
      async (s) =>
        bench({}, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'DIGEST_MISMATCH' });
          expect(writtenUpTo(writes)).toBe(SIZE);
          await s.idle();
          for (const n of await Promise.all(streams)) expect(n).toBeLessThan(SIZE + 16 * MiB);
          expect(s.requests).toHaveLength(2);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('a body that stalls: the idle timeout ends each attempt, the retry budget the download (-2)', async () => {
    const STALL = H + 1000;
    await withServer(
      (req, sock, n) => {
        if (n === 0) return answerHonestly(req, sock, RAW, { ETag: '"s"' });
        if (n === 1) {
          sock.write(head(206, { 'Content-Length': SIZE - H, 'Content-Range': `bytes ${H}-${SIZE - 1}/${SIZE}`, ETag: '"s"' }));
          sock.write(RAW.subarray(H, STALL)); // ...and nothing more, the connection held open
        } else {
          sock.write(head(206, { 'Content-Length': SIZE - STALL, 'Content-Range': `bytes ${STALL}-${SIZE - 1}/${SIZE}`, ETag: '"s"' }));
        }
      },
      async (s) =>
        bench({ service: { download: { ...download, timeoutMs: 250 } } }, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.DOWNLOAD_FAILED);
          expect(error).toMatchObject({ code: 'RETRIES_EXHAUSTED' });
          expect(error?.message).toMatch(new RegExp(`^gave up after 3 failed attempts: connection lost at ${STALL}`));
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`, `bytes=${STALL}-`, `bytes=${STALL}-`]);
          expect(writtenUpTo(writes)).toBe(STALL);
          await s.idle(); // every stalled connection was dropped by the device
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('a head fetch that stalls: the idle timeout ends each attempt, the retry budget the update (-2)', async () => {
    await withServer(
      (req, sock) => {
        sock.write(head(206, { 'Content-Length': H, 'Content-Range': `bytes 0-${H - 1}/${SIZE}`, ETag: '"s"' }));
        sock.write(RAW.subarray(0, 100)); // ...and nothing more, the connection held open
      },
      async (s) =>
        bench({ service: { download: { ...download, timeoutMs: 250 } } }, async ({ rig, writes, notice, push }) => {
          const error = await expectFailure(rig, push(notice({ url: s.url })), OtaStep.DOWNLOAD_FAILED);
          expect(error).toMatchObject({ name: 'DownloadError', code: 'NETWORK' });
          expect(error?.message).toMatch(/^connection lost in the package header: /);
          expect(s.requests.map((r) => r.headers.range)).toEqual(Array(3).fill(`bytes=0-${H - 1}`)); // the first try and two retries
          expect(writes).toEqual([]);
          await s.idle();
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });

  it('a diff served as an endless 200: the head is cut from it, the resume stops at the notice size (-3)', async () => {
    let pkg: Uint8Array = new Uint8Array(0);
    const streams: Array<Promise<number>> = [];
    await withServer(
      (req, sock) => {
        sock.write(head(200, { 'Transfer-Encoding': 'chunked' }));
        sock.write(chunkFrame(pkg));
        streams.push(streamUntilClosed(sock, () => chunkFrame(garbage)));
      },
      async (s) =>
        bench({ mode: 'inplace' }, async ({ rig, writes, push }) => {
          const stored = (await rig.cloud.store.diffPackage(PK, '1.0.0', '2.0.0'))!;
          pkg = stored.bytes;
          const error = await expectFailure(rig, push(packageNotice(rig, stored, { url: s.url })), OtaStep.VERIFY_FAILED);
          expect(error).toMatchObject({ code: 'SIZE_MISMATCH', message: `body runs past ${pkg.length} bytes` });
          // The head was read from the first response and checked (the old image matches) before the rest was asked for.
          const header = rig.events.find((e) => e.type === 'header');
          expect(header).toMatchObject({ rangeHonoured: false });
          const fetched = header?.type === 'header' ? header.fetched : 0;
          expect(fetched).toBe(Math.min(H, pkg.length));
          expect(s.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${fetched - 1}`, `bytes=${fetched}-`]);
          expect(writtenUpTo(writes)).toBeLessThanOrEqual(pkg.length);
          await s.idle();
          for (const n of await Promise.all(streams)) expect(n).toBeLessThan(pkg.length + 16 * MiB);
          await expectOldImageKept(rig, pair.old);
        }),
    );
  });
});

// ------------------------------------------------------------------ broker messages

/** Publishes raw payloads on this device's upgrade topic with the cloud's own credential. */
async function rawCloud(rig: Rig) {
  const { username, password } = rig.cloud.store.serviceCredential;
  const client = await connectAsync(rig.cloud.brokerUrl, { clientId: 'hostile-cloud', username, password, reconnectPeriod: 0 });
  return {
    publish: (payload: string | Buffer) => client.publishAsync(upgradeTopic(PK, DN), payload, { qos: 1 }).then(() => {}),
    close: () => client.endAsync(),
  };
}

/** A valid notice's wire form (for RAW) with some fields of `data` and of the top level replaced. */
function wire(b: Bench, data: Record<string, unknown> = {}, top: Record<string, unknown> = {}): string {
  const m = JSON.parse(buildUpgradeMessage(b.notice())) as { data: Record<string, unknown> };
  return JSON.stringify({ ...m, data: { ...m.data, ...data }, ...top });
}

async function expectInvalid(rig: Rig, publish: () => Promise<void>, message: RegExp): Promise<void> {
  const invalid = rig.svc.waitFor((e) => e.type === 'invalid-notice', 10_000);
  await publish();
  const e = (await invalid) as Extract<OtaServiceEvent, { type: 'invalid-notice' }>;
  expect(e.error.message).toMatch(message);
}

/** Nothing but 'invalid-notice' came of the messages: no notice acted on, no download, no report. */
function expectNothingActedOn(rig: Rig): void {
  expect(rig.events.filter((e) => ['notice', 'failed', 'download-start', 'header'].includes(e.type))).toEqual([]);
  expect(rig.cloud.files.requests).toEqual([]);
}

describe('hostile broker messages', () => {
  it('oversized, malformed or mistyped notices are dropped with a clear error', async () => {
    await bench({}, async (b) => {
      const rig = b.rig;
      const raw = await rawCloud(rig);
      try {
        const big = wire(b, { padding: 'x'.repeat(100 * 1024) });
        const cases: Array<[string | Buffer, RegExp]> = [
          [big, new RegExp(`^notice: payload of ${Buffer.byteLength(big)} bytes exceeds 16384$`)],
          ['{"code":"1000","data":{', /^notice: payload is not JSON$/],
          [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /^notice: payload is not valid UTF-8$/],
          ['[1,2,3]', /^notice must be a JSON object$/],
          [wire(b, {}, { data: null }), /^upgrade\.data must be a JSON object$/],
          [wire(b, {}, { code: 9201 }), /^upgrade\.code 9201 is not "1000"$/],
          [wire(b, { size: String(SIZE) }), /^upgrade\.data\.size must be an integer in 1\.\.\d+$/],
          [wire(b, { url: 42 }), /^url must be a string of 1\.\.2048 chars$/],
          [wire(b, { sign: 12345 }), /^upgrade\.data\.sign must be 64 hex digits$/],
          [wire(b, { isDiff: 'yes' }), /^upgrade\.data\.isDiff must be 0 or 1$/],
          [wire(b, { version: ['2', '0'] }), /^upgrade\.data\.version is not a valid version$/],
        ];
        for (const [payload, message] of cases) await expectInvalid(rig, () => raw.publish(payload), message);
        expectNothingActedOn(rig);
        await expectOldImageKept(rig, pair.old);
      } finally {
        await raw.close();
      }
    });
  });

  it('valid-looking notices with nonsense fields are refused before anything is downloaded', async () => {
    await bench({}, async (b) => {
      const { rig, notice, push } = b;
      const raw = await rawCloud(rig);
      try {
        const cases: Array<[Record<string, unknown>, RegExp]> = [
          [{ size: -5 }, /^upgrade\.data\.size must be an integer in 1\.\.\d+$/],
          [{ size: 0 }, /^upgrade\.data\.size must be an integer in 1\.\.\d+$/],
          [{ size: 2 ** 40 }, /^upgrade\.data\.size must be an integer in 1\.\.\d+$/],
          [{ url: 'file:///dev/mtd0' }, /^url scheme file: not allowed$/],
          [{ url: 'ftp://127.0.0.1/fw.bin' }, /^url scheme ftp: not allowed$/],
          [{ url: 'coap://127.0.0.1/fw.bin' }, /^url scheme coap: not allowed$/], // this device downloads over HTTP
          [{ url: 'http://admin:admin@127.0.0.1/fw.bin' }, /^url must not carry credentials$/],
          [{ url: 'http://127.0.0.1/a b' }, /^url contains whitespace or control characters$/],
          [{ version: 'latest' }, /^upgrade\.data\.version is not a valid version$/],
          [{ signMethod: 'CRC32' }, /^upgrade\.data\.signMethod "CRC32" not supported$/],
          [{ sign: '0'.repeat(32) }, /^upgrade\.data\.sign must be 64 hex digits$/],
        ];
        for (const [data, message] of cases) await expectInvalid(rig, () => raw.publish(wire(b, data)), message);
        expectNothingActedOn(rig);
      } finally {
        await raw.close();
      }
      // These parse, and the device refuses them itself, reporting -1 to the cloud.
      const ota = rig.port.info.otaSize;
      let error = await expectFailure(rig, push(notice({ size: ota + 1 })), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toBe(`refused: a ${ota + 1}-byte package does not fit the ${ota}-byte OTA partition`);
      expect(rig.cloud.files.requests).toEqual([]);
      // A "diff" that is a full image (a raw package): refused on its signed head.
      error = await expectFailure(rig, push(notice({ isDiff: 1 })), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toBe('refused: the notice announces a diff, the package is a full image (raw)');
      // A bare image, as a v1 cloud sent full images: not a package at all, refused on its first bytes.
      const fwPath = (await rig.cloud.store.firmware(PK, '2.0.0'))!.path; // the stored image itself
      const bare = { ...notice(), size: NEU.length, url: rig.cloud.files.signUrl(fwPath, Date.now() + 60_000), sign: fileDigest(NEU, 'SHA256') };
      error = await expectFailure(rig, push(bare), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toMatch(/^refused: not a usable otadiff package: /);
      expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${H - 1}`, `bytes=0-${H - 1}`]); // the heads only
      await expectOldImageKept(rig, pair.old);
    });
  });

  it('an http:// URL on a device that only takes https:// is refused', async () => {
    await bench({ service: { downloadProtocol: 'https' } }, async (b) => {
      const rig = b.rig;
      const raw = await rawCloud(rig);
      try {
        await expectInvalid(rig, () => raw.publish(wire(b, { url: 'http://127.0.0.1:1/fw.bin' })), /^url scheme http: not allowed$/);
      } finally {
        await raw.close();
      }
      expectNothingActedOn(rig);
      await expectOldImageKept(rig, pair.old);
    });
  });

  it("a notice naming another device, or another module, is refused", async () => {
    await bench({}, async (b) => {
      const { rig, notice, push } = b;
      const raw = await rawCloud(rig);
      try {
        await expectInvalid(rig, () => raw.publish(wire(b, {}, { deviceName: 'rig-device-02' })), /^upgrade\.deviceName "rig-device-02" is not this device \(a1RigProd01\/rig-device-01\)$/);
        await expectInvalid(rig, () => raw.publish(wire(b, { productKey: 'a1OtherProd' })), /^upgrade\.data\.productKey "a1OtherProd" is not this device/);
        await expectInvalid(rig, () => raw.publish(wire(b, { deviceName: 7 })), /^upgrade\.data\.deviceName "7" is not this device/);
        expectNothingActedOn(rig);
        // Naming this very device is fine; the module is then what it is refused for.
        const failed = rig.svc.waitFor((e) => e.type === 'failed', 10_000);
        await raw.publish(wire(b, { module: 'wifi' }, { productKey: PK, deviceName: DN }));
        expect(await failed).toMatchObject({ step: OtaStep.UPGRADE_FAILED, error: { message: 'refused: the notice is for module wifi, this device updates default' } });
      } finally {
        await raw.close();
      }
      // The same through the ordinary client, with the cloud told (-1).
      const error = await expectFailure(rig, push(notice({ module: 'MCU' })), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toBe('refused: the notice is for module MCU, this device updates default');
      expect(rig.cloud.files.requests).toEqual([]);
      await expectOldImageKept(rig, pair.old);
    });
  });

  it("a broker gone wrong: messages on another device's topic (or any other) are ignored", async () => {
    // A bare aedes that lets anyone in and pushes whatever it likes to whoever subscribes.
    const aedes = await Aedes.createBroker();
    const server = createNetServer((s: Socket) => aedes.handle(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const subscribed = new Promise<Client>((resolve) => aedes.on('subscribe', (_subs, client) => resolve(client)));
    try {
      await bench({ service: { broker: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}` } }, async ({ rig, notice }) => {
        const client = await subscribed;
        const deliver = (topic: string, payload: string) => () =>
          new Promise<void>((resolve, reject) => client.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, (e) => (e ? reject(e) : resolve())));
        const message = buildUpgradeMessage(notice());
        const other = upgradeTopic(PK, 'rig-device-02');
        await expectInvalid(rig, deliver(other, message), new RegExp(`^a message on ${other}, not this device's upgrade topic: ignored$`));
        await expectInvalid(rig, deliver('/sys/anything', message), /^a message on \/sys\/anything, not this device's upgrade topic: ignored$/);
        expectNothingActedOn(rig);
        await expectOldImageKept(rig, pair.old);
      });
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
