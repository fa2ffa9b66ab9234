import { generatePackage } from '@otadiff/diff-gen';
import { signatureAlgorithmOf, streamPatcherRamBytes } from '@otadiff/patch-apply';
import { writeOutputAtomic } from '../files.js';
import { describeImage, imageJson, readImage } from '../image-input.js';
import { releaseOptions, type ReleaseArgs } from '../release-args.js';
import { Progress } from '../progress.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';
import { transformOptions, type TransformArgs } from '../transform-args.js';
import { describeTransform, transformSummary } from '../transform-summary.js';

export interface DiffOptions extends ReleaseArgs, TransformArgs {
  output: string;
  mode: string;
  splitSize: string;
  dictSize: string;
  json?: boolean;
}

export async function diffCommand(oldPath: string, newPath: string, opts: DiffOptions): Promise<void> {
  if (opts.mode !== 'inplace' && opts.mode !== 'ab') throw new CliError(`--mode must be inplace or ab, not "${opts.mode}"`);
  const mode: 'inplace' | 'ab' = opts.mode;
  const release = releaseOptions(opts);
  const splitSize = parseSize(opts.splitSize);
  const dictSize = parseSize(opts.dictSize);
  const oldInput = readImage(oldPath, 'OLD');
  const newInput = readImage(newPath, 'NEW');
  const oldImage = oldInput.bytes;
  const newImage = newInput.bytes;
  if (oldInput.hex && newInput.hex && oldInput.hex.base !== newInput.hex.base)
    throw new CliError(`OLD and NEW load at different addresses (0x${oldInput.hex.base.toString(16)} and 0x${newInput.hex.base.toString(16)}): an update replaces the image where it runs`);
  // A HEX file names the image's load address; --base overrides it.
  const transform = transformOptions(opts, (newInput.hex ?? oldInput.hex)?.base);
  if (!opts.json)
    for (const line of [describeImage('OLD', oldPath, oldInput), describeImage('NEW', newPath, newInput)]) if (line) process.stdout.write(`${line}\n`);
  const progress = new Progress(!opts.json);
  const started = performance.now();
  let result;
  try {
    result = await generatePackage(oldImage, newImage, {
      ...release,
      ...transform,
      mode,
      splitSize,
      dictSize,
      onProgress(e) {
        if (e.phase === 'sort') progress.update('sorting sources…');
        else if (e.phase === 'chunk') progress.update(`diffing chunk ${e.done}/${e.total}`);
        else if (e.phase === 'transform') progress.update(`diffing chunk ${e.done}/${e.total} through the transform`);
        else progress.update('verifying the package restores NEW…');
      },
    });
  } finally {
    progress.done();
  }
  writeOutputAtomic(opts.output, result.package);
  const h = result.header;
  const summary = {
    patch: opts.output,
    patchBytes: result.package.length,
    oldBytes: oldImage.length,
    newBytes: newImage.length,
    chunks: h.chunks.length,
    splitSize: h.splitSize,
    dictSize: h.lzma.dictSize,
    mode: h.mode,
    diffVersion: h.diffVersion,
    firmwareVersion: h.firmwareVersion,
    securityCounter: h.securityCounter,
    signature: signatureAlgorithmOf(h.signatureType),
    ratio: newImage.length === 0 ? 0 : result.package.length / newImage.length,
    ramBytes: streamPatcherRamBytes(h),
    transform: transformSummary(h),
    seconds: (performance.now() - started) / 1000,
    oldHex: imageJson(oldInput),
    newHex: imageJson(newInput),
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    process.stdout.write(
      `${opts.output}: ${formatBytes(summary.patchBytes)} (${(summary.ratio * 100).toFixed(2)}% of NEW), ` +
        `${summary.chunks} chunks of ${formatBytes(summary.splitSize)}, ${summary.mode}, ` +
        `dictionary ${formatBytes(summary.dictSize)}, patcher RAM ${formatBytes(summary.ramBytes)}, ` +
        `${summary.signature === null ? 'unsigned' : `signed (${summary.signature})`}, transform ${describeTransform(summary.transform, summary.chunks)}, ${summary.seconds.toFixed(2)} s\n`,
    );
  }
}
