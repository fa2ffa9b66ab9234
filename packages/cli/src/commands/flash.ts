// `otadiff flash …` and `otadiff restore`: a simulated device flash in a directory, for scripts.
import { existsSync } from 'node:fs';
import {
  boot,
  confirmBoot,
  createFlashDir,
  defaultLayout,
  describeSectors,
  FLASH_PROFILES,
  padToUnit,
  uniformPattern,
  openFlashDir,
  FIXED_HEADER_BYTES,
  openPartition,
  parseFixedHeader,
  parseHeader,
  readBytes,
  readHandover,
  stageUpdate,
  type BootOutcome,
  type FlashDir,
} from '@otadiff/patch-apply';
import { parseFlashArgs, type FlashArgs } from '../flash-args.js';
import { loadTrustedKeys } from '../trusted-keys.js';
import { readInput, writeOutputAtomic } from '../files.js';
import { CliError, parseSize } from '../size-arg.js';

function withDir<T>(dir: string, fn: (d: FlashDir) => T): T {
  let d: FlashDir;
  try {
    d = openFlashDir(dir);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  try {
    return fn(d);
  } finally {
    d.close();
  }
}

export interface FlashInitOptions extends FlashArgs {
  image: string;
  ab?: boolean;
  appSize?: string;
  otaSize?: string;
  splitSize: string;
}

export function flashInitCommand(dir: string, opts: FlashInitOptions): void {
  if (existsSync(`${dir}/layout.json`)) throw new CliError(`${dir} already holds a device flash`);
  const choice = parseFlashArgs(opts);
  const image = readInput(opts.image, 'image');
  const appSize = opts.appSize ? parseSize(opts.appSize) : Math.max(image.length * 2, 65536);
  if (image.length > appSize) throw new CliError(`the image (${image.length} bytes) does not fit --app-size ${appSize}`);
  const profile = 'profile' in choice ? choice.profile : null;
  let layout;
  try {
    layout = defaultLayout({
      appSize,
      otaSize: opts.otaSize ? parseSize(opts.otaSize) : appSize,
      splitSize: parseSize(opts.splitSize),
      sectors: profile?.sectors ?? uniformPattern('sectorSize' in choice ? choice.sectorSize : 4096),
      programUnit: profile?.programUnit ?? ('programUnit' in choice ? choice.programUnit : undefined),
      erasedValue: profile?.erasedValue ?? ('erasedValue' in choice ? choice.erasedValue : undefined),
      backupSize: choice.backupSize,
      ab: opts.ab === true,
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const overwrite = profile?.overwrite ?? ('overwrite' in choice ? choice.overwrite : 'error');
  const d = createFlashDir(dir, layout, { overwrite, ...(profile !== null ? { profile: profile.name } : {}) });
  try {
    if (image.length > 0) openPartition(d.flash, layout, 'appA').program(0, padToUnit(image, layout.flash));
  } finally {
    d.close();
  }
  process.stdout.write(
    `${dir}: ${profile?.name ?? 'custom'} flash of ${layout.flash.size} bytes (sectors ${describeSectors(layout.flash)}), ${layout.appB ? 'A/B slots' : 'one slot (in place)'}, image in slot A\n`,
  );
}

/** `otadiff flash profiles`: what --flash accepts. */
export function flashProfilesCommand(opts: { json?: boolean }): void {
  const rows = FLASH_PROFILES.map((p) => ({
    name: p.name,
    part: p.part,
    sectors: describeSectors({ sectors: [...p.sectors.runs, { count: 1, size: p.sectors.then }] }) + ', ...',
    programUnit: p.programUnit,
    erasedValue: p.erasedValue,
    overwrite: p.overwrite,
    eraseMs: p.timing.eraseMs(p.sectors.then),
    programUs: { bytes: p.timing.programPageBytes, us: p.timing.programPageUs },
    endurance: p.endurance,
  }));
  if (opts.json) return void process.stdout.write(`${JSON.stringify({ profiles: rows })}\n`);
  for (const r of rows) {
    process.stdout.write(
      `${r.name.padEnd(11)} ${r.part}\n            sectors ${r.sectors}; ${r.programUnit}-byte program unit; overwrite ${r.overwrite}; erased 0x${r.erasedValue.toString(16).toUpperCase()}; ` +
        `erase ${r.eraseMs} ms (largest sector), program ${r.programUs.us} µs per ${r.programUs.bytes} B; ${r.endurance} cycles\n`,
    );
  }
}

export function flashStageCommand(dir: string, patchPath: string, opts: { raw?: boolean }): void {
  const pkg = readInput(patchPath, 'PATCH');
  withDir(dir, (d) => {
    const mode = parseHeader(pkg).mode;
    if (opts.raw && mode !== 'raw') throw new CliError(`--raw needs a raw package (\`otadiff pack\`), not ${mode}`);
    let h;
    try {
      h = stageUpdate(d.flash, d.layout, pkg);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    process.stdout.write(`${dir}: ${h.firmwareType} update staged for slot ${h.targetSlot} (${pkg.length} bytes); reboot with \`otadiff restore ${dir}\`\n`);
  });
}

export function flashConfirmCommand(dir: string, opts: { slot?: string }): void {
  withDir(dir, (d) => {
    const h = readHandover(openPartition(d.flash, d.layout, 'params'));
    const slot = (opts.slot ?? h?.targetSlot ?? 'A').toUpperCase();
    if (slot !== 'A' && slot !== 'B') throw new CliError('--slot must be A or B');
    confirmBoot(d.flash, d.layout, slot);
    process.stdout.write(`${dir}: slot ${slot} confirmed\n`);
  });
}

export interface RestoreCliOptions {
  output?: string;
  /** The bootloader's trusted public keys: a package none of them signed is refused. */
  pubkey?: string[];
  json?: boolean;
}

function describe(o: BootOutcome): string {
  switch (o.kind) {
    case 'normal':
      return `boot slot ${o.slot} (no update pending)`;
    case 'trial':
      return `boot slot ${o.slot}: new image, trial boot ${o.attempt} (confirm it with \`otadiff flash confirm\`)`;
    case 'old':
      return `boot slot ${o.slot}: old image (${o.reason}: ${o.detail})`;
    case 'halt':
      return `halt: nothing bootable (${o.reason}: ${o.detail})`;
  }
}

/** One boot of the device: the bootloader's restore, then what it boots. Exit 1 on `halt`. */
export function restoreCommand(dir: string, opts: RestoreCliOptions): boolean {
  return withDir(dir, (d) => {
    const trustedKeys = opts.pubkey === undefined || opts.pubkey.length === 0 ? undefined : loadTrustedKeys(opts.pubkey);
    const outcome = boot({ flash: d.flash, layout: d.layout, trustedKeys });
    if (opts.output !== undefined && outcome.kind !== 'halt') {
      const h = readHandover(openPartition(d.flash, d.layout, 'params'));
      const view = openPartition(d.flash, d.layout, outcome.slot === 'A' ? 'appA' : 'appB');
      let length = view.geometry.size;
      if (h !== null && outcome.kind === 'trial') {
        if (h.firmwareType === 'raw') length = h.imageSize;
        else length = parseFixedHeader(readBytes(openPartition(d.flash, d.layout, 'ota'), h.packageOffset, FIXED_HEADER_BYTES)).newSize;
      }
      writeOutputAtomic(opts.output, readBytes(view, 0, length));
    }
    if (opts.json) process.stdout.write(`${JSON.stringify(outcome)}\n`);
    else process.stdout.write(`${describe(outcome)}\n`);
    return outcome.kind !== 'halt';
  });
}
