// Intel HEX (the format firmware is often released in) to a flat image: the device's flash bytes from
// the lowest address on, gaps filled with the erased value. Data far above the image (an nRF UICR at
// 0x10001000, STM32 option bytes) is a separate region of the chip, not part of the image: it is left
// out and reported, never silently merged into a 256 MB image.

export class IntelHexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntelHexError';
  }
}

export interface AddressRange {
  /** First address. */
  start: number;
  /** One past the last address. */
  end: number;
  /** Data bytes the file gives in the range (less than end - start where there are gaps). */
  dataBytes: number;
}

export interface HexImage {
  /** The flat image: bytes [base, base + bytes.length) of the device's address space. */
  bytes: Uint8Array;
  /** Address of bytes[0]: the image's load address. */
  base: number;
  /** The range taken (the image). */
  taken: AddressRange;
  /** Ranges of data left out because they lie more than `maxGap` beyond the image (UICR, option bytes). */
  leftOut: AddressRange[];
  /** The start address record (type 03 or 05), if the file has one. */
  entry?: number;
}

export interface HexLimits {
  /** Refuse an image larger than this (default 256 MiB, the format's largest image). */
  maxImageBytes?: number;
  /** A gap of at least this many bytes ends the image (default 16 MiB). */
  maxGap?: number;
  /** Fill for gaps (default 0xFF, erased NOR flash). */
  fill?: number;
}

interface Run {
  address: number;
  data: Uint8Array;
  line: number;
}

const hexValue = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

/** Every data record of an Intel HEX file, with its absolute address; checks syntax, checksums and the end record. */
function readRecords(text: Uint8Array): { runs: Run[]; entry?: number } {
  const runs: Run[] = [];
  let upper = 0; // extended linear (type 04) or segment (type 02) base
  let entry: number | undefined;
  let line = 0;
  let ended = false;
  let pos = 0;
  const rec = new Uint8Array(5 + 255);
  while (pos < text.length) {
    let end = text.indexOf(0x0a, pos);
    if (end < 0) end = text.length;
    line++;
    let a = pos;
    let b = end;
    pos = end + 1;
    while (a < b && (text[a] === 0x20 || text[a] === 0x09 || text[a] === 0x0d)) a++;
    while (b > a && (text[b - 1] === 0x20 || text[b - 1] === 0x09 || text[b - 1] === 0x0d)) b--;
    if (a === b) continue;
    if (ended) throw new IntelHexError(`line ${line}: data after the end-of-file record`);
    if (text[a] !== 0x3a) throw new IntelHexError(`line ${line}: a record must start with ':'`);
    const digits = b - a - 1;
    if (digits < 10 || digits % 2 !== 0) throw new IntelHexError(`line ${line}: a record has an even number of hex digits, at least 10`);
    const n = digits / 2;
    if (n > rec.length) throw new IntelHexError(`line ${line}: a record holds at most 255 data bytes`);
    for (let i = 0; i < n; i++) {
      const hi = hexValue(text[a + 1 + 2 * i]);
      const lo = hexValue(text[a + 2 + 2 * i]);
      if (hi < 0 || lo < 0) throw new IntelHexError(`line ${line}: not a hex digit`);
      rec[i] = (hi << 4) | lo;
    }
    const len = rec[0];
    if (n !== len + 5) throw new IntelHexError(`line ${line}: byte count ${len} does not match the record's length`);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += rec[i];
    if ((sum & 0xff) !== 0) throw new IntelHexError(`line ${line}: checksum mismatch`);
    const offset = (rec[1] << 8) | rec[2];
    const type = rec[3];
    switch (type) {
      case 0: {
        if (len === 0) break;
        const address = upper + offset;
        if (address + len > 0x1_0000_0000) throw new IntelHexError(`line ${line}: data runs past the 4 GiB address space`);
        runs.push({ address, data: rec.slice(4, 4 + len), line });
        break;
      }
      case 1:
        if (len !== 0) throw new IntelHexError(`line ${line}: the end-of-file record carries no data`);
        ended = true;
        break;
      case 2:
        if (len !== 2) throw new IntelHexError(`line ${line}: an extended segment address record has 2 data bytes`);
        upper = ((rec[4] << 8) | rec[5]) * 16;
        break;
      case 4:
        if (len !== 2) throw new IntelHexError(`line ${line}: an extended linear address record has 2 data bytes`);
        upper = ((rec[4] << 8) | rec[5]) * 0x1_0000;
        break;
      case 3:
      case 5:
        if (len !== 4) throw new IntelHexError(`line ${line}: a start address record has 4 data bytes`);
        entry = type === 5 ? ((rec[4] << 24) | (rec[5] << 16) | (rec[6] << 8) | rec[7]) >>> 0 : ((rec[4] << 8) | rec[5]) * 16 + ((rec[6] << 8) | rec[7]);
        break;
      default:
        throw new IntelHexError(`line ${line}: unknown record type ${type}`);
    }
  }
  if (!ended) throw new IntelHexError('no end-of-file record (:00000001FF): the file is truncated');
  return { runs, entry };
}

