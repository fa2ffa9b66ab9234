import {
  checkProgram,
  checkRead,
  checkSector,
  DEFAULT_PROGRAM_UNIT,
  DEFAULT_SECTOR_SIZE,
  FlashError,
  makeGeometry,
  roundUp,
  validateGeometry,
  type Flash,
  type FlashGeometry,
  type OverwriteMode,
} from './flash.js';

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
 *  - backup: two chunk slots (2 * splitSize bytes): in place, a restored chunk waits in one while the
 *    next chunk is decoded, and is then copied over its region. It has
 *    no header: the journal's 'backed-up' entry records the chunk index and the CRC-32
 *    of the backed-up bytes, which is all a header would say.
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
  const ss = l.flash.sectorSize;
  const parts = partitionsOf(l);
  for (const p of parts) {
    const what = `partition '${p.name}'`;
    if (!Number.isSafeInteger(p.offset) || p.offset < 0) throw new LayoutError(`${what}: bad offset ${p.offset}`);
    if (!Number.isSafeInteger(p.size) || p.size <= 0) throw new LayoutError(`${what}: bad size ${p.size}`);
    if (p.offset % ss !== 0 || p.size % ss !== 0) {
      throw new LayoutError(`${what}: [${p.offset}, +${p.size}) is not aligned to sectors of ${ss}`);
    }
    if (p.offset + p.size > l.flash.size) {
      throw new LayoutError(`${what}: ends at ${p.offset + p.size}, past the flash end ${l.flash.size}`);
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
  if (l.params.size < PARAMS_MIN_SECTORS * ss) {
    throw new LayoutError(`partition '${l.params.name}' needs at least ${PARAMS_MIN_SECTORS} sectors`);
  }
}

export interface DefaultLayoutOptions {
  appSize: number;
  otaSize: number;
  /** Largest chunk size of an in-place restore; the backup partition holds two chunks. */
  splitSize: number;
  sectorSize?: number;
  programUnit?: number;
  /** Two app slots (A/B) instead of in-place. */
  ab?: boolean;
}

/** Packs appA, [appB], ota, params, backup back to back from offset 0. */
export function defaultLayout(opts: DefaultLayoutOptions): PartitionLayout {
  const ss = opts.sectorSize ?? DEFAULT_SECTOR_SIZE;
  const pu = opts.programUnit ?? DEFAULT_PROGRAM_UNIT;
  for (const [k, v] of [
    ['appSize', opts.appSize],
    ['otaSize', opts.otaSize],
    ['splitSize', opts.splitSize],
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new LayoutError(`${k} must be a positive integer, got ${v}`);
  }
  let cursor = 0;
  const take = (name: string, bytes: number): Partition => {
    const p = { name, offset: cursor, size: roundUp(bytes, ss) };
    cursor += p.size;
    return p;
  };
  const appA = take('appA', opts.appSize);
  const appB = opts.ab === true ? take('appB', opts.appSize) : undefined;
  const ota = take('ota', opts.otaSize);
  const params = take('params', PARAMS_MIN_SECTORS * ss);
  // A/B never rewrites a slot it runs from: one chunk is enough there (the OTA_RAW copy unit).
  const backup = take('backup', opts.ab ? opts.splitSize : 2 * opts.splitSize);
  let flash: FlashGeometry;
  try {
    flash = makeGeometry({ size: cursor, sectorSize: ss, programUnit: pu });
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
    if (offset % g.sectorSize !== 0 || size % g.sectorSize !== 0) {
      throw new FlashError(`partition '${name}' is not aligned to sectors of ${g.sectorSize}`);
    }
    if (offset + size > g.size) throw new FlashError(`partition '${name}' ends past the flash end ${g.size}`);
    this.geometry = Object.freeze({ size, sectorSize: g.sectorSize, programUnit: g.programUnit });
    this.onOverwrite = base.onOverwrite;
    this.firstSector = offset / g.sectorSize;
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
  if (g.sectorSize !== layout.flash.sectorSize || g.programUnit !== layout.flash.programUnit || g.size < layout.flash.size) {
    throw new LayoutError('the flash geometry does not match the layout');
  }
  return new PartitionView(flash, p);
}
