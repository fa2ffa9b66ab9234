// Firmware download over CoAP block-wise transfer (RFC 7959, Block2), the device's half
// (the cloud's server is cloud/coap-file-server.ts): one
// confirmable GET per block (RFC 7252 retransmission with exponential
// back-off), each block written straight to the sink and hashed; the checkpoint (offset = block number x block size, plus the hash
// state and the ETag) lets a new instance resume at the block where it stopped.

import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import coapPacket, { type ParsedPacket } from 'coap-packet';
import { BlockOptionError, decodeBlockOption, encodeBlockOption, type BlockOption } from '../protocol/coap.js';
import type { DownloadCheckpoint, HashAlgorithm } from './checkpoint.js';
import { DownloadError, type DownloadResult, type Sink } from './downloader.js';
import { checkTarget, resumePoint } from './download-target.js';
import { backoffDelay, defaultSleep, type BackoffOptions, type SleepFn } from '../protocol/retry.js';

const { generate, parse } = coapPacket;

/** A malformed Block2 option from the server is a protocol error of the download. */
function blockOf(raw: Uint8Array): BlockOption {
  try {
    return decodeBlockOption(raw);
  } catch (e) {
    if (e instanceof BlockOptionError) throw new DownloadError('PROTOCOL', e.message);
    throw e;
  }
}

export interface CoapDownloadOptions {
  /** coap://host:port/path */
  url: string;
  sink: Sink;
  hash: HashAlgorithm;
  expectedSize: number;
  expectedDigest: string;
  state?: DownloadCheckpoint;
  onCheckpoint?: (cp: DownloadCheckpoint) => void | Promise<void>;
  /** Preferred block size (16..1024, power of two; default 1024). */
  blockSize?: number;
  /** RFC 7252 ACK_TIMEOUT in ms (default 2000) and MAX_RETRANSMIT (default 4). */
  ackTimeoutMs?: number;
  maxRetransmit?: number;
  /** Wait for a separate response after an empty ACK (default 10 s). */
  responseTimeoutMs?: number;
  /** Consecutive failed block exchanges tolerated (default 5). */
  retries?: number;
  backoff?: BackoffOptions;
  sleep?: SleepFn;
  random?: () => number;
  signal?: AbortSignal;
}

const TYPE_CODE_CONTENT = '2.05';

interface Exchange {
  packet: ParsedPacket;
}

export interface CoapTiming {
  ackTimeoutMs: number;
  maxRetransmit: number;
  responseTimeoutMs: number;
  random: () => number;
  signal?: AbortSignal;
}

export interface CoapRequest {
  code: 'GET' | 'POST';
  path: string[];
  query?: string[];
  payload?: Buffer;
  block?: BlockOption;
}

