/**
 * Flash-area contract for the boot-side restore (NOR flash semantics).
 *
 * The restore code never touches a device directly: it talks to a `Flash`, which is
 * a synchronous, byte-addressed NOR device split into equal erase sectors.
 *
 *  - `read(offset, dst, dstOffset = 0, length = dst.length - dstOffset)` copies
 *    `length` bytes starting at `offset` into `dst[dstOffset ..]`. Reads have no side
 *    effects and no alignment requirement.
 *  - `program(offset, data)` can only clear bits (1 -> 0). `offset` and `data.length`
 *    must be multiples of `geometry.programUnit` (the smallest unit the device writes,
 *    1 for SPI NOR, 4/8/16 for most MCU-internal flash). A zero-length program is a
 *    legal no-op. What happens when a byte would need a 0 -> 1 transition depends on
 *    the implementation's `onOverwrite` mode:
 *      'error' (default): the call throws `FlashError` and changes nothing. A program
 *                         is accepted iff `(old & new) === new` for every byte, so
 *                         re-programming the same value or clearing more bits is fine.
 *      'and':             the device ANDs the new value into the old one, like real NOR.
 *  - `erase(sector)` sets the whole sector `sector` (an index, not an offset) to 0xFF.
 *  - Every call checks bounds and alignment first: negative, non-integer, past-the-end
 *    or misaligned arguments throw `FlashError` before anything is touched.
 *  - Operations are atomic in the simulators unless a `FaultyFlash` cuts the power: then
 *    the operation in flight may be torn (partly applied) and it throws
 *    `PowerCutError`; every later call (reads included) throws `PowerCutError` until
 *    the simulated device is rebooted. Code above this layer must treat PowerCutError as
 *    "the CPU stopped here" and never catch-and-continue.
 *  - Geometry: `size` is a positive multiple of `sectorSize`, `sectorSize` a positive
 *    multiple of `programUnit`, `programUnit` a power of two.
 */

export const DEFAULT_SECTOR_SIZE = 4096;
export const DEFAULT_PROGRAM_UNIT = 1;
export const ERASED_BYTE = 0xff;

export interface FlashGeometry {
  /** Total size in bytes; a positive multiple of sectorSize. */
  readonly size: number;
  /** Erase granularity in bytes (default 4096). */
  readonly sectorSize: number;
  /** Program granularity in bytes: 1, 2, 4, 8, ... (a power of two dividing sectorSize). */
  readonly programUnit: number;
}

/** What a program does when a byte would need a 0 -> 1 transition. */
export type OverwriteMode = 'error' | 'and';

export interface Flash {
  readonly geometry: FlashGeometry;
  /** How program() treats non-erased bytes; absent means unknown (treat as 'and'). */
  readonly onOverwrite?: OverwriteMode;
  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void;
  program(offset: number, data: Uint8Array): void;
  erase(sector: number): void;
}

/** Misuse of the flash API: bounds, alignment, geometry, strict-mode overwrite. */
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

/** Fills in defaults and validates; throws FlashError on an impossible geometry. */
export function makeGeometry(g: { size: number; sectorSize?: number; programUnit?: number }): FlashGeometry {
  const geometry: FlashGeometry = {
    size: g.size,
    sectorSize: g.sectorSize ?? DEFAULT_SECTOR_SIZE,
    programUnit: g.programUnit ?? DEFAULT_PROGRAM_UNIT,
  };
  validateGeometry(geometry);
  return Object.freeze(geometry);
}

export function validateGeometry(g: FlashGeometry): void {
  if (!isPowerOfTwo(g.programUnit) || g.programUnit > 1 << 16) {
    throw new FlashError(`programUnit must be a power of two <= 65536, got ${g.programUnit}`);
  }
  if (!Number.isSafeInteger(g.sectorSize) || g.sectorSize <= 0 || g.sectorSize % g.programUnit !== 0) {
    throw new FlashError(`sectorSize must be a positive multiple of programUnit (${g.programUnit}), got ${g.sectorSize}`);
  }
  if (!Number.isSafeInteger(g.size) || g.size <= 0 || g.size % g.sectorSize !== 0) {
    throw new FlashError(`size must be a positive multiple of sectorSize (${g.sectorSize}), got ${g.size}`);
  }
}

export function sectorCount(g: FlashGeometry): number {
  return g.size / g.sectorSize;
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
  if (!isNonNegInt(sector) || sector >= g.size / g.sectorSize) {
    throw new FlashError(`erase: sector ${sector} is outside 0..${g.size / g.sectorSize - 1}`);
  }
}

/**
 * NOR merge of `data` into `target` (the current contents of the programmed range).
 * In 'error' mode nothing is changed unless every byte is a legal 1 -> 0 transition.
 */
export function norProgramInto(target: Uint8Array, data: Uint8Array, mode: OverwriteMode, offset: number): void {
  const n = data.length;
  if (mode === 'error') {
    for (let i = 0; i < n; i++) {
      if ((target[i] & data[i]) !== data[i]) {
        throw new FlashError(
          `program: byte at ${offset + i} is 0x${hex2(target[i])}, cannot program 0x${hex2(data[i])} without an erase`,
        );
      }
    }
  }
  for (let i = 0; i < n; i++) target[i] &= data[i];
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}

export function readBytes(flash: Flash, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  flash.read(offset, out, 0, length);
  return out;
}

/** Erases every sector of [offset, offset+length); both ends must be sector aligned. */
export function eraseRange(flash: Flash, offset: number, length: number): void {
  const g = flash.geometry;
  checkRange(g, offset, length, 'eraseRange');
  if (offset % g.sectorSize !== 0 || length % g.sectorSize !== 0) {
    throw new FlashError(`eraseRange: [${offset}, ${offset + length}) is not aligned to sectors of ${g.sectorSize}`);
  }
  const first = offset / g.sectorSize;
  const end = first + length / g.sectorSize;
  for (let s = first; s < end; s++) flash.erase(s);
}

/** True when every byte of the range reads 0xFF (uses a small bounded buffer). */
export function isErased(flash: Flash, offset: number, length: number): boolean {
  checkRange(flash.geometry, offset, length, 'isErased');
  const buf = new Uint8Array(Math.min(length, 1024));
  for (let pos = 0; pos < length; pos += buf.length) {
    const n = Math.min(buf.length, length - pos);
    flash.read(offset + pos, buf, 0, n);
    for (let i = 0; i < n; i++) if (buf[i] !== ERASED_BYTE) return false;
  }
  return true;
}

export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}
