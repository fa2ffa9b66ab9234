import { packageLength, parseHeader, signatureAlgorithmOf, streamPatcherRamBytes, chunkLength, chunkTransformed, jsEngineBytes } from '@otadiff/patch-apply';
import { readInput } from '../files.js';
import { formatBytes } from '../size-arg.js';
import { describeTransform, transformSummary } from '../transform-summary.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export async function infoCommand(patchPath: string, opts: { json?: boolean }): Promise<void> {
  const pkg = readInput(patchPath, 'PATCH');
  // Limits are a device's business; `info` describes any well-formed package.
  const h = parseHeader(pkg, { maxDictSize: Number.MAX_SAFE_INTEGER, maxSplitSize: Number.MAX_SAFE_INTEGER, maxImageSize: Number.MAX_SAFE_INTEGER });
  const declared = packageLength(h);
  const info = {
    diffVersion: h.diffVersion,
    mode: h.mode,
    splitSize: h.splitSize,
    oldSize: h.oldSize,
    newSize: h.newSize,
    oldSha256: hex(h.oldSha256),
    newSha256: hex(h.newSha256),
    compression: h.mode === 'raw' ? 'stored' : 'lzma',
    lzma: h.lzma,
    firmwareVersion: h.firmwareVersion,
    securityCounter: h.securityCounter,
    allowDowngrade: h.allowDowngrade,
    headerBytes: h.headerLength,
    payloadBytes: h.payloadLength,
    payloadSha256: hex(h.payloadSha256),
    signatureType: h.signatureType,
    signature: signatureAlgorithmOf(h.signatureType),
    signatureBytes: h.signatureLength,
    packageBytes: declared,
    fileBytes: pkg.length,
    ramBytes: streamPatcherRamBytes(h),
    transform: transformSummary(h),
    chunks: h.chunks.map((c, i) => ({
      index: i,
      newOffset: i * h.splitSize,
      newLength: chunkLength(h, i),
      recordOffset: c.recordOffset,
      recordLength: c.recordLength,
      rawLength: c.rawLength,
      crc32: c.crc32.toString(16).padStart(8, '0'),
      transformed: chunkTransformed(h.transform, i),
    })),
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  const lines = [
    `otadiff package, diff_version ${info.diffVersion}, mode ${info.mode}`,
    `  old image     ${info.oldSize} bytes  sha256 ${info.oldSha256}`,
    `  new image     ${info.newSize} bytes  sha256 ${info.newSha256}`,
    `  split size    ${formatBytes(info.splitSize)} (${info.chunks.length} chunks)`,
    h.mode === 'raw'
      ? '  compression   none (full image, stored)'
      : `  compression   LZMA lc=${h.lzma.lc} lp=${h.lzma.lp} pb=${h.lzma.pb}, dictionary ${formatBytes(h.lzma.dictSize)}`,
    `  release       version "${info.firmwareVersion}", security counter ${info.securityCounter}${info.allowDowngrade ? ', downgrade allowed' : ''}`,
    `  transform     ${describeTransform(info.transform, info.chunks.length)}`,
    `  signature     ${info.signature === null ? 'none' : `${info.signature} (${info.signatureBytes} bytes; check it with \`otadiff verify\`)`}`,
    `  package       ${info.packageBytes} bytes (header ${info.headerBytes}, signature ${info.signatureBytes}, records ${info.payloadBytes})`,
    `  patcher RAM   ${formatBytes(info.ramBytes)} (buffers ${formatBytes(info.ramBytes - jsEngineBytes(h))} + ${formatBytes(jsEngineBytes(h))} for the JavaScript engine's objects; a C patcher needs only the buffers)`,
  ];
  if (pkg.length !== declared) lines.push(`  warning: file is ${pkg.length} bytes, header declares ${declared}`);
  lines.push(`  chunk   new offset   length   record off   record len   raw len   crc32${h.transform === null ? '' : '      transform'}`);
  for (const c of info.chunks)
    lines.push(
      `  ${String(c.index).padStart(5)}   ${String(c.newOffset).padStart(10)}   ${String(c.newLength).padStart(6)}   ${String(c.recordOffset).padStart(10)}   ${String(c.recordLength).padStart(10)}   ${String(c.rawLength).padStart(7)}   ${c.crc32}${h.transform === null ? '' : `   ${c.transformed ? h.transform.kind : '-'}`}`,
    );
  process.stdout.write(`${lines.join('\n')}\n`);
}
