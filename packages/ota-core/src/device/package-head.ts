// The first bytes of a package, fetched before the download proper: the signed header
// and its signature block. The device verifies the signature and the security counter,
// and a diff's old image against the image it runs, and refuses a package it must not
// or could not install without downloading the rest of it.
// HTTP: `Range: bytes=<offset>-<offset+n-1>`; a server that ignores Range answers 200
// and we read just the bytes wanted. CoAP: Block2 blocks from 0 until the bytes wanted
// are in. The bytes fetched are kept: they are the start of the download, written to
// flash and hashed like any other.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { coapDownload } from './coap-download.js';
import { DownloadError } from './downloader.js';
import type { HashAlgorithm } from './checkpoint.js';
import { backoffDelay, defaultSleep, type BackoffOptions, type SleepFn } from '../protocol/retry.js';
import { parseContentRange, RETRYABLE_STATUS, strongEtag } from './http-response.js';

export interface PackageHead {
  bytes: Uint8Array;
  /** Strong ETag of the representation, to resume the rest with If-Range. */
  etag?: string;
  /** False when the server answered 200 to the ranged request. */
  rangeHonoured: boolean;
}

/**
 * Bytes a device asks for first: the fixed header and a chunk table of up to 36 chunks with the largest
 * signature block (RSA-2048), 48 with an Ed25519 or ECDSA one, so one request usually brings the
 * whole signed head.
 */
export const HEAD_FETCH_BYTES = 1024;

export interface PackageHeadOptions {
  url: string;
  /** First byte wanted (default 0). */
  offset?: number;
  /** Bytes wanted (up to the end of the package when it is shorter). */
  length: number;
  /** The package's size from the notice; the server must agree. */
  totalSize: number;
  timeoutMs?: number;
  retries?: number;
  backoff?: BackoffOptions;
  sleep?: SleepFn;
  signal?: AbortSignal;
  ca?: string | Buffer | Array<string | Buffer>;
  /** CoAP only: what coapDownload needs to validate the transfer. */
  hash?: HashAlgorithm;
  expectedDigest?: string;
  ackTimeoutMs?: number;
}



async function httpHeadOnce(url: URL, from: number, want: number, o: PackageHeadOptions): Promise<PackageHead> {
  const headers = { Range: `bytes=${from}-${from + want - 1}`, 'Accept-Encoding': 'identity' };
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const options = { method: 'GET', headers, agent: false as const, signal: o.signal, ...(o.ca === undefined ? {} : { ca: o.ca }) };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options);
    req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error('socket idle timeout')));
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  }).catch((e: unknown) => {
    throw new DownloadError(o.signal?.aborted ? 'ABORTED' : 'NETWORK', `header request failed: ${(e as Error).message}`, !o.signal?.aborted, { cause: e });
  });
  try {
    const status = res.statusCode ?? 0;
    if (status === 206) {
      const cr = parseContentRange(res.headers['content-range']);
      if (!cr || cr.start !== from) throw new DownloadError('RANGE_MISMATCH', `bad Content-Range ${String(res.headers['content-range'])}`);
      if (cr.total !== o.totalSize) throw new DownloadError('SIZE_MISMATCH', `server size ${cr.total} != notice size ${o.totalSize}`);
      // A range that stops short would leave the rest of the head to whatever body follows it.
      if (cr.end < from + want - 1) throw new DownloadError('RANGE_MISMATCH', `server sent bytes ${from}-${cr.end}, we asked for ${from}-${from + want - 1}`);
    } else if (status === 200) {
      const cl = res.headers['content-length'];
      if (cl !== undefined && Number(cl) !== o.totalSize) throw new DownloadError('SIZE_MISMATCH', `server size ${cl} != notice size ${o.totalSize}`);
    } else {
      throw new DownloadError('HTTP_STATUS', `HTTP ${status} for the package header`, RETRYABLE_STATUS.has(status), { status });
    }
    const out = new Uint8Array(want);
    let got = 0;
    // A 200 carries the whole file: skip to `from`, and stop reading once the bytes wanted are in.
    let skip = status === 200 ? from : 0;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        let data: Uint8Array = chunk;
        if (skip > 0) {
          const s = Math.min(skip, data.length);
          skip -= s;
          data = data.subarray(s);
        }
        const n = Math.min(data.length, want - got);
        out.set(data.subarray(0, n), got);
        got += n;
        if (got === want) break;
      }
    } catch (e) {
      throw new DownloadError('NETWORK', `connection lost in the package header: ${(e as Error).message}`, true, { cause: e });
    }
    if (got < want) throw new DownloadError('NETWORK', `header response ended after ${got} of ${want} bytes`, true);
    const etag = strongEtag(res.headers.etag);
    return etag === undefined ? { bytes: out, rangeHonoured: status === 206 } : { bytes: out, etag, rangeHonoured: status === 206 };
  } finally {
    res.destroy();
  }
}

