/**
 * Flash-area contract for the boot-side restore (NOR-type flash: erase by sector, program by unit).
 *
 * The restore code never touches a device directly: it talks to a `Flash`, a synchronous,
 * byte-addressed device split into erase sectors that need not be equal (a sector map).
 *
 *  - `read(offset, dst, dstOffset = 0, length = dst.length - dstOffset)` copies
 *    `length` bytes starting at `offset` into `dst[dstOffset ..]`. Reads have no side
 *    effects and no alignment requirement.
 *  - `program(offset, data)`: `offset` and `data.length` must be multiples of
 *    `geometry.programUnit` (the smallest unit the device writes: 1 for SPI NOR, 4 on nRF52,
 *    8 on STM32L4 (ECC double-words), 32 on STM32H7). A zero-length program is a legal no-op.
 *    Programming only moves bits away from the erased value (1 -> 0 on 0xFF flash, 0 -> 1 on
 *    0x00 flash). What a program over bytes that are not erased does depends on `onOverwrite`:
 *      'error' (simulator default): throws `FlashError` and changes nothing unless every bit
 *               that changes moves away from the erased value (re-programming the same
 *               value is fine), so code that needs an erase it forgot is caught;
 *      'and':   the device merges like real NOR (AND on 0xFF flash, OR on 0x00 flash);
 *      'program-once': ECC flash (STM32L4/G4/WB/U5/H7): any program of a unit that is not
 *               entirely erased throws (the device's PROGERR), even with the same value.
 *  - `erase(sector)` sets sector `sector` (an index into the map, not an offset) to the
 *    erased value.
 *  - Every call checks bounds and alignment first: negative, non-integer, past-the-end
 *    or misaligned arguments throw `FlashError` before anything is touched.
 *  - Operations are atomic in the simulators unless a `FaultyFlash` cuts the power: then
 *    the operation in flight may be torn (partly applied; on program-once flash a torn unit
 *    is undefined and reads back as anything) and it throws `PowerCutError`; every later
 *    call (reads included) throws `PowerCutError` until the simulated device is rebooted.
 *    Code above this layer must treat PowerCutError as "the CPU stopped here" and never
 *    catch-and-continue.
 *  - Geometry: `sectors` lists runs of equal sectors from offset 0 and covers exactly
 *    `size` bytes; every sector is a positive multiple of `programUnit`, a power of two up
 *    to MAX_PROGRAM_UNIT.
 */

export const DEFAULT_SECTOR_SIZE = 4096;
export const DEFAULT_PROGRAM_UNIT = 1;
/** Largest program unit the restore supports (STM32H7's 256-bit flash word). */
export const MAX_PROGRAM_UNIT = 32;

/** `count` consecutive sectors of `size` bytes. */
export interface SectorRun {
  readonly count: number;
  readonly size: number;
}

/** What an erase leaves: 0xFF on most NOR flash, 0x00 on some parts. */
export type ErasedValue = 0xff | 0x00;

export interface FlashGeometry {
  /** Total size in bytes: the sum of the sector map. */
  readonly size: number;
  /** Erase sectors from offset 0, as runs of equal sizes (adjacent runs differ in size). */
  readonly sectors: readonly SectorRun[];
  /** Program granularity in bytes: 1, 2, 4, 8, 16 or 32 (divides every sector). */
  readonly programUnit: number;
  readonly erasedValue: ErasedValue;
}

/** What makeGeometry accepts: a uniform `sectorSize` (default 4 KiB) or a sector map. */
export interface GeometryInput {
  readonly size: number;
  readonly sectorSize?: number;
  readonly sectors?: readonly SectorRun[];
  readonly programUnit?: number;
  readonly erasedValue?: number;
}

/** What a program does to bytes that are not erased. */
export type OverwriteMode = 'error' | 'and' | 'program-once';
export const OVERWRITE_MODES: readonly OverwriteMode[] = ['error', 'and', 'program-once'];

export interface Flash {
  readonly geometry: FlashGeometry;
  /** How program() treats non-erased bytes; absent means unknown (treat as 'program-once'). */
  readonly onOverwrite?: OverwriteMode;
  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void;
  program(offset: number, data: Uint8Array): void;
  erase(sector: number): void;
}

