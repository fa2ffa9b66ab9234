import { request, type IncomingHttpHeaders } from 'node:http';

export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  error?: Error;
}

/** One GET/HEAD with a fresh connection; collects the body (or the error that cut it). */
export function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Deterministic pseudo-random bytes. */
export function testBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A sink that records writes and fails the test if any offset is written twice. */
export function recordingSink(size: number) {
  const image = new Uint8Array(size);
  const written = new Uint8Array(size);
  const writes: Array<{ offset: number; length: number }> = [];
  let overlaps = 0;
  const sink = async (offset: number, bytes: Uint8Array): Promise<void> => {
    if (offset < 0 || offset + bytes.length > size) throw new Error(`write ${offset}+${bytes.length} outside image`);
    for (let i = 0; i < bytes.length; i++) if (written[offset + i]++ !== 0) overlaps++;
    image.set(bytes, offset);
    writes.push({ offset, length: bytes.length });
  };
  return {
    sink,
    image,
    writes,
    get overlaps() {
      return overlaps;
    },
    covered: () => written.every((w) => w === 1),
  };
}
