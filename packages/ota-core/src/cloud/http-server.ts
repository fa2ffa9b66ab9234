// Firmware/package file server: single byte ranges (RFC 9110 §14), strong
// ETags from the content's SHA-256 with If-None-Match / If-Match / If-Range,
// and expiring HMAC-signed URLs. Test knobs make it misbehave on purpose:
// ignore Range, cut the connection after n body bytes, or fail with 500.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath, sep } from 'node:path';
import { once } from 'node:events';

export interface FileServerOptions {
  host?: string;
  port?: number;
  /** In-memory files by URL path, e.g. { '/fw/1.1.0.bin': bytes }. */
  files?: Record<string, Uint8Array>;
  /** Directory whose files are served under '/'. */
  root?: string;
  /** HMAC key for signed URLs; with it, every request must carry a valid signature. */
  secret?: string | Uint8Array;
  requireSignedUrls?: boolean;
  /** Clock in ms (for URL expiry). */
  now?: () => number;
  /**
   * A URL bound to a device and job (signUrl's `bind`, as the cloud makes every URL it sends) is served
   * only while this says that download may go on (its job not finished, cancelled or taken over): a
   * leaked URL fetches nothing once its job is over, and names whose it was.
   */
  authorizeBinding?: (binding: UrlBinding) => boolean | Promise<boolean>;
  /** Always answer 200 with the full body, whatever Range says. */
  ignoreRange?: boolean;
  /** Destroy the socket after this many body bytes of a response... */
  dropAfterBytes?: number;
  /** ...for this many responses (default 1; Infinity = every time). */
  dropTimes?: number;
  /** Answer 500 to the first k requests. */
  failFirst?: number;
  /** Serve HTTPS with this PEM key and certificate (chain). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Keep only about the last this many entries of `requests` (default: all; a long-running cloud keeps a bounded log). */
  requestLogLimit?: number;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  status: number;
  bodyBytes: number;
}

export interface FileServerHandle {
  url: string;
  port: number;
  /** Absolute URL for `path`, signed until `expiresAtMs`, for one device and job when `bind` is given. */
  signUrl(path: string, expiresAtMs: number, bind?: UrlBinding): string;
  setFile(path: string, bytes: Uint8Array): void;
  readonly requests: readonly RequestLogEntry[];
  close(): Promise<void>;
}