class HeadCaptured extends Error {}

async function coapHead(o: PackageHeadOptions, from: number, want: number): Promise<PackageHead> {
  if (o.hash === undefined || o.expectedDigest === undefined) throw new DownloadError('BAD_URL', 'a CoAP header fetch needs the hash and digest');
  const blocks: Uint8Array[] = [];
  let end = 0;
  try {
    // Blocks of 1024 bytes (the largest CoAP block) from block 0, until the bytes wanted are in.
    await coapDownload({
      url: o.url,
      hash: o.hash,
      expectedSize: o.totalSize,
      expectedDigest: o.expectedDigest,
      blockSize: 1024,
      ackTimeoutMs: o.ackTimeoutMs,
      retries: o.retries,
      backoff: o.backoff,
      sleep: o.sleep,
      signal: o.signal,
      sink: async (offset, data) => {
        if (offset !== end) throw new DownloadError('PROTOCOL', `CoAP block at ${offset}, expected ${end}`);
        blocks.push(data.slice());
        end += data.length;
        if (end >= from + want) throw new HeadCaptured();
      },
    });
  } catch (e) {
    if (!(e instanceof DownloadError && e.cause instanceof HeadCaptured)) throw e;
  }
  if (end < from + want) throw new DownloadError('PROTOCOL', 'the CoAP blocks end before the header');
  // Whole blocks: what lies past the bytes wanted is the start of the download all the same.
  const all = Buffer.concat(blocks);
  return { bytes: new Uint8Array(all.subarray(from)), rangeHonoured: true };
}

/**
 * Fetch `length` bytes of a package from `offset` (default 0), or up to its end (HTTP/HTTPS: a ranged
 * GET; CoAP: blocks from 0, whole blocks, so possibly more).
 */
export async function fetchPackageHead(o: PackageHeadOptions): Promise<PackageHead> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new DownloadError('BAD_URL', `not a URL: ${o.url}`);
  }
  if (!Number.isSafeInteger(o.totalSize) || o.totalSize <= 0) throw new DownloadError('SIZE_MISMATCH', 'totalSize must be a positive integer');
  const from = o.offset ?? 0;
  if (!Number.isSafeInteger(from) || from < 0 || from >= o.totalSize) throw new DownloadError('SIZE_MISMATCH', `offset ${from} is outside the ${o.totalSize}-byte package`);
  const want = Math.min(o.length, o.totalSize - from);
  if (!Number.isSafeInteger(want) || want <= 0) throw new DownloadError('SIZE_MISMATCH', 'length must be a positive integer');
  if (url.protocol === 'coap:') return coapHead(o, from, want);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DownloadError('BAD_URL', `unsupported scheme ${url.protocol}`);
  const retries = o.retries ?? 5;
  const sleep = o.sleep ?? defaultSleep;
  for (let failures = 0; ; ) {
    try {
      return await httpHeadOnce(url, from, want, o);
    } catch (e) {
      const err = e as DownloadError;
      if (!(err instanceof DownloadError) || !err.retryable || ++failures > retries) throw err;
      await sleep(backoffDelay(failures, o.backoff), o.signal).catch((s: unknown) => {
        throw new DownloadError('ABORTED', 'download aborted', false, { cause: s });
      });
    }
  }
}
