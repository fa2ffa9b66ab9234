// Packages over CoAP block-wise transfer (RFC 7959, Block2): the `coap` package's server
// (messaging, piggybacked ACKs, duplicate detection) answering each Block2 request with just
// that block. Paths that hold no package go to the cloud's OTA notice handler.

import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer as createCoapServer, OutgoingMessage, type IncomingMessage } from 'coap';
import { decodeBlockOption, encodeBlockOption, type BlockOption } from '../protocol/coap.js';

export interface CoapFileServerOptions {
  host?: string;
  port?: number;
  /** Files by path, e.g. { '/fw/1.1.0.bin': bytes }. */
  files?: Record<string, Uint8Array>;
  /** Requests for paths that hold no file go here (the cloud's OTA notices); without it they get 4.04. */
  onRequest?: (req: IncomingMessage, res: OutgoingMessage) => void;
}

export interface CoapFileServerHandle {
  url: string;
  port: number;
  setFile(path: string, bytes: Uint8Array): void;
  removeFile(path: string): void;
  /** Requests in arrival order (retransmissions answered from the dedup cache are not seen). */
  readonly requests: ReadonlyArray<{ path: string; block?: BlockOption }>;
  close(): Promise<void>;
}

const MAX_BLOCK = 1024;

interface ServedFile {
  bytes: Buffer;
  /** Strong ETag: first 8 bytes of the SHA-256 (the CoAP ETag option holds at most 8). */
  etag: Buffer;
}

const servedFile = (b: Uint8Array): ServedFile => {
  // A view, not a copy: the cloud serves one package to many devices from one buffer.
  const bytes = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { bytes, etag: createHash('sha256').update(bytes).digest().subarray(0, 8) };
};

export async function startCoapFileServer(opts: CoapFileServerOptions = {}): Promise<CoapFileServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const files = new Map<string, ServedFile>();
  for (const [p, b] of Object.entries(opts.files ?? {})) files.set(p, servedFile(b));
  const requests: Array<{ path: string; block?: BlockOption }> = [];
  const server = createCoapServer({ type: 'udp4' }, (req: IncomingMessage, res: OutgoingMessage) => {
    const path = (req.url ?? '/').split('?')[0];
    const raw = req._packet.options?.find((o) => o.name === 'Block2')?.value;
    const entry: { path: string; block?: BlockOption } = { path };
    requests.push(entry);
    try {
      if (raw instanceof Buffer) entry.block = decodeBlockOption(raw);
    } catch {
      res.code = '4.02';
      return void res.end();
    }
    if (opts.onRequest !== undefined && !files.has(path)) return opts.onRequest(req, res);
    if (req.method !== 'GET') {
      res.code = '4.05';
      return void res.end();
    }
    const file = files.get(path);
    if (file === undefined) {
      res.code = '4.04';
      return void res.end();
    }
    const want = entry.block ?? (file.bytes.length > MAX_BLOCK ? { num: 0, more: false, size: MAX_BLOCK } : undefined);
    if (want === undefined) return void res.end(file.bytes);
    const size = Math.min(want.size, MAX_BLOCK);
    const last = Math.max(0, Math.ceil(file.bytes.length / size) - 1);
    if (want.num > last) {
      res.code = '4.02'; // RFC 7959 §2.4: a block beyond the end is a bad option
      return void res.end();
    }
    res.setOption('Block2', encodeBlockOption({ num: want.num, more: want.num < last, size }));
    res.setOption('ETag', file.etag);
    res.setOption('Size2', file.bytes.length);
    // We frame the block ourselves and send through the base class: the coap
    // package's own block-wise end() recomputes its ETag over the whole file
    // and caches it per token, i.e. O(file) work and a timer for every block.
    OutgoingMessage.prototype.end.call(res, file.bytes.subarray(want.num * size, (want.num + 1) * size));
  });
  const sock = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port ?? 0, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  await new Promise<void>((resolve) => server.listen(sock, () => resolve()));
  const port = sock.address().port;
  let closing: Promise<void> | undefined;
  return {
    url: `coap://${host}:${port}`,
    port,
    requests,
    setFile: (p, b) => void files.set(p, servedFile(b)),
    removeFile: (p) => void files.delete(p),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close();
        sock.close(() => resolve());
      });
      return closing;
    },
  };
}
