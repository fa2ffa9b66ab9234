import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IntelHexError, readIntelHex } from '../src/intel-hex.js';
import { MICROBIT_VARIANTS, MICROBIT_VERSIONS, microbitHex, microbitImage } from '../../../bench/src/corpus.js';

const enc = new TextEncoder();

/** One record, checksum included. */
function record(type: number, offset: number, data: number[]): string {
  const bytes = [data.length, (offset >> 8) & 0xff, offset & 0xff, type, ...data];
  const sum = (-bytes.reduce((a, b) => a + b, 0)) & 0xff;
  return `:${[...bytes, sum].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('')}`;
}

/** A HEX file for `chunks` (address, bytes), with extended linear address records where needed. */
function hexFile(chunks: { address: number; bytes: number[] }[], perRecord = 16): string {
  const lines: string[] = [];
  let upper = -1;
  for (const { address, bytes } of chunks)
    for (let i = 0; i < bytes.length; ) {
      const a = address + i;
      if (a >>> 16 !== upper) {
        upper = a >>> 16;
        lines.push(record(4, 0, [upper >> 8, upper & 0xff]));
      }
      const n = Math.min(perRecord, bytes.length - i, 0x10000 - (a & 0xffff));
      lines.push(record(0, a & 0xffff, bytes.slice(i, i + n)));
      i += n;
    }
  lines.push(record(1, 0, []));
  return `${lines.join('\r\n')}\r\n`;
}

const read = (text: string) => readIntelHex(enc.encode(text));

describe('Intel HEX reader', () => {
  it('flattens records from the lowest address, gaps 0xFF, and reports the range', () => {
    const img = read(hexFile([{ address: 0x08000000, bytes: [1, 2, 3, 4] }, { address: 0x08000010, bytes: [5] }]));
    expect(img.base).toBe(0x08000000);
    expect([...img.bytes]).toEqual([1, 2, 3, 4, ...Array(12).fill(0xff), 5]);
    expect(img.taken).toEqual({ start: 0x08000000, end: 0x08000011, dataBytes: 5 });
    expect(img.leftOut).toEqual([]);
  });

  it('leaves out data far above the image (a UICR, option bytes) and says so', () => {
    const img = read(hexFile([{ address: 0, bytes: [9, 9] }, { address: 0x10001014, bytes: [1, 2, 3, 4] }]));
    expect(img.bytes.length).toBe(2);
    expect(img.leftOut).toEqual([{ start: 0x10001014, end: 0x10001018, dataBytes: 4 }]);
  });

  it('segment addresses (type 02) and start addresses (types 03, 05)', () => {
    const text = [record(2, 0, [0x10, 0x00]), record(0, 4, [7, 8]), record(5, 0, [0x08, 0, 0x01, 0x23]), record(1, 0, [])].join('\n');
    const img = read(text);
    expect(img.base).toBe(0x10004);
    expect([...img.bytes]).toEqual([7, 8]);
    expect(img.entry).toBe(0x08000123);
  });

  it('any set of non-overlapping runs comes back byte for byte', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 70000 }), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 300 }) }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 0xfff00000 }),
        fc.integer({ min: 1, max: 255 }),
        (runs, start, perRecord) => {
          let at = start;
          const chunks = runs.map(({ gap, bytes }) => {
            at += gap;
            const c = { address: at, bytes };
            at += bytes.length;
            return c;
          });
          fc.pre(at <= 0x1_0000_0000);
          const img = read(hexFile(chunks, perRecord));
          expect(img.base).toBe(chunks[0].address);
          for (const c of chunks) expect([...img.bytes.subarray(c.address - img.base, c.address - img.base + c.bytes.length)]).toEqual(c.bytes);
          expect(img.bytes.length).toBe(at - img.base);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('repeated records must agree', () => {
    const same = [record(0, 0, [1, 2]), record(0, 1, [2, 3]), record(1, 0, [])].join('\n');
    expect([...read(same).bytes]).toEqual([1, 2, 3]);
    const clash = [record(0, 0, [1, 2]), record(0, 1, [9]), record(1, 0, [])].join('\n');
    expect(() => read(clash)).toThrow(/line 2 gives address 0x1/);
  });

  it.each([
    ['no end record', record(0, 0, [1]), /no end-of-file record/],
    ['a bad checksum', ':0100000001FF\n:00000001FF', /line 1: checksum mismatch/],
    ['a wrong byte count', ':0200000001FD\n:00000001FF', /line 1: byte count 2/],
    ['an over-long record', `:FF000000${'00'.repeat(300)}00\n:00000001FF`, /at most 255 data bytes/],
    ['a non-hex digit', ':01000000G1FE\n:00000001FF', /not a hex digit/],
    ['a line without a colon', '0100000001FE\n:00000001FF', /must start with ':'/],
    ['an odd number of digits', ':0100000001F\n:00000001FF', /even number of hex digits/],
    ['an unknown record type', `${record(7, 0, [])}\n:00000001FF`, /unknown record type 7/],
    ['data after the end', `:00000001FF\n${record(0, 0, [1])}`, /after the end-of-file record/],
    ['no data at all', ':00000001FF', /no data records/],
    ['a bad extended address record', `${record(4, 0, [1])}\n:00000001FF`, /2 data bytes/],
    ['data past 4 GiB', `${record(4, 0, [0xff, 0xff])}\n${record(0, 0xffff, [1, 2])}\n:00000001FF`, /past the 4 GiB/],
  ])('refuses %s', (_what, text, why) => {
    expect(() => read(text)).toThrow(IntelHexError);
    expect(() => read(text)).toThrow(why);
  });

  it('refuses an image above its limit instead of allocating it', () => {
    const text = hexFile([{ address: 0, bytes: [1] }, { address: 0x00f00000, bytes: [2] }]);
    expect(() => readIntelHex(enc.encode(text), { maxImageBytes: 1 << 20 })).toThrow(/more than 1048576/);
  });

  it('reads the micro:bit HEX files into the flat images the corpus pins (UICR left out)', () => {
    for (const variant of MICROBIT_VARIANTS)
      for (const version of MICROBIT_VERSIONS) {
        const img = readIntelHex(readFileSync(microbitHex(variant, version)));
        expect(img.base).toBe(0);
        expect(Buffer.compare(img.bytes, readFileSync(microbitImage(variant, version)))).toBe(0);
        expect(img.leftOut.length).toBe(1);
        expect(img.leftOut[0].start).toBeGreaterThanOrEqual(0x10001000);
      }
  });
});
