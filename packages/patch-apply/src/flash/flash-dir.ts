// A simulated device's flash on a host: DIR/flash.bin (the raw NOR image) + DIR/layout.json (its partitions).
// Used by `otadiff restore`, `otadiff flash …` and the Linux-host device of the OTA service.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFlash } from './file-flash.js';
import { makeGeometry } from './flash.js';
import { LayoutError, validateLayout, type Partition, type PartitionLayout } from './partition-layout.js';

export const FLASH_FILE = 'flash.bin';
export const LAYOUT_FILE = 'layout.json';

export interface FlashDir {
  readonly dir: string;
  readonly flash: FileFlash;
  readonly layout: PartitionLayout;
  close(): void;
}

function partitionFrom(v: unknown, name: string): Partition {
  const p = v as Partial<Partition> | null;
  if (typeof p !== 'object' || p === null || typeof p.offset !== 'number' || typeof p.size !== 'number')
    throw new LayoutError(`layout: partition '${name}' is missing or malformed`);
  return { name, offset: p.offset, size: p.size };
}

/** Parses an untrusted layout.json; every field is checked by validateLayout. */
export function parseLayoutJson(text: string): PartitionLayout {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new LayoutError('layout: not valid JSON');
  }
  const g = raw.flash as { size?: unknown; sectorSize?: unknown; programUnit?: unknown } | undefined;
  if (typeof g !== 'object' || g === null || typeof g.size !== 'number' || typeof g.sectorSize !== 'number' || typeof g.programUnit !== 'number')
    throw new LayoutError('layout: flash geometry is missing or malformed');
  let flash;
  try {
    flash = makeGeometry({ size: g.size, sectorSize: g.sectorSize, programUnit: g.programUnit });
  } catch (e) {
    throw new LayoutError(`layout: ${(e as Error).message}`);
  }
  const layout: PartitionLayout = {
    flash,
    appA: partitionFrom(raw.appA, 'appA'),
    ...(raw.appB !== undefined ? { appB: partitionFrom(raw.appB, 'appB') } : {}),
    ota: partitionFrom(raw.ota, 'ota'),
    params: partitionFrom(raw.params, 'params'),
    backup: partitionFrom(raw.backup, 'backup'),
  };
  validateLayout(layout);
  return layout;
}

/** Creates DIR with an erased flash image for `layout` (refuses to overwrite an existing one). */
export function createFlashDir(dir: string, layout: PartitionLayout): FlashDir {
  validateLayout(layout);
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, FLASH_FILE)) || existsSync(join(dir, LAYOUT_FILE))) throw new LayoutError(`${dir} already holds a flash image`);
  const tmp = join(dir, `${LAYOUT_FILE}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(layout, null, 2)}\n`);
  renameSync(tmp, join(dir, LAYOUT_FILE));
  return openFlashDir(dir);
}

export function openFlashDir(dir: string): FlashDir {
  const layoutPath = join(dir, LAYOUT_FILE);
  if (!existsSync(layoutPath)) throw new LayoutError(`${dir} has no ${LAYOUT_FILE} (create it with \`otadiff flash init\`)`);
  const layout = parseLayoutJson(readFileSync(layoutPath, 'utf8'));
  const flash = FileFlash.open(join(dir, FLASH_FILE), layout.flash);
  return { dir, flash, layout, close: () => flash.close() };
}
