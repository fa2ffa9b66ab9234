// `otadiff demo`: the README's story in one command, on loopback (see ota-core's demo.ts):
// a signing key pair made on the spot, a signed diff, a device that trusts only its public key.
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isValidVersion, runOtaDemo } from '@otadiff/ota-core';
import { readInput } from '../files.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';
import { stdout, type Out } from './run-until.js';

export interface DemoCliOptions {
  old?: string;
  new?: string;
  oldVersion?: string;
  newVersion?: string;
  mode?: string;
  splitSize?: string;
  drop?: boolean;
  powerCut?: boolean;
  keep?: string;
  json?: boolean;
}

// src/commands/demo.ts and dist/commands/demo.js both sit four levels below the repo root.
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const DEFAULT_OLD = `${repoRoot}corpus/esp8266-at/at-v3.0.4.bin`;
export const DEFAULT_NEW = `${repoRoot}corpus/esp8266-at/at-v3.0.5.bin`;

/** "at-v3.0.4.bin" -> "3.0.4"; undefined when the name carries no version. */
export function versionFromName(path: string): string | undefined {
  const m = /v?(\d+(?:\.\d+)+(?:-[0-9A-Za-z.]+)?)/.exec(basename(path).replace(/\.bin$/i, ''));
  return m && isValidVersion(m[1]) ? m[1] : undefined;
}

export async function demoCommand(opts: DemoCliOptions, out: Out = stdout): Promise<void> {
  const oldPath = opts.old ?? DEFAULT_OLD;
  const newPath = opts.new ?? DEFAULT_NEW;
  const mode = opts.mode ?? 'inplace';
  if (mode !== 'inplace' && mode !== 'ab') throw new CliError(`--mode must be inplace or ab, not "${mode}"`);
  const oldImage = readInput(oldPath, 'OLD');
  const newImage = readInput(newPath, 'NEW');
  let oldVersion = opts.oldVersion ?? versionFromName(oldPath) ?? '1.0.0';
  let newVersion = opts.newVersion ?? versionFromName(newPath) ?? '2.0.0';
  for (const v of [oldVersion, newVersion]) if (!isValidVersion(v)) throw new CliError(`invalid version "${v}"`);
  if (oldVersion === newVersion) [oldVersion, newVersion] = ['1.0.0', '2.0.0'];
  if (!opts.json) out(`otadiff demo: ${basename(oldPath)} (${oldVersion}) -> ${basename(newPath)} (${newVersion}), ${mode}, signed packages, loopback only\n`);
  const summary = await runOtaDemo({
    oldImage,
    newImage,
    oldVersion,
    newVersion,
    mode,
    splitSize: opts.splitSize === undefined ? undefined : parseSize(opts.splitSize),
    dropDownload: opts.drop !== false,
    powerCut: opts.powerCut !== false,
    workDir: opts.keep,
    log: opts.json ? undefined : out,
  });
  if (opts.json) out(JSON.stringify(summary));
  else if (summary.ok) {
    out(
      `\nOK in ${summary.seconds.toFixed(1)} s: ${oldVersion} -> ${newVersion} as a ${formatBytes(summary.packageBytes)} diff signed with ${summary.signature ?? 'no key'}; ` +
        `${formatBytes(summary.bytesSent)} sent instead of ${formatBytes(summary.fullImageBytes)} (${(summary.fullImageBytes / Math.max(1, summary.bytesSent)).toFixed(1)}x less); ` +
        `security counter recorded on the device: ${summary.recordedCounter ?? '?'}`,
    );
  }
  if (!summary.ok) throw new CliError(`demo failed: ${summary.failures.join('; ')}`);
}
