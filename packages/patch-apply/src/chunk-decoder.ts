// Restores one chunk: LZMA-decodes its record and runs the copy/diff/extra command stream against a source.
// The command stream grammar is in docs/FORMAT.md ("Command stream").
import { crc32, type Crc32 } from './crc32.js';
import { LzmaDecoder, LzmaError, lzmaDecoderRamBytes } from './lzma-decoder.js';
import { PackageError } from './package-error.js';
import { chunkLength, windowBoundary, windowLength, type ChunkEntry, type PackageHeader } from './package-format.js';
import type { SourceReader } from './source-reader.js';
import { labelMapRamBytes } from './transform/label-map.js';
import { PREDICTED_SOURCE_BYTES, PredictedSource } from './transform/predicted-source.js';
import { CODECS, type TransformCodec } from './transform/codecs.js';
import { chunkTransformed } from './transform/transform-section.js';

/** Decompressed command-stream bytes are staged through this buffer (numbers and changed bytes are read from it). */
const STAGE_BYTES = 4096;
/** Record bytes are read (random access) through this much scratch at a time. */
const RECORD_SCRATCH_BYTES = 1024;
/** Fields and varint state of this module and the LZMA decoder's bookkeeping. */
const FIXED_OVERHEAD_BYTES = 512;

const enum Step {
  Seek,
  CopyLen,
  Gap,
  Value,
  ExtraLen,
  Extra,
  Done,
}

export type ChunkHeader = Pick<PackageHeader, 'mode' | 'splitSize' | 'oldSize' | 'newSize' | 'lzma'> & Partial<Pick<PackageHeader, 'transform'>>;

/** RAM the chunk decoder allocates for a package: one chunk buffer + LZMA state + scratch (+ the transform's map and block). */
export function chunkDecoderRamBytes(h: Pick<PackageHeader, 'mode' | 'splitSize' | 'lzma'> & Partial<Pick<PackageHeader, 'transform'>>): number {
  const codec = h.mode === 'raw' ? 0 : lzmaDecoderRamBytes(h.lzma) + STAGE_BYTES;
  const transform = h.transform ? PREDICTED_SOURCE_BYTES + labelMapRamBytes(h.transform.map.starts.length) : 0;
  return h.splitSize + codec + RECORD_SCRATCH_BYTES + FIXED_OVERHEAD_BYTES + transform;
}

/** Reads `length` bytes of a record starting at `offset` (relative to the record). */
export type RecordReader = (offset: number, dst: Uint8Array, dstOffset: number, length: number) => void;

export class ChunkDecoder {
  /** The restored chunk; valid in [0, length) once `complete`. */
  readonly output: Uint8Array;
  /** null for a `raw` package, whose records are the chunk bytes themselves. */
  private readonly lzma: LzmaDecoder | null;
  private readonly stage: Uint8Array;
  private stagePos = 0;
  private stageEnd = 0;
  private readonly scratchIn = new Uint8Array(RECORD_SCRATCH_BYTES);
  /** OLD as the transform predicts NEW, and the transform; null when the package has none. */
  private readonly predicted: PredictedSource | null;
  private readonly codec: TransformCodec | null;
  /** What the current chunk's commands read: `source`, or `predicted` for a transformed chunk. */
  private src: SourceReader;
  private transformed = false;
  /**
   * Sees every window read of a transformed chunk before the prediction serves it (the restore's read
   * tracking: the source reader itself only sees the prediction's whole-block reads). Set before begin().
   */
  windowTap: ((offset: number, dst: Uint8Array, dstOffset: number, length: number) => void) | null = null;
  private readonly tappedPredicted: SourceReader | null;

  private index = -1;
  private entry: ChunkEntry | null = null;
  private len = 0;
  private window = 0;
  private step = Step.Done;
  private varValue = 0;
  private varShift = 0;
  private remaining = 0;
  private copyLen = 0;
  private srcPos = 0;
  private outPos = 0;
  private rawRead = 0;
  private fed = 0;

  constructor(
    private readonly header: ChunkHeader,
    private readonly source: SourceReader,
    /** CRC-32 implementation (default: pure TypeScript). */
    private readonly crc: Crc32 = crc32,
  ) {
    this.output = new Uint8Array(header.splitSize);
    const stored = header.mode === 'raw';
    this.lzma = stored ? null : new LzmaDecoder(header.lzma);
    this.stage = new Uint8Array(stored ? 0 : STAGE_BYTES);
    const t = header.transform ?? null;
    this.codec = t === null ? null : CODECS[t.kind];
    this.predicted = t === null ? null : new PredictedSource(source, this.codec!, { map: t.map, base: t.base, span: t.span, origin: t.origin }, header.oldSize);
    const predicted = this.predicted;
    this.tappedPredicted =
      predicted === null
        ? null
        : {
            read: (offset, dst, dstOffset, length) => {
              this.windowTap?.(offset, dst, dstOffset, length);
              predicted.read(offset, dst, dstOffset, length);
            },
          };
    this.src = source;
  }

