// Each transform kind's three functions, so the patcher and the generator handle every kind alike.
import type { Prediction } from './label-map.js';
import { forEachAddressWord, predictAddressWords } from './address-words.js';
import { checkOffset, forEachThumb2Reference, thumb2Decode, thumb2Encode, thumb2Predict } from './thumb2.js';

export type TransformKind = 'thumb2' | 'xtensa';

export interface TransformCodec {
  /** NEW side, before diffing: in place over whole blocks from a block boundary. */
  encode(buf: Uint8Array, len: number, offset: number): void;
  /** The exact inverse of encode: the patcher's pass over each restored chunk. */
  decode(buf: Uint8Array, len: number, offset: number): void;
  /** OLD side: the bytes as the package predicts NEW has them. */
  predict(buf: Uint8Array, len: number, offset: number, p: Prediction): void;
  /** The references predict rewrites (branch targets and address words, as labels), for the generator. */
  references(buf: Uint8Array, len: number, offset: number, base: number, span: number, branch: (s: number, target: number) => void, word: (w: number, x: number) => void): void;
}

export const CODECS: Readonly<Record<TransformKind, TransformCodec>> = {
  thumb2: { encode: thumb2Encode, decode: thumb2Decode, predict: thumb2Predict, references: forEachThumb2Reference },
  xtensa: {
    // Branches stay as they are: the NEW side is the identity (the offset is still checked).
    encode: (_b, _l, offset) => checkOffset(offset),
    decode: (_b, _l, offset) => checkOffset(offset),
    predict: predictAddressWords,
    references: (buf, len, offset, base, span, _branch, word) => forEachAddressWord(buf, len, offset, base, span, word),
  },
};
