// What both ends of the CoAP transport agree on: the Block2 option (RFC 7959 §2.2) and the shape of
// a session token from the cloud's /auth.

export class BlockOptionError extends Error {
  override name = 'BlockOptionError';
}

export interface BlockOption {
  num: number;
  more: boolean;
  /** Block size in bytes: 16 << szx, szx in 0..6. */
  size: number;
}

/** Encode NUM|M|SZX as the shortest big-endian uint (RFC 7959 §2.2). */
export function encodeBlockOption(b: BlockOption): Buffer<ArrayBuffer> {
  const szx = Math.log2(b.size) - 4;
  if (!Number.isInteger(szx) || szx < 0 || szx > 6) throw new RangeError(`block size ${b.size} is not 16..1024`);
  if (!Number.isInteger(b.num) || b.num < 0 || b.num > 0xfffff) throw new RangeError(`block number ${b.num} out of range`);
  const v = (b.num << 4) | (b.more ? 8 : 0) | szx;
  if (v === 0) return Buffer.alloc(0);
  if (v < 0x100) return Buffer.from([v]);
  if (v < 0x10000) return Buffer.from([v >> 8, v & 0xff]);
  return Buffer.from([v >> 16, (v >> 8) & 0xff, v & 0xff]);
}

export function decodeBlockOption(buf: Uint8Array): BlockOption {
  if (buf.length > 3) throw new BlockOptionError(`Block option of ${buf.length} bytes`);
  let v = 0;
  for (const byte of buf) v = (v << 8) | byte;
  const szx = v & 7;
  if (szx === 7) throw new BlockOptionError('Block option uses reserved SZX 7');
  return { num: v >>> 4, more: (v & 8) !== 0, size: 16 << szx };
}

/** A session token from /auth: 16 random bytes in hex. */
export const SESSION_TOKEN_RE = /^[0-9a-f]{32}$/;
