// Each transform kind's functions, so the patcher and the generator handle every kind alike.
import type { Dependence, ReferenceScan } from './block.js';
import type { Prediction } from './label-map.js';
import { forEachThumb2Reference, thumb2Decode, thumb2Dependence, thumb2Encode, thumb2Predict } from './thumb2.js';
import { forEachXtensaReference, xtensaDecode, xtensaDependence, xtensaEncode, xtensaPredict } from './xtensa.js';

export type TransformKind = 'thumb2' | 'xtensa';

export interface TransformCodec {
  /** NEW side, before diffing: in place over whole blocks from a block boundary. */
  encode(buf: Uint8Array, len: number, offset: number): void;
  /** The exact inverse of encode: the patcher's pass over each restored chunk. */
  decode(buf: Uint8Array, len: number, offset: number): void;
  /** OLD side: the bytes as the package predicts NEW has them. */
  predict(buf: Uint8Array, len: number, offset: number, p: Prediction): void;
  /** The references predict rewrites, with their labels (branch targets, address words), for the generator. */
  references: ReferenceScan;
  /** The bytes of OLD that predicted bytes [lo, hi) depend on (for the in-place restore's saves). */
  dependence: Dependence;
}

export const CODECS: Readonly<Record<TransformKind, TransformCodec>> = {
  thumb2: { encode: thumb2Encode, decode: thumb2Decode, predict: thumb2Predict, references: forEachThumb2Reference, dependence: thumb2Dependence },
  xtensa: { encode: xtensaEncode, decode: xtensaDecode, predict: xtensaPredict, references: forEachXtensaReference, dependence: xtensaDependence },
};
