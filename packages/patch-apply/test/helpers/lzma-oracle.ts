// Test oracle: raw LZMA1 streams (no header, always ending with an end marker) made by lzma-native.
import lzmaNative from 'lzma-native';

/** The part of lzma-native used here (its published typings omit raw filters and the constants). */
interface LzmaRaw {
  MODE_FAST: number;
  MODE_NORMAL: number;
  MF_HC4: number;
  MF_BT4: number;
  FILTER_LZMA1: string;
  createStream(
    coder: 'rawEncoder' | 'rawDecoder',
    options: { filters: { id: string; options: Record<string, number> }[]; synchronous: boolean },
  ): NodeJS.ReadWriteStream;
}
export const lzmaRaw = lzmaNative as unknown as LzmaRaw;

export interface EncodeParams {
  lc: number;
  lp: number;
  pb: number;
  dictSize: number;
  /** 'normal' = the generator's settings (BT4, nice length 273); 'fast' = lzma-native's defaults. */
  effort?: 'fast' | 'normal';
}

/**
 * The honest option set: camelCase `dictSize` and NO `preset` (lzma-native ignores `dict_size`, and a
 * `preset` overwrites dictSize, lc, lp, pb and the match finder). Proven in lzma-dict-size.test.ts.
 */
export function honestOptions(p: EncodeParams): Record<string, number> {
  const opts: Record<string, number> = { dictSize: p.dictSize, lc: p.lc, lp: p.lp, pb: p.pb };
  if (p.effort === 'normal') {
    Object.assign(opts, { mode: lzmaRaw.MODE_NORMAL, mf: lzmaRaw.MF_BT4, niceLen: 273, depth: 0 });
  }
  return opts;
}

function runCoder(coder: 'rawEncoder' | 'rawDecoder', options: Record<string, number>, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const s = lzmaRaw.createStream(coder, { filters: [{ id: lzmaRaw.FILTER_LZMA1, options }], synchronous: true });
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', reject);
    s.on('end', () => resolve(new Uint8Array(Buffer.concat(parts))));
    s.end(Buffer.from(data.buffer, data.byteOffset, data.length));
  });
}

/** Raw LZMA1 stream of `data` with exactly these parameters. */
export function lzmaNativeEncode(data: Uint8Array, p: EncodeParams): Promise<Uint8Array> {
  return runCoder('rawEncoder', honestOptions(p), data);
}

/** Raw LZMA1 stream with arbitrary lzma-native filter options (to probe how it treats them). */
export function lzmaNativeEncodeWith(data: Uint8Array, options: Record<string, number>): Promise<Uint8Array> {
  return runCoder('rawEncoder', options, data);
}

/** lzma-native's own raw LZMA1 decoder (used to validate the test encoder). */
export function lzmaNativeDecode(stream: Uint8Array, p: EncodeParams): Promise<Uint8Array> {
  return runCoder('rawDecoder', { dictSize: p.dictSize, lc: p.lc, lp: p.lp, pb: p.pb }, stream);
}