  /** Whether the chunk begun last reads its window through the transform's prediction. */
  get chunkTransformed(): boolean {
    return this.transformed;
  }

  get chunkIndex(): number {
    return this.index;
  }

  get length(): number {
    return this.len;
  }

  /** Bytes of the current record not fed yet. */
  get recordRemaining(): number {
    return this.entry === null ? 0 : this.entry.recordLength - this.fed;
  }

  get complete(): boolean {
    return this.step === Step.Done && this.entry !== null && (this.lzma === null ? this.fed === this.entry.recordLength : this.lzma.done);
  }

  /** Starts chunk `index`; its record must then be fed in order, exactly `entry.recordLength` bytes. */
  begin(index: number, entry: ChunkEntry): void {
    this.index = index;
    this.entry = entry;
    this.len = chunkLength(this.header, index);
    this.window = windowLength(this.header, index);
    this.step = Step.Seek;
    this.varValue = 0;
    this.varShift = 0;
    this.remaining = 0;
    this.copyLen = 0;
    this.srcPos = index * this.header.splitSize;
    if (this.srcPos > this.window) this.srcPos = this.window;
    this.outPos = 0;
    this.rawRead = 0;
    this.stagePos = 0;
    this.stageEnd = 0;
    this.fed = 0;
    this.lzma?.reset(entry.rawLength);
    // A transformed chunk reads OLD through the prediction and is turned back into NEW when complete.
    this.transformed = chunkTransformed(this.header.transform, index);
    if (this.transformed) this.predicted!.reset(windowBoundary(this.header, index));
    this.src = this.transformed ? (this.windowTap === null ? this.predicted! : this.tappedPredicted!) : this.source;
  }

  /**
   * Feeds the next piece of the record and runs as far as it allows. Returns true once the chunk is
   * restored and verified (CRC-32, exact record and command-stream lengths).
   */
  feed(buf: Uint8Array, start: number, end: number): boolean {
    const entry = this.entry;
    if (entry === null) throw new Error('ChunkDecoder.feed before begin');
    if (this.fed + (end - start) > entry.recordLength) throw new Error('ChunkDecoder.feed past the record');
    if (this.lzma === null) return this.feedStored(buf, start, end);
    this.fed += end - start;
    try {
      this.lzma.feed(buf, start, end, this.fed === entry.recordLength);
      this.run();
    } catch (e) {
      // A corrupt LZMA stream is a bad package; anything else (a failing source read, a power cut) is not
      // the package's fault and must reach the caller as it is.
      if (e instanceof LzmaError) throw new PackageError('bad-record', `chunk ${this.index}: ${e.message}`);
      throw e;
    }
    if (this.step !== Step.Done) {
      if (this.fed === entry.recordLength) this.bad('record ends before the chunk is complete');
      return false;
    }
    if (!this.lzma.done) {
      if (this.fed === entry.recordLength) this.bad('compressed stream does not end where the record does');
      return false;
    }
    if (this.lzma.inputConsumed !== entry.recordLength) this.bad('record has trailing bytes after its compressed stream');
    // A separate pass over the finished chunk: the command loop stays the same for every package.
    if (this.transformed) this.codec!.decode(this.output, this.len, this.index * this.header.splitSize);
    this.checkCrc(entry);
    return true;
  }

  /** A `raw` record is the chunk itself (the chunk table guarantees record length = chunk length). */
  private feedStored(buf: Uint8Array, start: number, end: number): boolean {
    const entry = this.entry!;
    if (entry.recordLength !== this.len) this.bad(`a stored record of ${entry.recordLength} bytes for a ${this.len}-byte chunk`);
    this.output.set(buf.subarray(start, end), this.fed);
    this.fed += end - start;
    if (this.fed < entry.recordLength) return false;
    this.step = Step.Done;
    this.checkCrc(entry);
    return true;
  }

  private checkCrc(entry: ChunkEntry): void {
    const crc = this.crc(this.output.subarray(0, this.len)) >>> 0;
    if (crc !== entry.crc32) throw new PackageError('chunk-crc', `chunk ${this.index}: CRC-32 mismatch (got ${hex(crc)}, expected ${hex(entry.crc32)})`);
  }

  /** Random access: restores chunk `index` from a record reader (e.g. the OTA partition on flash). */
  decodeChunk(index: number, entry: ChunkEntry, read: RecordReader): Uint8Array {
    this.begin(index, entry);
    const buf = this.scratchIn;
    let off = 0;
    if (entry.recordLength === 0) this.bad('empty record');
    while (off < entry.recordLength) {
      const n = Math.min(buf.length, entry.recordLength - off);
      read(off, buf, 0, n);
      off += n;
      if (this.feed(buf, 0, n)) break;
    }
    if (!this.complete) this.bad('record ends before the chunk is complete');
    return this.output.subarray(0, this.len);
  }

  private bad(msg: string): never {
    throw new PackageError('bad-record', `chunk ${this.index}: ${msg}`);
  }