/** Misuse of the flash API: bounds, alignment, geometry, strict-mode overwrite, PROGERR. */
export class FlashError extends Error {
  override name = 'FlashError';
}

/** The simulated power was cut during (or before) this operation. */
export class PowerCutError extends Error {
  override name = 'PowerCutError';
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function isNonNegInt(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Merges adjacent runs of the same size and drops empty ones (one spelling per map). */
function normaliseRuns(runs: readonly SectorRun[]): SectorRun[] {
  const out: SectorRun[] = [];
  for (const r of runs) {
    if (r.count === 0) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.size === r.size) out[out.length - 1] = { count: last.count + r.count, size: r.size };
    else out.push({ count: r.count, size: r.size });
  }
  return out;
}

/** Fills in defaults and validates; throws FlashError on an impossible geometry. */
export function makeGeometry(g: GeometryInput): FlashGeometry {
  if (g.sectors !== undefined && g.sectorSize !== undefined) throw new FlashError('give a sector size or a sector map, not both');
  if (g.sectors !== undefined && !Array.isArray(g.sectors)) throw new FlashError('the sector map must be a list of runs');
  const runs =
    g.sectors !== undefined
      ? g.sectors.map((r) => ({ count: r?.count, size: r?.size }) as SectorRun)
      : [{ count: g.size / (g.sectorSize ?? DEFAULT_SECTOR_SIZE), size: g.sectorSize ?? DEFAULT_SECTOR_SIZE }];
  for (const r of runs) {
    if (!isNonNegInt(r.count) || !Number.isSafeInteger(r.size) || r.size <= 0) {
      if (g.sectors === undefined) throw new FlashError(`size must be a positive multiple of the sector size (${g.sectorSize ?? DEFAULT_SECTOR_SIZE}), got ${g.size}`);
      throw new FlashError(`sector map: a run needs a whole count and a positive size, got ${JSON.stringify(r)}`);
    }
  }
  const geometry: FlashGeometry = {
    size: g.size,
    sectors: Object.freeze(normaliseRuns(runs).map((r) => Object.freeze(r))),
    programUnit: g.programUnit ?? DEFAULT_PROGRAM_UNIT,
    erasedValue: (g.erasedValue ?? 0xff) as ErasedValue,
  };
  validateGeometry(geometry);
  return Object.freeze(geometry);
}

export function validateGeometry(g: FlashGeometry): void {
  if (!isPowerOfTwo(g.programUnit) || g.programUnit > MAX_PROGRAM_UNIT) {
    throw new FlashError(`programUnit must be a power of two <= ${MAX_PROGRAM_UNIT}, got ${g.programUnit}`);
  }
  if (g.erasedValue !== 0xff && g.erasedValue !== 0x00) throw new FlashError(`erasedValue must be 0xFF or 0x00, got ${String(g.erasedValue)}`);
  if (!Array.isArray(g.sectors) || g.sectors.length === 0) throw new FlashError('the sector map is empty');
  let total = 0;
  for (const r of g.sectors) {
    if (!Number.isSafeInteger(r.count) || r.count <= 0 || !Number.isSafeInteger(r.size) || r.size <= 0)
      throw new FlashError(`sector map: bad run ${JSON.stringify(r)}`);
    if (r.size % g.programUnit !== 0) throw new FlashError(`sector size ${r.size} is not a multiple of the program unit ${g.programUnit}`);
    total += r.count * r.size;
    if (!Number.isSafeInteger(total)) throw new FlashError('the sector map is too large');
  }
  if (!Number.isSafeInteger(g.size) || g.size <= 0 || total !== g.size) {
    throw new FlashError(`size must equal the sector map's ${total} bytes, got ${g.size}`);
  }
}

export function sectorCount(g: FlashGeometry): number {
  let n = 0;
  for (const r of g.sectors) n += r.count;
  return n;
}

/** Start offset of sector `s` (0 <= s <= sectorCount: sectorCount gives the size). */
export function sectorStart(g: FlashGeometry, s: number): number {
  let base = 0;
  let first = 0;
  for (const r of g.sectors) {
    if (s < first + r.count) return base + (s - first) * r.size;
    base += r.count * r.size;
    first += r.count;
  }
  return base;
}

export function sectorLength(g: FlashGeometry, s: number): number {
  let first = 0;
  for (const r of g.sectors) {
    if (s < first + r.count) return r.size;
    first += r.count;
  }
  throw new FlashError(`sector ${s} is outside 0..${first - 1}`);
}

/** Index of the sector holding byte `offset` (0 <= offset < size). */
export function sectorAt(g: FlashGeometry, offset: number): number {
  let base = 0;
  let first = 0;
  for (const r of g.sectors) {
    const end = base + r.count * r.size;
    if (offset < end) return first + Math.floor((offset - base) / r.size);
    base = end;
    first += r.count;
  }
  throw new FlashError(`offset ${offset} is outside the ${g.size}-byte flash`);
}

/** True when `offset` is where a sector starts, or the end of the flash. */
export function isSectorBoundary(g: FlashGeometry, offset: number): boolean {
  if (!isNonNegInt(offset) || offset > g.size) return false;
  if (offset === g.size) return true;
  return sectorStart(g, sectorAt(g, offset)) === offset;
}

/** The first sector boundary at or after `offset` (offset <= size). */
export function sectorCeil(g: FlashGeometry, offset: number): number {
  if (offset >= g.size) return g.size;
  const s = sectorAt(g, offset);
  const start = sectorStart(g, s);
  return start === offset ? offset : start + sectorLength(g, s);
}

/** The sector size when every sector is the same, else null. */
export function uniformSectorSize(g: FlashGeometry): number | null {
  return g.sectors.length === 1 ? g.sectors[0].size : null;
}

export function largestSector(g: FlashGeometry): number {
  return Math.max(...g.sectors.map((r) => r.size));
}

export function smallestSector(g: FlashGeometry): number {
  return Math.min(...g.sectors.map((r) => r.size));
}

/** The sector map of [offset, offset+size), both ends on sector boundaries. */
export function subGeometry(g: FlashGeometry, offset: number, size: number): FlashGeometry {
  if (!isSectorBoundary(g, offset) || !isSectorBoundary(g, offset + size) || size <= 0) {
    throw new FlashError(`[${offset}, +${size}) does not start and end on sector boundaries of the flash`);
  }
  const runs: SectorRun[] = [];
  let base = 0;
  for (const r of g.sectors) {
    const runEnd = base + r.count * r.size;
    const lo = Math.max(base, offset);
    const hi = Math.min(runEnd, offset + size);
    if (lo < hi) runs.push({ count: (hi - lo) / r.size, size: r.size });
    base = runEnd;
  }
  return makeGeometry({ size, sectors: runs, programUnit: g.programUnit, erasedValue: g.erasedValue });
}

/** Same map, unit and erased value. */
export function sameGeometry(a: FlashGeometry, b: FlashGeometry): boolean {
  return (
    a.size === b.size &&
    a.programUnit === b.programUnit &&
    a.erasedValue === b.erasedValue &&
    a.sectors.length === b.sectors.length &&
    a.sectors.every((r, i) => r.count === b.sectors[i].count && r.size === b.sectors[i].size)
  );
}

/** A short description of a sector map: "4x16K, 64K, 7x128K". */
export function describeSectors(g: Pick<FlashGeometry, 'sectors'>): string {
  const k = (n: number) => (n % 1024 === 0 ? `${n / 1024}K` : `${n}`);
  return g.sectors.map((r) => (r.count === 1 ? k(r.size) : `${r.count}x${k(r.size)}`)).join(', ');
}

/** Throws unless [offset, offset+length) lies inside the device. */
export function checkRange(g: FlashGeometry, offset: number, length: number, op: string): void {
  if (!isNonNegInt(offset)) throw new FlashError(`${op}: offset must be a non-negative integer, got ${offset}`);
  if (!isNonNegInt(length)) throw new FlashError(`${op}: length must be a non-negative integer, got ${length}`);
  if (offset > g.size || length > g.size - offset) {
    throw new FlashError(`${op}: range [${offset}, ${offset + length}) is outside the flash (size ${g.size})`);
  }
}

/** Validates a read and returns the effective length. */
export function checkRead(
  g: FlashGeometry,
  offset: number,
  dst: Uint8Array,
  dstOffset: number | undefined,
  length: number | undefined,
): number {
  const dOff = dstOffset ?? 0;
  if (!isNonNegInt(dOff) || dOff > dst.length) {
    throw new FlashError(`read: dstOffset ${dOff} is outside the destination (length ${dst.length})`);
  }
  const len = length ?? dst.length - dOff;
  if (!isNonNegInt(len) || len > dst.length - dOff) {
    throw new FlashError(`read: length ${len} does not fit the destination at ${dOff} (length ${dst.length})`);
  }
  checkRange(g, offset, len, 'read');
  return len;
}

export function checkProgram(g: FlashGeometry, offset: number, length: number): void {
  checkRange(g, offset, length, 'program');
  if (offset % g.programUnit !== 0 || length % g.programUnit !== 0) {
    throw new FlashError(
      `program: offset ${offset} and length ${length} must be multiples of the program unit ${g.programUnit}`,
    );
  }
}

export function checkSector(g: FlashGeometry, sector: number): void {
  const n = sectorCount(g);
  if (!isNonNegInt(sector) || sector >= n) {
    throw new FlashError(`erase: sector ${sector} is outside 0..${n - 1}`);
  }
}

/**
 * Programs `data` into `target` (the current contents of the programmed range, starting at flash
 * offset `offset`, a unit boundary) the way `mode` says; nothing changes when it throws.
 */
export function programInto(target: Uint8Array, data: Uint8Array, mode: OverwriteMode, offset: number, g: Pick<FlashGeometry, 'programUnit' | 'erasedValue'>): void {
  const n = data.length;
  const ones = g.erasedValue === 0xff;
  if (mode === 'program-once') {
    const unit = g.programUnit;
    for (let u = 0; u < n; u += unit) {
      for (let i = u; i < u + unit; i++) {
        if (target[i] !== g.erasedValue) throw new FlashError(`program: the ${unit}-byte unit at ${offset + u} is not erased (PROGERR)`);
      }
    }
    target.set(data);
    return;
  }
  if (mode === 'error') {
    for (let i = 0; i < n; i++) {
      const merged = ones ? target[i] & data[i] : target[i] | data[i];
      if (merged !== data[i]) {
        throw new FlashError(
          `program: byte at ${offset + i} is 0x${hex2(target[i])}, cannot program 0x${hex2(data[i])} without an erase`,
        );
      }
    }
  }
  if (ones) for (let i = 0; i < n; i++) target[i] &= data[i];
  else for (let i = 0; i < n; i++) target[i] |= data[i];
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}

export function readBytes(flash: Flash, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  flash.read(offset, out, 0, length);
  return out;
}

/** Erases every sector of [offset, offset+length); both ends must be sector boundaries. */
export function eraseRange(flash: Flash, offset: number, length: number): void {
  const g = flash.geometry;
  checkRange(g, offset, length, 'eraseRange');
  if (!isSectorBoundary(g, offset) || !isSectorBoundary(g, offset + length)) {
    throw new FlashError(`eraseRange: [${offset}, ${offset + length}) does not start and end on sector boundaries (${describeSectors(g)})`);
  }
  if (length === 0) return;
  const first = sectorAt(g, offset);
  const end = offset + length === g.size ? sectorCount(g) : sectorAt(g, offset + length);
  for (let s = first; s < end; s++) flash.erase(s);
}

/** True when every byte of the range reads as the erased value (uses a small bounded buffer). */
export function isErased(flash: Flash, offset: number, length: number): boolean {
  checkRange(flash.geometry, offset, length, 'isErased');
  const erased = flash.geometry.erasedValue;
  const buf = new Uint8Array(Math.min(length, 1024));
  for (let pos = 0; pos < length; pos += buf.length) {
    const n = Math.min(buf.length, length - pos);
    flash.read(offset + pos, buf, 0, n);
    for (let i = 0; i < n; i++) if (buf[i] !== erased) return false;
  }
  return true;
}

/** `data` padded with the erased value to a whole number of program units. */
export function padToUnit(data: Uint8Array, g: Pick<FlashGeometry, 'programUnit' | 'erasedValue'>): Uint8Array {
  const len = roundUp(data.length, g.programUnit);
  if (len === data.length) return data;
  const out = new Uint8Array(len).fill(g.erasedValue);
  out.set(data);
  return out;
}

export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}
