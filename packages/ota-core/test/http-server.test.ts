import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRangeHeader, startFileServer, type FileServerHandle } from '../src/cloud/http-server.js';
import { get, testBytes } from './helpers/http.js';

const FILE = testBytes(100_000, 7);
const ETAG = `"${createHash('sha256').update(FILE).digest('base64url')}"`;

describe('parseRangeHeader', () => {
  it('follows RFC 9110 byte-range semantics', () => {
    expect(parseRangeHeader(undefined, 10)).toEqual({ kind: 'none' });
    expect(parseRangeHeader('bytes=0-4', 10)).toEqual({ kind: 'range', range: { start: 0, end: 4 } });
    expect(parseRangeHeader('bytes=5-', 10)).toEqual({ kind: 'range', range: { start: 5, end: 9 } });
    expect(parseRangeHeader('bytes=-3', 10)).toEqual({ kind: 'range', range: { start: 7, end: 9 } });
    expect(parseRangeHeader('bytes=-30', 10)).toEqual({ kind: 'range', range: { start: 0, end: 9 } });
    expect(parseRangeHeader('bytes=2-99999999999999999999', 10)).toEqual({ kind: 'range', range: { start: 2, end: 9 } });
    expect(parseRangeHeader('Bytes = 1-1', 10)).toEqual({ kind: 'range', range: { start: 1, end: 1 } });
    expect(parseRangeHeader('bytes=10-', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=-0', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=5-2', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=x-y', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=0-1', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=0-1,4-5', 10)).toEqual({ kind: 'none' }); // multi-range: served whole
    expect(parseRangeHeader('items=0-1', 10)).toEqual({ kind: 'none' }); // unknown unit ignored
  });
});

describe('file server', () => {
  let server: FileServerHandle | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves full bodies and single ranges with strong ETags', async () => {
    server = await startFileServer({ files: { '/fw.bin': FILE } });
    const full = await get(`${server.url}/fw.bin`);
    expect(full.status).toBe(200);
    expect(full.headers.etag).toBe(ETAG);
    expect(full.headers['accept-ranges']).toBe('bytes');
    expect(Buffer.compare(full.body, Buffer.from(FILE))).toBe(0);

    const mid = await get(`${server.url}/fw.bin`, { Range: 'bytes=1000-1999' });
    expect(mid.status).toBe(206);
    expect(mid.headers['content-range']).toBe('bytes 1000-1999/100000');
    expect(mid.headers['content-length']).toBe('1000');
    expect(Buffer.compare(mid.body, Buffer.from(FILE.subarray(1000, 2000)))).toBe(0);

    const tail = await get(`${server.url}/fw.bin`, { Range: 'bytes=-10' });
    expect(tail.headers['content-range']).toBe('bytes 99990-99999/100000');
    expect(Buffer.compare(tail.body, Buffer.from(FILE.subarray(99990)))).toBe(0);

    const multi = await get(`${server.url}/fw.bin`, { Range: 'bytes=0-1,5-6' });
    expect(multi.status).toBe(200);
    expect(multi.body.length).toBe(FILE.length);

    const head = await get(`${server.url}/fw.bin`, { Range: 'bytes=0-9' }, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('100000');
    expect(head.body.length).toBe(0);
  });

  it('answers 416 with Content-Range */size for unsatisfiable ranges', async () => {
    server = await startFileServer({ files: { '/fw.bin': FILE } });
    for (const range of ['bytes=100000-', 'bytes=200000-200001', 'bytes=9-3', 'bytes=-0']) {
      const r = await get(`${server.url}/fw.bin`, { Range: range });
      expect(r.status, range).toBe(416);
      expect(r.headers['content-range']).toBe('bytes */100000');
      expect(r.body.length).toBe(0);
    }
  });

  it('honours If-None-Match (weak compare), If-Match and If-Range (strong compare)', async () => {
    server = await startFileServer({ files: { '/fw.bin': FILE } });
    const u = `${server.url}/fw.bin`;
    expect((await get(u, { 'If-None-Match': ETAG })).status).toBe(304);
    expect((await get(u, { 'If-None-Match': `"nope", W/${ETAG}` })).status).toBe(304);
    expect((await get(u, { 'If-None-Match': '*' })).status).toBe(304);
    expect((await get(u, { 'If-None-Match': '"other"' })).status).toBe(200);
    expect((await get(u, { 'If-Match': '"other"' })).status).toBe(412);
    expect((await get(u, { 'If-Match': ETAG, Range: 'bytes=0-0' })).status).toBe(206);

    const ok = await get(u, { Range: 'bytes=50000-', 'If-Range': ETAG });
    expect(ok.status).toBe(206);
    expect(ok.body.length).toBe(50000);
    const changed = await get(u, { Range: 'bytes=50000-', 'If-Range': '"stale"' });
    expect(changed.status).toBe(200);
    expect(changed.body.length).toBe(100000);
    const weak = await get(u, { Range: 'bytes=50000-', 'If-Range': `W/${ETAG}` });
    expect(weak.status).toBe(200);
    const date = await get(u, { Range: 'bytes=50000-', 'If-Range': 'Wed, 21 Oct 2015 07:28:00 GMT' });
    expect(date.status).toBe(200);
  });

  it('changes the ETag when the content changes', async () => {
    server = await startFileServer({ files: { '/fw.bin': FILE } });
    const before = (await get(`${server.url}/fw.bin`, {}, 'HEAD')).headers.etag;
    server.setFile('/fw.bin', testBytes(100_000, 8));
    const after = (await get(`${server.url}/fw.bin`, {}, 'HEAD')).headers.etag;
    expect(after).not.toBe(before);
    expect((await get(`${server.url}/fw.bin`, { Range: 'bytes=10-', 'If-Range': before! })).status).toBe(200);
  });

  it('enforces signed URLs: valid passes, expired/tampered/missing get 403', async () => {
    let now = 1_700_000_000_000;
    server = await startFileServer({ files: { '/fw/1.1.0.bin': FILE }, secret: 'server-secret', now: () => now });
    const signed = server.signUrl('/fw/1.1.0.bin', now + 60_000);
    expect((await get(signed)).status).toBe(200);
    expect((await get(signed, { Range: 'bytes=0-9' })).status).toBe(206);
    expect((await get(`${server.url}/fw/1.1.0.bin`)).status).toBe(403);
    const u = new URL(signed);
    const tamperedPath = signed.replace('1.1.0', '1.1.1');
    server.setFile('/fw/1.1.1.bin', FILE);
    expect((await get(tamperedPath)).status).toBe(403);
    const later = new URL(signed);
    later.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3600));
    expect((await get(later.toString())).status).toBe(403);
    const badSig = new URL(signed);
    const s = badSig.searchParams.get('signature')!;
    badSig.searchParams.set('signature', (s[0] === 'A' ? 'B' : 'A') + s.slice(1));
    expect((await get(badSig.toString())).status).toBe(403);
    now += 61_000;
    const expired = await get(signed);
    expect(expired.status).toBe(403);
    expect(expired.body.toString()).toContain('expired');
  });

  it('a URL bound to a device and job: its signature covers both, and it is served only while the job allows', async () => {
    let open = true;
    const asked: string[] = [];
    server = await startFileServer({
      files: { '/fw/2.bin': FILE },
      secret: 'server-secret',
      authorizeBinding: ({ device, job }) => {
        asked.push(`${device} ${job}`);
        return open;
      },
    });
    const bound = server.signUrl('/fw/2.bin', Date.now() + 60_000, { device: 'a1Prod/dev-01', job: 'j42' });
    expect(new URL(bound).searchParams.get('device')).toBe('a1Prod/dev-01');
    expect((await get(bound, { Range: 'bytes=0-9' })).status).toBe(206);
    expect(asked).toEqual(['a1Prod/dev-01 j42']);
    // Another device's name, another job, or the binding taken away: the signature no longer matches.
    for (const [k, v] of [['device', 'a1Prod/dev-02'], ['job', 'j43']] as const) {
      const u = new URL(bound);
      u.searchParams.set(k, v);
      expect((await get(u.toString())).status).toBe(403);
    }
    const stripped = new URL(bound);
    stripped.searchParams.delete('device');
    stripped.searchParams.delete('job');
    expect((await get(stripped.toString())).status).toBe(403);
    // Once the job is over for the device, its URL fetches nothing, though it has not expired.
    open = false;
    const over = await get(bound);
    expect(over.status).toBe(403);
    expect(over.body.toString()).toMatch(/job is over/);
    expect(() => server!.signUrl('/fw/2.bin', Date.now(), { device: 'a b', job: 'j' })).toThrow(/cannot bind/);
  });

  it('misbehaves on request: ignoreRange, failFirst, dropAfterBytes', async () => {
    server = await startFileServer({ files: { '/fw.bin': FILE }, ignoreRange: true });
    const r = await get(`${server.url}/fw.bin`, { Range: 'bytes=10-19' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(FILE.length);
    await server.close();

    server = await startFileServer({ files: { '/fw.bin': FILE }, failFirst: 2 });
    expect((await get(`${server.url}/fw.bin`)).status).toBe(500);
    expect((await get(`${server.url}/fw.bin`)).status).toBe(500);
    expect((await get(`${server.url}/fw.bin`)).status).toBe(200);
    await server.close();

    server = await startFileServer({ files: { '/fw.bin': FILE }, dropAfterBytes: 12_345 });
    const cut = await get(`${server.url}/fw.bin`);
    expect(cut.error).toBeDefined();
    expect(cut.body.length).toBe(12_345);
    expect(Buffer.compare(cut.body, Buffer.from(FILE.subarray(0, 12_345)))).toBe(0);
    expect((await get(`${server.url}/fw.bin`)).body.length).toBe(FILE.length); // only once by default
    expect(server.requests.map((q) => q.bodyBytes)).toEqual([12_345, FILE.length]);
  });

  it('serves a directory without letting paths escape it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-http-'));
    try {
      await writeFile(join(dir, 'image.bin'), FILE);
      server = await startFileServer({ root: dir });
      const r = await get(`${server.url}/image.bin`, { Range: 'bytes=99000-' });
      expect(r.status).toBe(206);
      expect(r.headers.etag).toBe(ETAG);
      expect(Buffer.compare(r.body, Buffer.from(FILE.subarray(99000)))).toBe(0);
      expect((await get(`${server.url}/../etc/passwd`)).status).toBe(404); // URL parser normalises ..
      expect((await get(`${server.url}/..%2f..%2fetc%2fpasswd`)).status).toBe(400); // encoded slashes decode to ..
      expect((await get(`${server.url}/nope.bin`)).status).toBe(404);
      expect((await get(`${server.url}/image.bin`, {}, 'POST')).status).toBe(405);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});
