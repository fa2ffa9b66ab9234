import { applyPackage, runPowercut, type DeviceOptions, type TearMode } from '@otadiff/patch-apply';
import { readInput } from '../files.js';
import { parseFlashArgs, type FlashArgs } from '../flash-args.js';
import { Progress } from '../progress.js';
import { CliError, formatBytes } from '../size-arg.js';

export interface PowercutCliOptions extends FlashArgs {
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

function ms(v: number | null): string {
  return v === null ? 'not modelled (custom geometry)' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;
}

export async function powercutCommand(oldPath: string, patchPath: string, opts: PowercutCliOptions): Promise<boolean> {
  const tear = opts.tear as TearMode;
  if (!(TEARS as readonly string[]).includes(tear)) throw new CliError(`--tear must be one of ${TEARS.join(', ')}`);
  const choice = parseFlashArgs(opts);
  const device: DeviceOptions = 'profile' in choice ? { profile: choice.profile, backupSize: choice.backupSize } : choice;
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
      ...device,
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
    const g = report.geometry;
    process.stdout.write(
      [
        `${report.mode} restore on ${report.flash} (sectors ${g.sectors}, ${g.programUnit}-byte unit, erased 0x${g.erasedValue.toString(16).padStart(2, '0').toUpperCase()}, ${g.overwrite}): ${report.operations} flash operations (program + erase) in a clean run`,
        `  cuts ${report.cuts} (${report.doubleCuts} with a second cut during the resume), tear ${tear}`,
        `  recovered ${report.recovered}, failed ${report.failed}`,
        `  wear of one update: ${w.erases} erases, ${w.erasesPerNewSector.toFixed(2)} per sector of NEW (${w.newSectors}), at most ${w.maxErasesPerSector} on one sector; ${w.programs} programs, ${formatBytes(w.bytesProgrammed)} programmed`,
        ...(report.mode === 'inplace' ? [`  sectors already holding NEW: ${w.unchangedSectors}, erased ${w.unchangedSectorErases} times`] : []),
        `  modelled flash time: ${ms(w.restoreMs)}${w.eraseMs === null ? '' : ` (erases ${ms(w.eraseMs)}, programs ${ms(w.programMs)})`}`,
        `  restore RAM ${formatBytes(report.ramBytes)} of buffers (what a bootloader in C allocates)`,
        ...report.failures.slice(0, 10).map((f) => `  FAILED at op ${f.op}: ${f.detail}`),
      ].join('\n') + '\n',
    );
  }
  return report.failed === 0;
}