/** Parses Intel HEX text into the flat image it describes (see HexImage). */
export function readIntelHex(text: Uint8Array, limits: HexLimits = {}): HexImage {
  const maxImageBytes = limits.maxImageBytes ?? 256 * 1024 * 1024;
  const maxGap = limits.maxGap ?? 16 * 1024 * 1024;
  const fill = limits.fill ?? 0xff;
  const { runs, entry } = readRecords(text);
  if (runs.length === 0) throw new IntelHexError('the file has no data records');
  runs.sort((x, y) => x.address - y.address || x.line - y.line);

  // Regions: runs whose gaps are below maxGap.
  const regions: { start: number; end: number; dataBytes: number; first: number; last: number }[] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i];
    const cur = regions[regions.length - 1];
    if (cur && r.address - cur.end < maxGap) {
      cur.end = Math.max(cur.end, r.address + r.data.length);
      cur.last = i;
    } else {
      regions.push({ start: r.address, end: r.address + r.data.length, dataBytes: 0, first: i, last: i });
    }
  }
  const image = regions[0];
  const size = image.end - image.start;
  if (size > maxImageBytes)
    throw new IntelHexError(`the image 0x${image.start.toString(16)}-0x${image.end.toString(16)} is ${size} bytes, more than ${maxImageBytes}`);
  const bytes = new Uint8Array(size).fill(fill);
  // Records may repeat an address (some tools do) but must then agree byte for byte.
  const written = new Uint8Array(Math.ceil(size / 8));
  for (let i = image.first; i <= image.last; i++) {
    const { address, data, line } = runs[i];
    const at = address - image.start;
    for (let k = 0; k < data.length; k++) {
      const o = at + k;
      const bit = 1 << (o & 7);
      if (written[o >>> 3] & bit) {
        if (bytes[o] !== data[k]) throw new IntelHexError(`line ${line} gives address 0x${(address + k).toString(16)} a byte an earlier record gave another value`);
      } else {
        written[o >>> 3] |= bit;
        bytes[o] = data[k];
        image.dataBytes++;
      }
    }
  }
  for (const g of regions.slice(1)) for (let i = g.first; i <= g.last; i++) g.dataBytes += runs[i].data.length;
  const range = (g: (typeof regions)[number]): AddressRange => ({ start: g.start, end: g.end, dataBytes: g.dataBytes });
  return { bytes, base: image.start, taken: range(image), leftOut: regions.slice(1).map(range), entry };
}

/** "0x00000000-0x0007f2a3 (520,995 bytes)": an address range for a message. */
export function describeRange(r: AddressRange): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
  return `${hex(r.start)}-${hex(r.end - 1)} (${(r.end - r.start).toLocaleString('en-US')} bytes)`;
}