  /**
   * Makes the next command-stream byte available in the stage. False when the decoder needs input;
   * `what` names the place for the error when the stream has no bytes left at all.
   */
  private fill(what: string): boolean {
    if (this.stagePos < this.stageEnd) return true;
    const left = this.entry!.rawLength - this.rawRead;
    if (left === 0) this.bad(`command stream ends inside ${what}`);
    const got = this.lzma!.read(this.stage, 0, Math.min(this.stage.length, left));
    if (got === 0) return false;
    this.rawRead += got;
    this.stagePos = 0;
    this.stageEnd = got;
    return true;
  }

  /** Reads a LEB128 number; -1 while it is incomplete and the decoder needs input. */
  private varint(): number {
    for (;;) {
      if (!this.fill('a number')) return -1;
      const b = this.stage[this.stagePos++];
      if (this.varShift === 28 && b > 0x0f) this.bad('number in the command stream exceeds 32 bits');
      // A shift, not `2 ** varShift`: that is a float, and a float stored once makes V8 box every later
      // value of the field (past 2^31 it is a float anyway, but such numbers fail the checks).
      this.varValue += (b & 0x7f) * (1 << this.varShift);
      if (b < 0x80) {
        const v = this.varValue;
        this.varValue = 0;
        this.varShift = 0;
        return v;
      }
      this.varShift += 7;
    }
  }

  private run(): void {
    const out = this.output;
    for (;;) {
      const step = this.step;
      if (step === Step.Value) {
        if (!this.fill('a copy')) return;
        out[this.outPos] = (out[this.outPos] + this.stage[this.stagePos++]) & 0xff;
        this.outPos++;
        this.srcPos++;
        this.remaining--;
        this.step = Step.Gap;
        continue;
      }
      if (step === Step.Extra) {
        if (this.extra()) return;
        continue;
      }
      if (step === Step.Done) return;
      // Every other step starts with a number. One call site for varint (and its fill) keeps the
      // optimised loop small: inlined at four sites it took the optimiser about 40 ms to compile,
      // most of a short-lived process's apply.
      const v = this.varint();
      if (v < 0) return;
      switch (step) {
        case Step.Seek: {
          const seek = v % 2 === 0 ? v / 2 : -(v + 1) / 2; // zigzag
          const pos = this.srcPos + seek;
          if (pos < 0 || pos > this.window) this.bad(`seek to ${pos} leaves the ${this.window}-byte source window`);
          this.srcPos = pos;
          this.step = Step.CopyLen;
          break;
        }
        case Step.CopyLen: {
          if (v > this.len - this.outPos) this.bad(`copy of ${v} bytes overruns the chunk`);
          if (v > 0 && this.srcPos + v > this.window)
            this.bad(`copy [${this.srcPos}, +${v}) reaches past the ${this.window}-byte source window`);
          this.copyLen = v;
          this.remaining = v;
          this.step = v > 0 ? Step.Gap : Step.ExtraLen;
          break;
        }
        case Step.Gap: {
          // Unchanged bytes straight from the source into the chunk, plus the byte the next diff changes.
          if (v > this.remaining) this.bad(`run of ${v} unchanged bytes overruns a ${this.copyLen}-byte copy`);
          const changed = v < this.remaining ? 1 : 0;
          if (v + changed > 0) this.src.read(this.srcPos, out, this.outPos, v + changed);
          this.outPos += v;
          this.srcPos += v;
          this.remaining -= v;
          this.step = changed === 1 ? Step.Value : Step.ExtraLen;
          break;
        }
        case Step.ExtraLen: {
          if (v > this.len - this.outPos) this.bad(`extra of ${v} bytes overruns the chunk`);
          if (v === 0 && this.copyLen === 0) this.bad('empty command (no copy, no extra)');
          this.remaining = v;
          this.step = Step.Extra;
          break;
        }
      }
    }
  }

  /**
   * Copies extra bytes out of the stage; true when the run must stop (the decoder needs input, or the
   * chunk is complete). Through the stage like every other byte: one path, so the optimiser never
   * meets a branch the first chunks left unrun (a direct decoder-to-chunk path for long literal runs,
   * unrun in the first chunks of a package, deoptimised the command loop mid-apply).
   */
  private extra(): boolean {
    const out = this.output;
    while (this.remaining > 0) {
      if (!this.fill('extra bytes')) return true;
      const got = Math.min(this.remaining, this.stageEnd - this.stagePos);
      out.set(this.stage.subarray(this.stagePos, this.stagePos + got), this.outPos);
      this.stagePos += got;
      this.outPos += got;
      this.remaining -= got;
    }
    if (this.outPos === this.len) {
      const extra = this.entry!.rawLength - this.rawRead + (this.stageEnd - this.stagePos);
      if (extra !== 0) this.bad(`command stream has ${extra} bytes past the end of the chunk`);
      this.step = Step.Done;
      // Let the decoder verify the end of its stream (end marker / flushed range coder).
      this.lzma!.read(out, this.outPos, 0);
      return true;
    }
    this.step = Step.Seek;
    return false;
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
