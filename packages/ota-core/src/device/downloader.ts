// Resumable HTTP(S) download straight into a sink (the flash port's write).
// After a dropped connection or a server error it retries with exponential
// backoff and resumes with `Range: bytes=<offset>-` + `If-Range: <etag>`.
// A server that ignores Range (200 to a ranged request) is handled by skipping
// the first <offset> bytes of the body, so no offset is written twice and the
// running hash stays right. After every sink write the checkpoint (offset +
// hash state) goes to onCheckpoint, so a new instance can resume after a power cut.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { DownloadCheckpoint, HashAlgorithm } from './checkpoint.js';
import { checkTarget, resumePoint } from './download-target.js';
import { backoffDelay, defaultSleep, type BackoffOptions, type SleepFn } from '../protocol/retry.js';
import { parseContentRange, RETRYABLE_STATUS, strongEtag } from './http-response.js';

export type DownloadErrorCode =
  | 'BAD_URL'
  | 'HTTP_STATUS'
  | 'COAP_STATUS'
  | 'PROTOCOL'
  | 'NETWORK'
  | 'RANGE_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'DIGEST_MISMATCH'
  | 'SINK_FAILED'
  | 'RETRIES_EXHAUSTED'
  | 'ABORTED';

export class DownloadError extends Error {
  override name = 'DownloadError';
  /** Last persisted state, when one exists: resume from it later. */
  checkpoint?: DownloadCheckpoint;
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.status !== undefined) this.status = options.status;
  }
  status?: number;
}

export type Sink = (offset: number, bytes: Uint8Array) => Promise<void>;

export interface DownloadOptions {
  url: string;
  sink: Sink;
  hash: HashAlgorithm;
  expectedSize: number;
  /** Hex digest of the whole file (any case). */
  expectedDigest: string;
  /** Resume from this checkpoint (ignored if it belongs to another target). */
  state?: DownloadCheckpoint;
  /** Persist the checkpoint; called after every sink write. */
  onCheckpoint?: (cp: DownloadCheckpoint) => void | Promise<void>;
  /** Consecutive failed attempts without progress tolerated (default 5). */
  retries?: number;
  /** Hard cap on attempts, progress or not (default 1000). */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  sleep?: SleepFn;
  random?: () => number;
  signal?: AbortSignal;
  /** Socket idle timeout per attempt (default 30 s). */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** Extra trust anchors for https (e.g. a private CA). */
  ca?: string | Buffer | Array<string | Buffer>;
}

export interface DownloadResult {
  size: number;
  digest: string;
  attempts: number;
  /** Offset the download started from (0 = fresh). */
  resumedFrom: number;
  /** Body bytes received over the network, including skipped ones. */
  bytesReceived: number;
}



