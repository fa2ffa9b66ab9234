import { applyPackage, runPowercut, type TearMode } from '@otadiff/patch-apply';
import { readInput } from '../files.js';
import { Progress } from '../progress.js';
import { CliError, formatBytes, parseSize } from '../size-arg.js';

export interface PowercutCliOptions {
  sectorSize: string;
  programUnit: string;
  sample?: string;
  seed: string;
  tear: string;
  json?: boolean;
}

const TEARS = ['random', 'prefix', 'bits', 'none'] as const;

function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new CliError(`${what} must be a non-negative integer, not "${text}"`);
  return Number(text);
}

export async function powercutCommand(oldPath: string, patchPath: string, opts: PowercutCliOptions): Promise<boolean> {
  const tear = opts.tear as TearMode;
  if (!(TEARS as readonly string[]).includes(tear)) throw new CliError(`--tear must be one of ${TEARS.join(', ')}`);
  const sectorSize = parseSize(opts.sectorSize);
  const programUnit = parseSize(opts.programUnit);
  const sample = opts.sample === undefined ? undefined : parseCount(opts.sample, '--sample');
  const seed = parseCount(opts.seed, '--seed');
  const old = readInput(oldPath, 'OLD');
  const pkg = readInput(patchPath, 'PATCH');
  // NEW is what the package restores in memory; this also refuses a bad package before simulating.
  const neu = applyPackage(old, pkg).image;
  const progress = new Progress(!opts.json);
  let report;
  try {
    report = runPowercut(old, neu, pkg, {
      sectorSize,
      programUnit,
      sample,
      seed,
      tear,
      onCut: (done, total) => progress.update(`power cut ${done}/${total}`),
    });
  } catch (e) {
    if (e instanceof RangeError || (e as Error).name === 'FlashError' || (e as Error).name === 'LayoutError') throw new CliError((e as Error).message);
    throw e;
  } finally {
    progress.done();
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    const w = report.wear;
    process.stdout.write(
      [
        `${report.mode} restore: ${report.operations} flash operations (program + erase) in a clean run`,
        `  cuts ${report.cuts} (${report.doubleCuts} with a second cut during the resume), tear ${tear}`,
        `  recovered ${report.recovered}, failed ${report.failed}`,
        `  wear of one update: ${w.erases} erases (at most ${w.maxErasesPerSector} on one sector), ${w.programs} programs, ${formatBytes(w.bytesProgrammed)} programmed`,
        `  restore RAM ${formatBytes(report.ramBytes)} of buffers (what a bootloader in C allocates)`,
        ...report.failures.slice(0, 10).map((f) => `  FAILED at op ${f.op}: ${f.detail}`),
      ].join('\n') + '\n',
    );
  }
  return report.failed === 0;
}
