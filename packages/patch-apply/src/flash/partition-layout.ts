import {
  checkProgram,
  checkRead,
  checkSector,
  DEFAULT_PROGRAM_UNIT,
  DEFAULT_SECTOR_SIZE,
  describeSectors,
  FlashError,
  isSectorBoundary,
  sameGeometry,
  sectorAt,
  sectorCount,
  subGeometry,
  validateGeometry,
  type ErasedValue,
  type Flash,
  type FlashGeometry,
  type OverwriteMode,
} from './flash.js';
import { patternAdvance, patternCeil, patternGeometry, patternLargest, uniformPattern, type SectorPattern } from './sector-pattern.js';


/** A named, sector-aligned window of the flash. */
export interface Partition {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

/**
 * Flash map of a device:
 *  - appA / appB: executable slots. In-place (single slot) devices have no appB and
 *    the restore rewrites appA chunk by chunk, using `backup`; A/B devices write the
 *    inactive slot.
 *  - ota: where the OTA service stores the downloaded package.
 *  - params: bookkeeping, at least PARAMS_MIN_SECTORS sectors:
 *      sectors 0-1  hand-over record, two copies (handover.ts)
 *      sectors 2-3  restore journal, two sectors (journal.ts)
 *    Any further sectors are unused (reserved).
 *  - backup: in place, a ring of sectors where the restore saves the old bytes it will still
 *    read after their sector is erased (restore/backup-ring.ts); its size bounds the wear of
 *    one update (each ring sector is erased about saved bytes / ring size times). A/B and
 *    OTA_RAW restores do not use it.
 */
export interface PartitionLayout {
  readonly flash: FlashGeometry;
  readonly appA: Partition;
  readonly appB?: Partition;
  readonly ota: Partition;
  readonly params: Partition;
  readonly backup: Partition;
}

export const PARAMS_HANDOVER_SECTOR = 0;
export const PARAMS_JOURNAL_SECTOR = 2;
export const PARAMS_MIN_SECTORS = 4;

export class LayoutError extends Error {
  override name = 'LayoutError';
}

function partitionsOf(l: PartitionLayout): Partition[] {
  const list = [l.appA, l.ota, l.params, l.backup];
  if (l.appB !== undefined) list.splice(1, 0, l.appB);
  return list;
}

/** Throws LayoutError unless every partition is aligned, in bounds and disjoint. */
export function validateLayout(l: PartitionLayout): void {
  try {
    validateGeometry(l.flash);
  } catch (e) {
    throw new LayoutError(`bad flash geometry: ${(e as Error).message}`);
  }
  const parts = partitionsOf(l);
  for (const p of parts) {
    const what = `partition '${p.name}'`;
    if (!Number.isSafeInteger(p.offset) || p.offset < 0) throw new LayoutError(`${what}: bad offset ${p.offset}`);
    if (!Number.isSafeInteger(p.size) || p.size <= 0) throw new LayoutError(`${what}: bad size ${p.size}`);
    if (p.offset + p.size > l.flash.size) {
      throw new LayoutError(`${what}: ends at ${p.offset + p.size}, past the flash end ${l.flash.size}`);
    }
    if (!isSectorBoundary(l.flash, p.offset) || !isSectorBoundary(l.flash, p.offset + p.size)) {
      throw new LayoutError(`${what}: [${p.offset}, +${p.size}) does not start and end on sector boundaries (${describeSectors(l.flash)})`);
    }
  }
  for (let i = 0; i < parts.length; i++) {
    for (let j = i + 1; j < parts.length; j++) {
      const a = parts[i];
      const b = parts[j];
      if (a.offset < b.offset + b.size && b.offset < a.offset + a.size) {
        throw new LayoutError(`partitions '${a.name}' and '${b.name}' overlap`);
      }
    }
  }
  if (sectorCount(subGeometry(l.flash, l.params.offset, l.params.size)) < PARAMS_MIN_SECTORS) {
    throw new LayoutError(`partition '${l.params.name}' needs at least ${PARAMS_MIN_SECTORS} sectors`);
  }
}

export interface DefaultLayoutOptions {
  appSize: number;
  otaSize: number;
  /** Largest chunk size of an in-place restore (sizes the default backup ring). */
  splitSize: number;
  /** Uniform sectors of this size (default 4 KiB), unless `sectors` gives a map. */
  sectorSize?: number;
  /** The part's sector map from offset 0 (e.g. a profile's). */
  sectors?: SectorPattern;
  programUnit?: number;
  erasedValue?: ErasedValue;
  /** Two app slots (A/B) instead of in-place. */
  ab?: boolean;
  /** Bytes of the backup ring (in place); default: see defaultBackupBytes. */
  backupSize?: number;
}

/**
 * The default backup ring of an in-place device: a third of the slot, so one update erases each ring
 * sector about three times at most (an update saves at most the old image once), and never less than
 * two groups of sectors and chunks plus eight sectors (record headers and marks, partly filled sectors, one lost to a cut).
 */
export function defaultBackupBytes(appSize: number, splitSize: number, largestSectorBytes: number): number {
  return Math.max(Math.ceil(appSize / 3), 2 * Math.max(splitSize, largestSectorBytes) + 8 * largestSectorBytes);
}

/** Packs appA, [appB], ota, params, backup back to back from offset 0, each on sector boundaries. */
export function defaultLayout(opts: DefaultLayoutOptions): PartitionLayout {
  const pattern = opts.sectors ?? uniformPattern(opts.sectorSize ?? DEFAULT_SECTOR_SIZE);
  if (opts.sectors !== undefined && opts.sectorSize !== undefined) throw new LayoutError('give a sector size or a sector map, not both');
  const pu = opts.programUnit ?? DEFAULT_PROGRAM_UNIT;
  for (const [k, v] of [
    ['appSize', opts.appSize],
    ['otaSize', opts.otaSize],
    ['splitSize', opts.splitSize],
    ...(opts.backupSize !== undefined ? [['backupSize', opts.backupSize] as const] : []),
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new LayoutError(`${k} must be a positive integer, got ${v}`);
  }
  let cursor = 0;
  const place = (name: string, end: number): Partition => {
    const p = { name, offset: cursor, size: end - cursor };
    cursor = end;
    return p;
  };
  let appA: Partition, appB: Partition | undefined, ota: Partition, params: Partition, backup: Partition;
  try {
    const take = (name: string, bytes: number): Partition => place(name, patternCeil(pattern, cursor + bytes));
    appA = take('appA', opts.appSize);
    appB = opts.ab === true ? take('appB', opts.appSize) : undefined;
    ota = take('ota', opts.otaSize);
    params = place('params', patternAdvance(pattern, cursor, PARAMS_MIN_SECTORS));
    // A/B and OTA_RAW restores never use the backup: one sector keeps the layout's shape.
    const backupBytes = opts.ab ? 1 : (opts.backupSize ?? defaultBackupBytes(opts.appSize, opts.splitSize, patternLargest(pattern)));
    backup = take('backup', backupBytes);
  } catch (e) {
    throw new LayoutError(`bad sector map: ${(e as Error).message}`);
  }
  let flash: FlashGeometry;
  try {
    flash = patternGeometry(pattern, cursor, pu, opts.erasedValue ?? 0xff);
  } catch (e) {
    throw new LayoutError(`bad flash geometry: ${(e as Error).message}`);
  }
  const layout: PartitionLayout = appB === undefined ? { flash, appA, ota, params, backup } : { flash, appA, appB, ota, params, backup };
  validateLayout(layout);
  return layout;
}

/**
 * A Flash restricted to one partition: offsets and sector indices are relative to the
 * partition start and bounds-checked against its size, so restore code cannot stray
 * into a neighbouring partition.
 */
export class PartitionView implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode | undefined;
  private readonly firstSector: number;

  constructor(
    readonly base: Flash,
    readonly partition: Partition,
  ) {
    const g = base.geometry;
    const { offset, size, name } = partition;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size <= 0) {
      throw new FlashError(`partition '${name}': bad offset/size ${offset}/${size}`);
    }
    if (offset + size > g.size) throw new FlashError(`partition '${name}' ends past the flash end ${g.size}`);
    if (!isSectorBoundary(g, offset) || !isSectorBoundary(g, offset + size)) {
      throw new FlashError(`partition '${name}' does not start and end on sector boundaries (${describeSectors(g)})`);
    }
    this.geometry = subGeometry(g, offset, size);
    this.onOverwrite = base.onOverwrite;
    this.firstSector = sectorAt(g, offset);
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    const len = checkRead(this.geometry, offset, dst, dstOffset, length);
    this.base.read(this.partition.offset + offset, dst, dstOffset ?? 0, len);
  }

  program(offset: number, data: Uint8Array): void {
    checkProgram(this.geometry, offset, data.length);
    this.base.program(this.partition.offset + offset, data);
  }

  erase(sector: number): void {
    checkSector(this.geometry, sector);
    this.base.erase(this.firstSector + sector);
  }
}

/** The view of a named partition of a layout. */
export function openPartition(
  flash: Flash,
  layout: PartitionLayout,
  which: 'appA' | 'appB' | 'ota' | 'params' | 'backup',
): PartitionView {
  const p = layout[which];
  if (p === undefined) throw new LayoutError(`layout has no '${which}' partition`);
  const g = flash.geometry;
  if (g.size < layout.flash.size || !isSectorBoundary(g, layout.flash.size) || !sameGeometry(subGeometry(g, 0, layout.flash.size), layout.flash)) {
    throw new LayoutError('the flash geometry does not match the layout');
  }
  return new PartitionView(flash, p);
}
