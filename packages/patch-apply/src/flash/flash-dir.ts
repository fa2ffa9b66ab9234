// A simulated device's flash on a host: DIR/flash.bin (the raw flash image) + DIR/layout.json (its partitions,
// sector map, program unit, erased value and overwrite mode). Used by `otadiff restore`, `otadiff flash …` and the
// Linux-host device of the OTA service.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFlash } from './file-flash.js';
import { makeGeometry, OVERWRITE_MODES, type FlashGeometry, type OverwriteMode, type SectorRun } from './flash.js';
import { LayoutError, validateLayout, type Partition, type PartitionLayout } from './partition-layout.js';

export const FLASH_FILE = 'flash.bin';
export const LAYOUT_FILE = 'layout.json';

/** How the simulated device behaves beyond its geometry. */
export interface FlashDirDevice {
  /** What a program over bytes that are not erased does (default 'error', the strict simulator). */
  readonly overwrite: OverwriteMode;
  /** The profile it was made from (flash/profiles.ts), if any: for diagnostics. */
  readonly profile?: string;
}

export interface FlashDir {
  readonly dir: string;
  readonly flash: FileFlash;
  readonly layout: PartitionLayout;
  readonly device: FlashDirDevice;
  close(): void;
}

function partitionFrom(v: unknown, name: string): Partition {
  const p = v as Partial<Partition> | null;
  if (typeof p !== 'object' || p === null || typeof p.offset !== 'number' || typeof p.size !== 'number')
    throw new LayoutError(`layout: partition '${name}' is missing or malformed`);
  return { name, offset: p.offset, size: p.size };
}

interface FlashJson {
  size?: unknown;
  sectorSize?: unknown;
  sectors?: unknown;
  programUnit?: unknown;
  erasedValue?: unknown;
  overwrite?: unknown;
  profile?: unknown;
}

/** The flash geometry of a layout.json: a uniform `sectorSize` (older files) or a `sectors` map. */
function geometryFrom(g: FlashJson): FlashGeometry {
  if (typeof g.size !== 'number' || typeof g.programUnit !== 'number') throw new LayoutError('layout: flash geometry is missing or malformed');
  const uniform = typeof g.sectorSize === 'number';
  if (uniform === (g.sectors !== undefined)) throw new LayoutError('layout: the flash needs a sectorSize or a sectors map (one of them)');
  if (!uniform && (!Array.isArray(g.sectors) || g.sectors.length > 4096)) throw new LayoutError('layout: flash sectors must be a list of runs');
  if (g.erasedValue !== undefined && g.erasedValue !== 255 && g.erasedValue !== 0) throw new LayoutError('layout: flash erasedValue must be 255 or 0');
  try {
    return makeGeometry({
      size: g.size,
      ...(uniform ? { sectorSize: g.sectorSize as number } : { sectors: (g.sectors as SectorRun[]).map((r) => ({ count: r?.count, size: r?.size })) }),
      programUnit: g.programUnit,
      erasedValue: (g.erasedValue as number | undefined) ?? 0xff,
    });
  } catch (e) {
    throw new LayoutError(`layout: ${(e as Error).message}`);
  }
}

/** Parses an untrusted layout.json; every field is checked by validateLayout. */
export function parseLayoutJson(text: string): PartitionLayout {
  return parseFlashDirJson(text).layout;
}

function parseFlashDirJson(text: string): { layout: PartitionLayout; device: FlashDirDevice } {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new LayoutError('layout: not valid JSON');
  }
  const g = raw?.flash as FlashJson | undefined;
  if (typeof g !== 'object' || g === null) throw new LayoutError('layout: flash geometry is missing or malformed');
  const flash = geometryFrom(g);
  if (g.overwrite !== undefined && !(OVERWRITE_MODES as readonly unknown[]).includes(g.overwrite))
    throw new LayoutError(`layout: flash overwrite must be one of ${OVERWRITE_MODES.join(', ')}`);
  if (g.profile !== undefined && (typeof g.profile !== 'string' || g.profile.length > 64)) throw new LayoutError('layout: flash profile must be a short name');
  const layout: PartitionLayout = {
    flash,
    appA: partitionFrom(raw.appA, 'appA'),
    ...(raw.appB !== undefined ? { appB: partitionFrom(raw.appB, 'appB') } : {}),
    ota: partitionFrom(raw.ota, 'ota'),
    params: partitionFrom(raw.params, 'params'),
    backup: partitionFrom(raw.backup, 'backup'),
  };
  validateLayout(layout);
  const device: FlashDirDevice = { overwrite: (g.overwrite as OverwriteMode | undefined) ?? 'error', ...(typeof g.profile === 'string' ? { profile: g.profile } : {}) };
  return { layout, device };
}

/** Creates DIR with an erased flash image for `layout` (refuses to overwrite an existing one). */
export function createFlashDir(dir: string, layout: PartitionLayout, device: Partial<FlashDirDevice> = {}): FlashDir {
  validateLayout(layout);
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, FLASH_FILE)) || existsSync(join(dir, LAYOUT_FILE))) throw new LayoutError(`${dir} already holds a flash image`);
  const json = { ...layout, flash: { ...layout.flash, overwrite: device.overwrite ?? 'error', ...(device.profile !== undefined ? { profile: device.profile } : {}) } };
  const tmp = join(dir, `${LAYOUT_FILE}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(json, null, 2)}\n`);
  renameSync(tmp, join(dir, LAYOUT_FILE));
  return openFlashDir(dir);
}

export function openFlashDir(dir: string): FlashDir {
  const layoutPath = join(dir, LAYOUT_FILE);
  if (!existsSync(layoutPath)) throw new LayoutError(`${dir} has no ${LAYOUT_FILE} (create it with \`otadiff flash init\`)`);
  const { layout, device } = parseFlashDirJson(readFileSync(layoutPath, 'utf8'));
  const flash = FileFlash.open(join(dir, FLASH_FILE), layout.flash, { onOverwrite: device.overwrite });
  return { dir, flash, layout, device, close: () => flash.close() };
}