export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new DownloadError('BAD_URL', `not a URL: ${opts.url}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DownloadError('BAD_URL', `unsupported scheme ${url.protocol}`);
  const size = opts.expectedSize;
  const expected = checkTarget(size, opts.expectedDigest, opts.hash);
  const retries = opts.retries ?? 5;
  const maxAttempts = opts.maxAttempts ?? 1000;
  const sleep = opts.sleep ?? defaultSleep;
  const signal = opts.signal;

  // ---- resume state
  const resume = await resumePoint(opts.state, opts.hash, size, expected);
  const hasher = resume.hasher;
  let offset = resume.offset;
  let etag = resume.etag;
  const resumedFrom = offset;

  const checkpoint = (): DownloadCheckpoint => {
    const cp: DownloadCheckpoint = { algorithm: opts.hash, offset, totalSize: size, expectedDigest: expected, hashState: hasher!.save() };
    if (etag !== undefined) cp.etag = etag;
    return cp;
  };
  const fail = (e: DownloadError): never => {
    e.checkpoint = checkpoint();
    throw e;
  };

  const agent =
    url.protocol === 'https:'
      ? new HttpsAgent({ keepAlive: true, maxSockets: 1, ...(opts.ca === undefined ? {} : { ca: opts.ca }) })
      : new HttpAgent({ keepAlive: true, maxSockets: 1 });
  let attempts = 0;
  let bytesReceived = 0;
  let failures = 0;

  // One HTTP exchange. Returns normally when the body ended; throws DownloadError otherwise.
  const attempt = async (): Promise<boolean> => {
    let progressed = false;
    const headers: Record<string, string> = { ...opts.headers, 'Accept-Encoding': 'identity' };
    if (offset > 0) {
      headers.Range = `bytes=${offset}-`;
      if (etag !== undefined) headers['If-Range'] = etag;
    }
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers, agent, signal });
        req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('socket idle timeout')));
        req.on('response', resolve);
        req.on('error', reject);
        req.end();
      });
    } catch (e) {
      if (signal?.aborted) throw new DownloadError('ABORTED', 'download aborted', false, { cause: e });
      throw new DownloadError('NETWORK', `request failed: ${(e as Error).message}`, true, { cause: e });
    }
    try {
      const status = res.statusCode ?? 0;
      const resEtag = strongEtag(res.headers.etag);
      let skip = 0;
      // Body bytes the response may carry: a 206 no more than its Content-Range names.
      let bodyLeft = Infinity;
      let range = '';
      if (status === 200) {
        const cl = res.headers['content-length'];
        if (cl !== undefined && Number(cl) !== size) throw new DownloadError('SIZE_MISMATCH', `server size ${cl} != expected ${size}`);
        if (offset > 0) {
          if (etag !== undefined && resEtag !== undefined && resEtag !== etag) {
            // The representation changed (If-Range failed): start over.
            hasher!.init();
            offset = 0;
          } else {
            skip = offset; // the server ignored Range: discard what we already have
          }
        }
        etag = resEtag ?? etag;
      } else if (status === 206) {
        const cr = parseContentRange(res.headers['content-range']);
        if (!cr) throw new DownloadError('RANGE_MISMATCH', `bad Content-Range ${String(res.headers['content-range'])}`);
        if (cr.total !== size) throw new DownloadError('SIZE_MISMATCH', `server size ${cr.total} != expected ${size}`);
        if (cr.start > offset) throw new DownloadError('RANGE_MISMATCH', `server resumed at ${cr.start}, we are at ${offset}`);
        if (cr.end < offset) throw new DownloadError('RANGE_MISMATCH', `server sent bytes ${cr.start}-${cr.end}, we asked for ${offset}-`);
        bodyLeft = cr.end - cr.start + 1;
        range = `${cr.start}-${cr.end}/${cr.total}`;
        if (resEtag !== undefined && etag !== undefined && resEtag !== etag) {
          throw new DownloadError('RANGE_MISMATCH', 'partial content of a different representation', true);
        }
        skip = offset - cr.start;
        etag = resEtag ?? etag;
      } else if (status === 416) {
        throw new DownloadError('SIZE_MISMATCH', `server refused range from ${offset} (416)`, false, { status });
      } else {
        throw new DownloadError('HTTP_STATUS', `HTTP ${status}`, RETRYABLE_STATUS.has(status), { status });
      }

      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          bytesReceived += chunk.length;
          if (chunk.length > bodyLeft) throw new DownloadError('RANGE_MISMATCH', `body runs past its Content-Range bytes ${range}`);
          bodyLeft -= chunk.length;
          let data: Uint8Array = chunk;
          if (skip > 0) {
            if (data.length <= skip) {
              skip -= data.length;
              continue;
            }
            data = data.subarray(skip);
            skip = 0;
          }
          if (offset + data.length > size) throw new DownloadError('SIZE_MISMATCH', `body runs past ${size} bytes`);
          try {
            await opts.sink(offset, data);
          } catch (e) {
            throw new DownloadError('SINK_FAILED', `sink write at ${offset} failed: ${(e as Error).message}`, false, { cause: e });
          }
          hasher!.update(data);
          offset += data.length;
          progressed = true;
          await opts.onCheckpoint?.(checkpoint());
        }
      } catch (e) {
        if (e instanceof DownloadError) throw e;
        if (signal?.aborted) throw new DownloadError('ABORTED', 'download aborted', false, { cause: e });
        throw new DownloadError('NETWORK', `connection lost at ${offset}: ${(e as Error).message}`, true, { cause: e });
      }
      if (offset < size) throw new DownloadError('NETWORK', `connection closed at ${offset} of ${size}`, true);
      return progressed;
    } catch (e) {
      res.destroy();
      if (e instanceof DownloadError && progressed) (e as DownloadError & { progressed?: boolean }).progressed = true;
      throw e;
    }
  };

  try {
    while (offset < size) {
      if (signal?.aborted) fail(new DownloadError('ABORTED', 'download aborted', false, { cause: signal.reason }));
      if (++attempts > maxAttempts) fail(new DownloadError('RETRIES_EXHAUSTED', `gave up after ${maxAttempts} attempts`));
      try {
        await attempt();
      } catch (e) {
        const err = e as DownloadError & { progressed?: boolean };
        if (!(err instanceof DownloadError) || !err.retryable) fail(err instanceof DownloadError ? err : new DownloadError('NETWORK', String(e), false, { cause: e }));
        failures = err.progressed ? 1 : failures + 1;
        if (failures > retries) fail(new DownloadError('RETRIES_EXHAUSTED', `gave up after ${failures} failed attempts: ${err.message}`, false, { cause: err, status: err.status }));
        try {
          await sleep(backoffDelay(failures, opts.backoff, opts.random), signal);
        } catch (s) {
          fail(new DownloadError('ABORTED', 'download aborted', false, { cause: s }));
        }
      }
    }
  } finally {
    agent.destroy();
  }
  const digest = hasher.digest('hex');
  if (digest !== expected) {
    const e = new DownloadError('DIGEST_MISMATCH', `${opts.hash} ${digest} != expected ${expected}`);
    throw e;
  }
  return { size, digest, attempts, resumedFrom, bytesReceived };
}