interface Entity {
  size: number;
  etag: string;
  body(start: number, endInclusive: number): AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

const CHUNK = 64 * 1024;

export function computeEtag(bytes: Uint8Array): string {
  return `"${createHash('sha256').update(bytes).digest('base64url')}"`;
}

function* sliceChunks(bytes: Uint8Array, start: number, endInclusive: number): Iterable<Uint8Array> {
  for (let p = start; p <= endInclusive; p += CHUNK) yield bytes.subarray(p, Math.min(p + CHUNK, endInclusive + 1));
}

export type ByteRange = { start: number; end: number };
export type RangeResult = { kind: 'none' } | { kind: 'range'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * Interpret a Range header for a representation of `size` bytes. Multiple
 * ranges and unknown units are ignored (200), which RFC 9110 allows.
 */
export function parseRangeHeader(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: 'none' };
  const specs = m[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (specs.length !== 1) return specs.length === 0 ? { kind: 'unsatisfiable' } : { kind: 'none' };
  const r = /^([0-9]*)-([0-9]*)$/.exec(specs[0]);
  if (!r || (r[1] === '' && r[2] === '')) return { kind: 'unsatisfiable' };
  // Digit strings beyond 15 chars are larger than any size we serve.
  const num = (s: string): number => (s.length > 15 ? Number.MAX_SAFE_INTEGER : Number(s));
  if (r[1] === '') {
    const suffix = num(r[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const first = num(r[1]);
  const last = r[2] === '' ? size - 1 : Math.min(num(r[2]), size - 1);
  if (r[2] !== '' && num(r[2]) < first) return { kind: 'unsatisfiable' };
  if (first >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start: first, end: last } };
}

const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);

function parseEtagList(header: string): string[] | '*' {
  if (header.trim() === '*') return '*';
  return header.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

/** Weak comparison (If-None-Match). */
function noneMatch(header: string, etag: string): boolean {
  const list = parseEtagList(header);
  return list === '*' || list.some((t) => opaque(t) === etag);
}

/** Strong comparison (If-Match). */
function anyMatchStrong(header: string, etag: string): boolean {
  const list = parseEtagList(header);
  return list === '*' || list.some((t) => t === etag);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Whose a signed URL is: the device (productKey/deviceName) and the job it was sent for. */
export interface UrlBinding {
  device: string;
  job: string;
}

const BINDING_VALUE = /^[A-Za-z0-9_.:@/-]{1,200}$/;

function signature(secret: Buffer, path: string, expires: string, bind?: UrlBinding): string {
  const h = createHmac('sha256', secret).update(`${path}\n${expires}`);
  // A bound URL signs its device and job too (an unbound one keeps its old signature).
  if (bind !== undefined) h.update(`\n${bind.device}\n${bind.job}`);
  return h.digest('base64url');
}

export async function startFileServer(opts: FileServerOptions = {}): Promise<FileServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const now = opts.now ?? Date.now;
  const secret = opts.secret === undefined ? undefined : Buffer.from(opts.secret);
  const requireSigned = opts.requireSignedUrls ?? secret !== undefined;
  if (requireSigned && secret === undefined) throw new Error('requireSignedUrls needs a secret');
  const memFiles = new Map<string, Entity>();
  const diskCache = new Map<string, { key: string; etag: string }>();
  const root = opts.root === undefined ? undefined : resolvePath(opts.root);
  const log: RequestLogEntry[] = [];
  let failuresLeft = opts.failFirst ?? 0;
  let dropsLeft = opts.dropAfterBytes === undefined ? 0 : (opts.dropTimes ?? 1);

  const setFile = (path: string, bytes: Uint8Array): void => {
    const copy = new Uint8Array(bytes);
    memFiles.set(path, { size: copy.length, etag: computeEtag(copy), body: (s, e) => sliceChunks(copy, s, e) });
  };
  for (const [p, b] of Object.entries(opts.files ?? {})) setFile(p, b);

  async function diskEntity(path: string): Promise<Entity | undefined> {
    if (root === undefined) return undefined;
    const full = resolvePath(root, '.' + path);
    if (!full.startsWith(root + sep)) return undefined;
    let st;
    try {
      st = await stat(full);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const key = `${st.size}:${st.mtimeMs}`;
    let cached = diskCache.get(full);
    if (cached?.key !== key) {
      const h = createHash('sha256');
      for await (const chunk of createReadStream(full)) h.update(chunk as Buffer);
      cached = { key, etag: `"${h.digest('base64url')}"` };
      diskCache.set(full, cached);
    }
    return { size: st.size, etag: cached.etag, body: (s, e) => createReadStream(full, { start: s, end: e, highWaterMark: CHUNK }) };
  }

  async function checkSignature(url: URL): Promise<'ok' | 'missing' | 'bad' | 'expired' | 'over'> {
    if (!requireSigned || secret === undefined) return 'ok';
    const expires = url.searchParams.get('expires');
    const sig = url.searchParams.get('signature');
    if (expires === null || sig === null) return 'missing';
    if (!/^[0-9]{1,13}$/.test(expires) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return 'bad';
    const device = url.searchParams.get('device');
    const job = url.searchParams.get('job');
    if ((device === null) !== (job === null)) return 'bad';
    const bind = device === null ? undefined : { device, job: job! };
    if (bind !== undefined && (!BINDING_VALUE.test(bind.device) || !BINDING_VALUE.test(bind.job))) return 'bad';
    const want = Buffer.from(signature(secret, url.pathname, expires, bind));
    if (!timingSafeEqual(want, Buffer.from(sig))) return 'bad';
    if (now() > Number(expires) * 1000) return 'expired';
    // URLs the cloud sends devices are bound; an unbound one (made by a tool) holds until it expires.
    if (opts.authorizeBinding === undefined || bind === undefined) return 'ok';
    return (await opts.authorizeBinding(bind)) ? 'ok' : 'over';
  }

  async function handle(req: IncomingMessage, res: ServerResponse, entry: RequestLogEntry): Promise<void> {
    const send = (status: number, headers: Record<string, string | number> = {}, text?: string): void => {
      entry.status = status;
      res.writeHead(status, { 'Content-Length': text === undefined ? 0 : Buffer.byteLength(text), ...headers });
      res.end(text);
    };
    if (failuresLeft > 0) {
      failuresLeft--;
      return send(500, {}, 'injected failure\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { Allow: 'GET, HEAD' });
    let url: URL;
    let path: string;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
      path = decodeURIComponent(url.pathname);
    } catch {
      return send(400, {}, 'bad request target\n');
    }
    if (path.includes('\0') || path.includes('\\') || path.split('/').includes('..')) return send(400, {}, 'bad path\n');
    const sig = await checkSignature(url);
    if (sig === 'over') return send(403, {}, "this download's job is over for this device\n");
    if (sig !== 'ok') return send(403, {}, `signature ${sig}\n`);
    const entity = memFiles.get(path) ?? (await diskEntity(path));
    if (entity === undefined) return send(404, {}, 'not found\n');

    const common: Record<string, string | number> = {
      ETag: entity.etag,
      'Accept-Ranges': opts.ignoreRange ? 'none' : 'bytes',
      'Content-Type': 'application/octet-stream',
      'Cache-Control': 'no-store',
    };
    const ifMatch = header(req, 'if-match');
    if (ifMatch !== undefined && !anyMatchStrong(ifMatch, entity.etag)) return send(412, common);
    const ifNoneMatch = header(req, 'if-none-match');
    if (ifNoneMatch !== undefined && noneMatch(ifNoneMatch, entity.etag)) {
      entry.status = 304;
      res.writeHead(304, { ETag: entity.etag, 'Cache-Control': 'no-store' });
      return void res.end();
    }

    let start = 0;
    let end = entity.size - 1;
    let status = 200;
    if (req.method === 'GET' && !opts.ignoreRange) {
      const ifRange = header(req, 'if-range');
      // If-Range needs a strong match; a date or a weak tag never matches here.
      const rangeApplies = ifRange === undefined || ifRange.trim() === entity.etag;
      const r = rangeApplies ? parseRangeHeader(header(req, 'range'), entity.size) : { kind: 'none' as const };
      if (r.kind === 'unsatisfiable') return send(416, { ...common, 'Content-Range': `bytes */${entity.size}` });
      if (r.kind === 'range') {
        ({ start, end } = r.range);
        status = 206;
        common['Content-Range'] = `bytes ${start}-${end}/${entity.size}`;
      }
    }
    entry.status = status;
    res.writeHead(status, { ...common, 'Content-Length': end - start + 1 });
    if (req.method === 'HEAD' || end < start) return void res.end();

    let budget = Infinity;
    if (dropsLeft > 0 && opts.dropAfterBytes !== undefined) {
      dropsLeft--;
      budget = opts.dropAfterBytes;
    }
    for await (const chunk of entity.body(start, end)) {
      if (res.destroyed) return;
      if (chunk.length >= budget) {
        const part = chunk.subarray(0, budget);
        entry.bodyBytes += part.length;
        // Let the partial chunk reach the kernel, then cut the connection.
        res.write(part, () => res.socket?.destroy());
        return;
      }
      budget -= chunk.length;
      entry.bodyBytes += chunk.length;
      if (!res.write(chunk)) {
        await Promise.race([once(res, 'drain'), once(res, 'close')]);
      }
    }
    res.end();
  }

  const handler: RequestListener = (req, res) => {
    const entry: RequestLogEntry = { method: req.method ?? '', path: req.url ?? '', status: 0, bodyBytes: 0 };
    const range = header(req, 'range');
    const ifRange = header(req, 'if-range');
    if (range !== undefined) entry.range = range;
    if (ifRange !== undefined) entry.ifRange = ifRange;
    log.push(entry);
    // Trimmed in steps so a busy server does not shift the array on every request.
    if (opts.requestLogLimit !== undefined && log.length >= 2 * opts.requestLogLimit) log.splice(0, log.length - opts.requestLogLimit);
    handle(req, res, entry).catch(() => res.destroy());
  };
  const server = opts.tls === undefined ? createServer(handler) : createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const base = `${opts.tls === undefined ? 'http' : 'https'}://${host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url: base,
    port,
    requests: log,
    setFile,
    signUrl(path, expiresAtMs, bind) {
      if (secret === undefined) throw new Error('server has no secret');
      if (bind !== undefined && (!BINDING_VALUE.test(bind.device) || !BINDING_VALUE.test(bind.job))) throw new Error(`cannot bind a URL to ${bind.device} / ${bind.job}`);
      const expires = String(Math.floor(expiresAtMs / 1000));
      const encoded = new URL(path, base).pathname;
      const who = bind === undefined ? '' : `&device=${encodeURIComponent(bind.device)}&job=${encodeURIComponent(bind.job)}`;
      return `${base}${encoded}?expires=${expires}${who}&signature=${signature(secret, encoded, expires, bind)}`;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
