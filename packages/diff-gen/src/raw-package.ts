// NEW alone -> an OTA_RAW package: the full image stored chunk by chunk behind the same signed header
// as a diff, so the device checks a full image exactly as it checks a delta.
import { applyPackage, chunkCountFor, nodeCrc32, nodeSha256, STORED_PARAMS, trustCheck, type ChunkEntry } from '@otadiff/patch-apply';
import { GenerateError, releaseInfo, DEFAULT_SPLIT_SIZE, type GenerateResult, type ReleaseOptions } from './generate.js';
import { assemblePackage, trustedKeyOf } from './sign-package.js';
import { parseHeader, SPLIT_ALIGN, MAX_SPLIT_SIZE } from '@otadiff/patch-apply';

export interface RawPackageOptions extends ReleaseOptions {
  /** Chunk size of the chunk table's CRCs (default 64 KiB). */
  splitSize?: number;
}

export function packRaw(image: Uint8Array, options: RawPackageOptions = {}): GenerateResult {
  const S = options.splitSize ?? DEFAULT_SPLIT_SIZE;
  if (!Number.isInteger(S) || S < SPLIT_ALIGN || S % SPLIT_ALIGN !== 0 || S > MAX_SPLIT_SIZE)
    throw new GenerateError(`split size ${S} must be a multiple of ${SPLIT_ALIGN} between ${SPLIT_ALIGN} and ${MAX_SPLIT_SIZE}`);
  if (image.length === 0) throw new GenerateError('an OTA_RAW image cannot be empty');
  if (image.length > 0xffff_0000) throw new GenerateError('images larger than 4 GiB are not supported');
  const release = releaseInfo(options);
  const chunks: ChunkEntry[] = [];
  for (let i = 0; i < chunkCountFor(image.length, S); i++) {
    const chunk = image.subarray(i * S, Math.min(image.length, (i + 1) * S));
    chunks.push({ recordOffset: i * S, recordLength: chunk.length, rawLength: chunk.length, crc32: nodeCrc32(chunk) });
  }
  const sha = nodeSha256();
  sha.update(image);
  const imageSha = sha.digest();
  const pkg = assemblePackage(
    {
      mode: 'raw',
      splitSize: S,
      oldSize: 0,
      newSize: image.length,
      oldSha256: new Uint8Array(32),
      newSha256: imageSha,
      lzma: STORED_PARAMS,
      signatureType: 0,
      signatureLength: 0,
      payloadSha256: imageSha,
      ...release,
      chunks,
    },
    [image],
    options.signingKey,
  );
  // Prove it, as for a diff: the patcher must give back the image (and accept the signature).
  const trust = options.signingKey === undefined ? undefined : trustCheck({ keys: [trustedKeyOf(options.signingKey)] });
  const back = applyPackage(new Uint8Array(0), pkg, { sha256: nodeSha256, crc32: nodeCrc32, trust }).image;
  if (Buffer.compare(back, image) !== 0) throw new GenerateError('internal error: the raw package does not restore the image');
  return { package: pkg, header: parseHeader(pkg) };
}
