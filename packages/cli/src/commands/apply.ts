import type { ApplyOptions as PatchOptions } from '@otadiff/patch-apply/host-apply';
import { readInputLater, writeOutputAtomic } from '../files.js';
import { Progress } from '../progress.js';
import { formatBytes, parseSize } from '../size-arg.js';

export interface ApplyOptions {
  output: string;
  maxDict?: string;
  /** Refuse the package unless one of these public keys verifies its signature. */
  pubkey?: string[];
  json?: boolean;
}

export async function applyCommand(oldPath: string, patchPath: string, opts: ApplyOptions): Promise<void> {
  // The files are read on the thread pool while the patcher's modules load here (a cold start is most
  // of an apply). Each read settles to a CliError, which counts after a bad --pubkey, OLD before PATCH.
  const reads = [readInputLater(oldPath, 'OLD'), readInputLater(patchPath, 'PATCH')];
  for (const r of reads) r.catch(() => {}); // awaited below, unless --pubkey fails first
  const { applyPackage, DEFAULT_LIMITS, nodeCrc32, nodeSha256, streamPatcherRamBytes } = await import('@otadiff/patch-apply/host-apply');
  const trust = opts.pubkey === undefined || opts.pubkey.length === 0 ? undefined : await trustOf(opts.pubkey);
  const oldImage = await reads[0];
  const pkg = await reads[1];
  const limits = opts.maxDict === undefined ? DEFAULT_LIMITS : { ...DEFAULT_LIMITS, maxDictSize: parseSize(opts.maxDict) };
  const progress = new Progress(!opts.json);
  const started = performance.now();
  let out;
  try {
    out = applyPackage(oldImage, pkg, { limits, trust, sha256: nodeSha256, crc32: nodeCrc32, consumeOld: true, onChunk: (i, total) => progress.update(`restoring chunk ${i + 1}/${total}`) });
  } finally {
    progress.done();
  }
  writeOutputAtomic(opts.output, out.image);
  const h = out.result.header;
  const summary = {
    output: opts.output,
    newBytes: out.image.length,
    chunks: h.chunkCount,
    mode: h.mode,
    signatureVerified: out.result.verified,
    ramBytes: streamPatcherRamBytes(h),
    seconds: (performance.now() - started) / 1000,
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `${opts.output}: ${formatBytes(summary.newBytes)} restored and verified (SHA-256${summary.signatureVerified ? ', signature' : ''}), ${summary.chunks} chunks, ` +
        `patcher RAM ${formatBytes(summary.ramBytes)}\n`,
    );
}

/** Loaded only with --pubkey: the key parser and the signature libraries are most of a cold start. */
async function trustOf(pubkeys: string[]): Promise<PatchOptions['trust']> {
  const [{ trustCheck }, { loadTrustedKeys }] = await Promise.all([import('@otadiff/patch-apply'), import('../trusted-keys.js')]);
  return trustCheck({ keys: loadTrustedKeys(pubkeys) });
}
