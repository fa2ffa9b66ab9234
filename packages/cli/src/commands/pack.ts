import { packRaw } from '@otadiff/diff-gen';
import { signatureAlgorithmOf } from '@otadiff/patch-apply';
import { writeOutputAtomic } from '../files.js';
import { describeImage, imageJson, readImage } from '../image-input.js';
import { releaseOptions, type ReleaseArgs } from '../release-args.js';
import { formatBytes, parseSize } from '../size-arg.js';

export interface PackOptions extends ReleaseArgs {
  output: string;
  splitSize: string;
  json?: boolean;
}

/** NEW alone -> an OTA_RAW package: the full image behind the same (signed) header as a diff. */
export function packCommand(imagePath: string, opts: PackOptions): void {
  const release = releaseOptions(opts);
  const input = readImage(imagePath, 'IMAGE');
  const image = input.bytes;
  const hexLine = opts.json ? undefined : describeImage('IMAGE', imagePath, input);
  if (hexLine) process.stdout.write(`${hexLine}\n`);
  const { package: pkg, header: h } = packRaw(image, { ...release, splitSize: parseSize(opts.splitSize) });
  writeOutputAtomic(opts.output, pkg);
  const summary = {
    patch: opts.output,
    patchBytes: pkg.length,
    newBytes: image.length,
    chunks: h.chunks.length,
    splitSize: h.splitSize,
    mode: h.mode,
    diffVersion: h.diffVersion,
    firmwareVersion: h.firmwareVersion,
    securityCounter: h.securityCounter,
    signature: signatureAlgorithmOf(h.signatureType),
    hex: imageJson(input),
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `${opts.output}: raw package of ${formatBytes(image.length)} in ${h.chunks.length} chunks, ` +
        `${summary.signature === null ? 'unsigned' : `signed (${summary.signature})`}\n`,
    );
}