/** A tiny confirmable-request engine on one UDP socket; one exchange at a time. */
export class CoapChannel {
  private readonly sock: Socket;
  private nextMid = randomBytes(2).readUInt16BE(0);
  private waiter: ((p: ParsedPacket) => void) | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.sock = createSocket('udp4');
    this.sock.on('message', (msg) => {
      let p: ParsedPacket;
      try {
        p = parse(msg);
      } catch {
        return; // not CoAP: ignore
      }
      this.waiter?.(p);
    });
    this.sock.on('error', () => {});
  }

  async open(localAddress: string | undefined): Promise<void> {
    await new Promise<void>((resolve) => this.sock.bind({ port: 0, address: localAddress }, () => resolve()));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }

  private send(buf: Buffer): void {
    this.sock.send(buf, this.port, this.host);
  }

  /** GET with retransmission; resolves with the response packet. */
  get(path: string[], block: BlockOption, t: CoapTiming): Promise<Exchange> {
    return this.request({ code: 'GET', path, block }, t);
  }

  /** A confirmable request with retransmission; resolves with the response packet. */
  async request(r: CoapRequest, t: CoapTiming): Promise<Exchange> {
    const mid = (this.nextMid = (this.nextMid + 1) & 0xffff);
    const token = randomBytes(4);
    const block = r.block;
    const options: Array<{ name: 'Uri-Path' | 'Uri-Query' | 'Block2'; value: Buffer }> = r.path.map((seg) => ({ name: 'Uri-Path' as const, value: Buffer.from(seg, 'utf8') }));
    for (const q of r.query ?? []) options.push({ name: 'Uri-Query', value: Buffer.from(q, 'utf8') });
    if (block !== undefined) options.push({ name: 'Block2', value: encodeBlockOption(block) });
    const buf = generate({ code: r.code, confirmable: true, messageId: mid, token, options, payload: r.payload ?? Buffer.alloc(0) });
    return new Promise<Exchange>((resolve, reject) => {
      let acked = false;
      let tries = 0;
      let timer: NodeJS.Timeout | undefined;
      let timeout = t.ackTimeoutMs * (1 + 0.5 * t.random()); // ACK_RANDOM_FACTOR 1.5
      const finish = (err: Error | undefined, ex?: Exchange): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        t.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(ex!);
      };
      const onAbort = (): void => finish(new DownloadError('ABORTED', 'download aborted', false, { cause: t.signal?.reason }));
      const arm = (): void => {
        timer = setTimeout(() => {
          if (acked) return finish(new DownloadError('NETWORK', 'separate response never came', true));
          if (tries >= t.maxRetransmit) return finish(new DownloadError('NETWORK', `no answer for ${block === undefined ? r.path.join('/') : `block ${block.num}`} after ${tries + 1} transmissions`, true));
          tries++;
          timeout *= 2;
          this.send(buf);
          arm();
        }, acked ? t.responseTimeoutMs : timeout);
      };
      this.waiter = (p) => {
        if (p.reset && p.messageId === mid) return finish(new DownloadError('PROTOCOL', 'server reset the exchange'));
        if (p.ack && p.messageId === mid && p.code === '0.00') {
          // Empty ACK: the response will come separately.
          acked = true;
          clearTimeout(timer);
          return arm();
        }
        const piggy = p.ack && p.messageId === mid;
        const separate = !p.ack && p.token.equals(token);
        if (!piggy && !separate) return;
        if (separate && p.confirmable) this.send(generate({ code: '0.00', ack: true, messageId: p.messageId }));
        finish(undefined, { packet: p });
      };
      if (t.signal?.aborted) return onAbort();
      t.signal?.addEventListener('abort', onAbort, { once: true });
      this.send(buf);
      arm();
    });
  }
}

function optionValue(p: ParsedPacket, name: string): Buffer | undefined {
  return p.options.find((o) => o.name === name)?.value;
}

