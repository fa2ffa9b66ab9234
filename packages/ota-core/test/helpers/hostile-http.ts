// A raw TCP "HTTP server" on loopback that answers each request however the test
// says, byte for byte: lying headers, cut bodies, bodies that never end.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface HostileRequest {
  method: string;
  path: string;
  /** Lower-case header names. */
  headers: Record<string, string>;
}

export type Responder = (req: HostileRequest, sock: Socket, n: number) => void | Promise<void>;

export interface HostileServer {
  url: string;
  readonly requests: HostileRequest[];
  /** Resolves when every connection so far has closed. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** `HTTP/1.1 <status>` plus headers, ready to write. */
export function head(status: number, headers: Record<string, string | number>): string {
  const reason: Record<number, string> = { 200: 'OK', 206: 'Partial Content', 416: 'Range Not Satisfiable' };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return `HTTP/1.1 ${status} ${reason[status] ?? 'X'}\r\n${lines.join('')}\r\n`;
}

/** Write `bytes`, then destroy the socket once they reached the kernel. */
export function writeThenCut(sock: Socket, bytes: Uint8Array): void {
  sock.write(bytes, () => sock.destroy());
}

/**
 * Keep writing `next()` until the peer goes away; honours back-pressure, so what is
 * in flight stays within the socket buffers. Resolves with the bytes written.
 */
export async function streamUntilClosed(sock: Socket, next: () => Uint8Array): Promise<number> {
  let n = 0;
  while (!sock.destroyed && sock.writable) {
    const chunk = next();
    n += chunk.length;
    if (!sock.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          sock.off('drain', done);
          sock.off('close', done);
          resolve();
        };
        sock.on('drain', done);
        sock.on('close', done);
      });
    }
  }
  return n;
}

/** The bytes `Range: bytes=a-b` (or `bytes=a-`) asks for, clipped to `total`; undefined without a Range. */
export function askedRange(req: HostileRequest, total: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m === null) return undefined;
  return { start: Number(m[1]), end: Math.min(total - 1, m[2] === '' ? total - 1 : Number(m[2])) };
}

/** An honest answer from `file`: 206 with the range asked for (200 with all of it without one), then the connection closed. */
export function answerHonestly(req: HostileRequest, sock: Socket, file: Uint8Array, headers: Record<string, string | number> = {}): void {
  const r = askedRange(req, file.length);
  if (r === undefined) {
    sock.write(head(200, { 'Content-Length': file.length, Connection: 'close', ...headers }));
    sock.end(file);
    return;
  }
  sock.write(head(206, { 'Content-Range': `bytes ${r.start}-${r.end}/${file.length}`, 'Content-Length': r.end - r.start + 1, Connection: 'close', ...headers }));
  sock.end(file.subarray(r.start, r.end + 1));
}

/** One chunk of a chunked body. */
export const chunkFrame = (bytes: Uint8Array): Buffer => Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);

export async function startHostileServer(respond: Responder): Promise<HostileServer> {
  const requests: HostileRequest[] = [];
  const sockets = new Set<Socket>();
  let closedAll: Array<() => void> = [];
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => {
      sockets.delete(sock);
      if (sockets.size === 0) {
        for (const f of closedAll) f();
        closedAll = [];
      }
    });
    let buf = Buffer.alloc(0);
    let busy = false;
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0 || busy) return;
      busy = true; // one request per connection: the responder owns the socket from here
      const [line, ...rest] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const [method, path] = line.split(' ');
      const headers: Record<string, string> = {};
      for (const h of rest) {
        const i = h.indexOf(':');
        if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      const req = { method, path, headers };
      requests.push(req);
      void Promise.resolve(respond(req, sock, requests.length - 1)).catch(() => sock.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/fw.bin`,
    requests,
    idle: () => (sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => closedAll.push(resolve))),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