export async function coapDownload(opts: CoapDownloadOptions): Promise<DownloadResult> {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new DownloadError('BAD_URL', `not a URL: ${opts.url}`);
  }
  if (url.protocol !== 'coap:') throw new DownloadError('BAD_URL', `unsupported scheme ${url.protocol}`);
  const host = url.hostname;
  const port = url.port === '' ? 5683 : Number(url.port);
  const path = url.pathname.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
  const size = opts.expectedSize;
  const expected = checkTarget(size, opts.expectedDigest, opts.hash);
  let blockSize = opts.blockSize ?? 1024;
  encodeBlockOption({ num: 0, more: false, size: blockSize }); // validates the size
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? defaultSleep;
  const retries = opts.retries ?? 5;
  const timing = {
    ackTimeoutMs: opts.ackTimeoutMs ?? 2000,
    maxRetransmit: opts.maxRetransmit ?? 4,
    responseTimeoutMs: opts.responseTimeoutMs ?? 10_000,
    random,
    signal: opts.signal,
  };

  const resume = await resumePoint(opts.state, opts.hash, size, expected);
  const hasher = resume.hasher;
  let offset = resume.offset;
  let etag = resume.etag;
  const resumedFrom = offset;
  // Resume on a block boundary: halve the block size until it divides the offset.
  while (offset % blockSize !== 0 && blockSize > 16) blockSize /= 2;
  if (offset % blockSize !== 0) {
    hasher.init();
    offset = 0;
  }

  const checkpoint = (): DownloadCheckpoint => {
    const cp: DownloadCheckpoint = { algorithm: opts.hash, offset, totalSize: size, expectedDigest: expected, hashState: hasher!.save() };
    if (etag !== undefined) cp.etag = etag;
    return cp;
  };
  const fail = (e: DownloadError): never => {
    e.checkpoint = checkpoint();
    throw e;
  };

  const channel = new CoapChannel(host, port);
  await channel.open(host.startsWith('127.') || host === 'localhost' ? '127.0.0.1' : undefined);
  let attempts = 0;
  let bytesReceived = 0;
  let failures = 0;
  try {
    while (offset < size) {
      const num = offset / blockSize;
      attempts++;
      let p: ParsedPacket;
      try {
        ({ packet: p } = await channel.get(path, { num, more: false, size: blockSize }, timing));
      } catch (e) {
        const err = e instanceof DownloadError ? e : new DownloadError('NETWORK', String(e), true, { cause: e });
        if (!err.retryable) fail(err);
        if (++failures > retries) fail(new DownloadError('RETRIES_EXHAUSTED', `gave up at block ${num}: ${err.message}`, false, { cause: err }));
        try {
          await sleep(backoffDelay(failures, opts.backoff, random), opts.signal);
        } catch (s) {
          fail(new DownloadError('ABORTED', 'download aborted', false, { cause: s }));
        }
        continue;
      }
      if (p.code !== TYPE_CODE_CONTENT) {
        const retryable = p.code.startsWith('5.');
        const err = new DownloadError('COAP_STATUS', `CoAP ${p.code} for block ${num}`, retryable);
        if (!retryable || ++failures > retries) fail(err);
        await sleep(backoffDelay(failures, opts.backoff, random), opts.signal).catch((s: unknown) => fail(new DownloadError('ABORTED', 'download aborted', false, { cause: s })));
        continue;
      }
      const rawBlock = optionValue(p, 'Block2');
      if (rawBlock === undefined) {
        // A server may send the whole (small) representation at once.
        if (offset !== 0 || p.payload.length !== size) fail(new DownloadError('PROTOCOL', 'response without Block2 in a block-wise transfer'));
      }
      const b = rawBlock === undefined ? { num: 0, more: false, size: Math.max(16, p.payload.length) } : blockOf(rawBlock);
      const at = b.num * b.size;
      if (at !== offset) fail(new DownloadError('PROTOCOL', `server sent block at ${at}, wanted ${offset}`));
      if (b.more ? p.payload.length !== b.size : p.payload.length > b.size) fail(new DownloadError('PROTOCOL', `block ${b.num} has ${p.payload.length} bytes`));
      if (offset + p.payload.length > size || (!b.more && offset + p.payload.length !== size)) {
        fail(new DownloadError('SIZE_MISMATCH', `server representation does not have ${size} bytes`));
      }
      const tag = optionValue(p, 'ETag')?.toString('hex');
      if (tag !== undefined && etag !== undefined && tag !== etag) {
        // The file changed under us: start over from block 0.
        etag = tag;
        hasher.init();
        offset = 0;
        failures++;
        continue;
      }
      if (tag !== undefined) etag = tag;
      bytesReceived += p.payload.length;
      blockSize = b.size; // follow a server that prefers smaller blocks
      try {
        await opts.sink(offset, p.payload);
      } catch (e) {
        fail(new DownloadError('SINK_FAILED', `sink write at ${offset} failed: ${(e as Error).message}`, false, { cause: e }));
      }
      hasher.update(p.payload);
      offset += p.payload.length;
      failures = 0;
      await opts.onCheckpoint?.(checkpoint());
    }
  } finally {
    await channel.close();
  }
  const digest = hasher.digest('hex');
  if (digest !== expected) throw new DownloadError('DIGEST_MISMATCH', `${opts.hash} ${digest} != expected ${expected}`);
  return { size, digest, attempts, resumedFrom, bytesReceived };
}
