// Fuzz of the OTA notice parsers (messages.ts: upgrade notice, inform, progress) and of the topic parser
// (topics.ts), from real notices (the Aliyun shapes of messages.test.ts) mutated at the JSON level (wrong
// types, huge and non-finite numbers, huge strings, deep nesting, prototype keys, duplicate and renamed
// keys, unicode) and at the byte level (bit flips, stray, inserted, deleted and duplicated bytes, invalid
// UTF-8, a BOM). Every parser, fed every mutated notice of any kind, must return a value that meets the
// documented constraints and rebuilds to itself, or throw MessageError, quickly; a string and its UTF-8
// bytes must parse alike; nothing may touch Object.prototype.
// CI runs 1000 cases with a fixed seed; `npm run fuzz` runs many more (OTADIFF_FUZZ_RUNS, OTADIFF_FUZZ_SEED).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  buildInformMessage,
  buildProgressMessage,
  buildUpgradeMessage,
  MAX_MESSAGE_BYTES,
  MessageError,
  parseInformMessage,
  parseProgressMessage,
  parseUpgradeMessage,
  validateDownloadUrl,
  type InformMessage,
  type ProgressMessage,
  type UpgradeInfo,
} from '../src/protocol/messages.js';
import { isValidVersion } from '../src/protocol/version.js';
import { informTopic, isValidDeviceName, isValidProductKey, otaTopic, parseOtaTopic, progressTopic, TopicError, upgradeTopic, type OtaTopicKind } from '../src/protocol/topics.js';
import { FUZZ_SEED, fuzzRuns, suiteWatchdog, type HangGuard } from '../../patch-apply/test/fuzz-watchdog.js';
import { baseUpgrade, MD5, SHA } from './helpers/sample-notices.js';

const RUNS = fuzzRuns(1000);
const SEED = FUZZ_SEED;
/** Parsing a notice of at most 16 KiB takes well under a millisecond. */
const SLOW_MS = 250;
const HANG_MS = 15_000;


// ---- real notices ----


type Kind = 'upgrade' | 'inform' | 'progress';
const SAMPLES: readonly { kind: Kind; text: string }[] = [
  { kind: 'upgrade', text: buildUpgradeMessage(baseUpgrade) },
  {
    kind: 'upgrade',
    text: JSON.stringify({
      code: '1000',
      data: { size: 432945, version: '2.0.0', isDiff: 1, url: 'https://x.test/a.bin', md5: MD5.toUpperCase(), sign: MD5.toUpperCase(), signMethod: 'MD5', module: 'MCU', dProtocol: 'https' },
      id: 1507707025,
      message: 'success',
    }),
  },
  { kind: 'upgrade', text: JSON.stringify({ code: '1000', message: 'success', id: 1, data: { size: 10, version: '1.1', url: 'http://h.test/f', md5: MD5, splictSize: 4 } }) },
  { kind: 'upgrade', text: JSON.stringify({ code: 1000, message: 'success', id: '7', data: { size: 1 << 20, version: 'v3.1.0-rc.1+b7', url: 'https://[::1]:8443/f?x=%20', signMethod: 'Sha256', sign: SHA.toUpperCase(), extData: {} } }) },
  { kind: 'inform', text: '{"id":"123","params":{"version":"1.0.1","module":"MCU"}}' },
  { kind: 'inform', text: buildInformMessage({ id: '4294967295', version: '1.0' }) },
  { kind: 'progress', text: '{"id":5,"params":{"step":"-3","desc":"check failed"}}' },
  { kind: 'progress', text: buildProgressMessage({ id: '9', step: 100, desc: 'done', module: 'wifi_1.2' }) },
];

// ---- a JSON tree that can hold what JSON.stringify cannot write: raw tokens, duplicate and prototype keys ----

type J = { t: 'obj'; e: [string, J][] } | { t: 'arr'; a: J[] } | { t: 'raw'; s: string };

function tree(v: unknown): J {
  if (Array.isArray(v)) return { t: 'arr', a: v.map(tree) };
  if (v !== null && typeof v === 'object') return { t: 'obj', e: Object.entries(v).map(([k, x]) => [k, tree(x)]) };
  return { t: 'raw', s: JSON.stringify(v) };
}

function ser(j: J): string {
  if (j.t === 'raw') return j.s;
  if (j.t === 'arr') return `[${j.a.map(ser).join(',')}]`;
  return `{${j.e.map(([k, v]) => `${JSON.stringify(k)}:${ser(v)}`).join(',')}}`;
}

/** Every node with a way to replace it, pre-order. */
function nodes(root: { j: J }): { get: () => J; set: (x: J) => void }[] {
  const out: { get: () => J; set: (x: J) => void }[] = [];
  const walk = (get: () => J, set: (x: J) => void) => {
    out.push({ get, set });
    const n = get();
    if (n.t === 'obj') n.e.forEach((entry) => walk(() => entry[1], (x) => (entry[1] = x)));
    if (n.t === 'arr') n.a.forEach((_, i) => walk(() => n.a[i], (x) => (n.a[i] = x)));
  };
  walk(
    () => root.j,
    (x) => (root.j = x),
  );
  return out;
}

function objects(j: J, out: Extract<J, { t: 'obj' }>[] = []): Extract<J, { t: 'obj' }>[] {
  if (j.t === 'obj') {
    out.push(j);
    j.e.forEach(([, v]) => objects(v, out));
  }
  if (j.t === 'arr') j.a.forEach((v) => objects(v, out));
  return out;
}

// ---- hostile values and mutations ----

const rawToken = (s: string): J => ({ t: 'raw', s });
const HOSTILE_TOKENS = [
  // wrong types
  'true', 'false', 'null', '0', '1', '-1', '1.5', '[]', '{}', '""', '"x"', '[1]', '{"a":1}',
  // numbers at and past every edge
  '-0', '0.0', '1e2', '1E+2', '4294967295', '4294967296', '9007199254740991', '9007199254740992', '9007199254740993', '1e308', '1e309', '-1e309', '1e-400',
  '268435456', '268435457', '16777216', '16777217', '100000000000000000000000000000', '0.1e1', '01', '+1', '.5', '0x10',
  // not JSON at all
  'NaN', 'Infinity', '-Infinity', 'undefined', "'1'", '"\\x41"', '"\\u12"', '"unterminated',
  // unicode
  '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"１.０"', '"1.0\\u200b"', '"\\u202e1.0"', '"\\ufeff1.0"', '"é"', '"😀"', '"\\u00e9"', '"Ｍｄ５"', '"sha256\\u0131"', '"ſha256"',
  // plausible field values, so mutations get past the first checks
  '"1000"', '1000', '"success"', `"${SHA}"`, `"${MD5}"`, `"${MD5.toUpperCase()}"`, '"MD5"', '"Md5"', '"SHA256"', '"sha256"', '"1.0.0"', '"v2"', '"2.0.0-beta+exp.sha.5114f85"', '4096', '"4096"',
  '"https://h.test/f"', '"http://[::1]:8080/x"', '"HTTPS://H.TEST/F"', '"ftp://h.test/f"', '"file:///etc/passwd"', '"https://u:p@h.test/"', '"https://h.test/\\u0000"', '"//h.test/f"', '"https:h.test"',
  '"http://"', '"https://h.test:99999/"', '"https://xn--nxasmq6b.test/"', '"https://ü.test/"', `"${Buffer.alloc(128, 1).toString('base64')}"`, `"${Buffer.alloc(127, 1).toString('base64')}"`, '"===="', '"MCU"', '"a/b"',
  '"-3"', '"-0"', '"100"', '"101"', '"-5"', '"007"', '-4', '-5', '101',
];

const hostileArb: fc.Arbitrary<J> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOSTILE_TOKENS).map(rawToken) },
  {
    // huge strings around every length limit (desc 1024, url 2048, extData 4096, the message 16 KiB)
    weight: 2,
    arbitrary: fc
      .record({ ch: fc.constantFrom('a', '0', 'é', '😀', '\\u0041', '\\"', ' ', '%'), n: fc.constantFrom(1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 5461, 8190, 16000, 17000) })
      .map(({ ch, n }) => rawToken(`"${ch.repeat(n)}"`)),
  },
  {
    // deep nesting, below and past the size bound
    weight: 1,
    arbitrary: fc.record({ d: fc.constantFrom(10, 100, 1000, 4000, 8000, 100_000), obj: fc.boolean() }).map(({ d, obj }) =>
      rawToken(obj ? '{"a":'.repeat(d) + '1' + '}'.repeat(d) : '['.repeat(d) + ']'.repeat(d)),
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(tree) },
);

const KEYS = [
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'polluted',
  'id', 'code', 'message', 'data', 'params', 'size', 'version', 'url', 'signMethod', 'sign', 'md5', 'isDiff', 'splitSize', 'splictSize', 'diffVersion',
  'digestsign', 'module', 'extData', 'step', 'desc', 'Size', 'SIZE', 'size ', '', 'a'.repeat(65), 'ｓｉｚｅ',
];

type JsonMut =
  | { kind: 'replace'; at: number; value: J }
  | { kind: 'tweak'; at: number; op: number; n: number }
  | { kind: 'delete'; at: number; entry: number }
  | { kind: 'addkey'; at: number; key: string; value: J; front: boolean }
  | { kind: 'dupkey'; at: number; entry: number; value: J }
  | { kind: 'rename'; at: number; entry: number; key: string }
  | { kind: 'wrap'; at: number; array: boolean };

const jsonMutArb: fc.Arbitrary<JsonMut> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: hostileArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tweak' as const), at: fc.nat(), op: fc.nat(), n: fc.nat({ max: 70 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), entry: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('addkey' as const), at: fc.nat(), key: fc.constantFrom(...KEYS), value: hostileArb, front: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dupkey' as const), at: fc.nat(), entry: fc.nat(), value: hostileArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rename' as const), at: fc.nat(), entry: fc.nat(), key: fc.constantFrom(...KEYS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrap' as const), at: fc.nat(), array: fc.boolean() }) },
);

const APPEND = [' ', '\u0000', 'é', '/', '.', '-', 'a', '0', '\ud800', '😀', '\n', '"', '\\'];

function tweakRaw(s: string, op: number, n: number): string {
  if (s.startsWith('"')) {
    let v: string;
    try {
      v = JSON.parse(s) as string;
    } catch {
      return s + 'x';
    }
    const c = APPEND[n % APPEND.length];
    const out = [v + c, c + v, v.toUpperCase(), v.toLowerCase(), v.slice(0, n), v + v, v.slice(0, n) + 'x' + v.slice(n + 1), v.repeat(40)][op % 8];
    return JSON.stringify(out);
  }
  const x = Number(s);
  if (!Number.isFinite(x)) return s;
  return [String(x + 1), String(x - 1), String(x * 2 ** (n % 40)), String(-x), JSON.stringify(String(x)), `${s}.0`, `${s}e0`, `0${s}`][op % 8];
}

function applyJson(root: { j: J }, m: JsonMut): void {
  const all = nodes(root);
  const node = all[m.at % all.length];
  const objs = objects(root.j);
  const obj = objs.length > 0 ? objs[m.at % objs.length] : undefined;
  switch (m.kind) {
    case 'replace':
      node.set(m.value);
      break;
    case 'tweak': {
      const n = node.get();
      if (n.t === 'raw') node.set(rawToken(tweakRaw(n.s, m.op, m.n)));
      else if (n.t === 'arr') n.a.reverse();
      else n.e.reverse();
      break;
    }
    case 'wrap':
      node.set(m.array ? { t: 'arr', a: [node.get()] } : { t: 'obj', e: [['value', node.get()]] });
      break;
    case 'delete':
      if (obj !== undefined && obj.e.length > 0) obj.e.splice(m.entry % obj.e.length, 1);
      break;
    case 'addkey':
      if (obj !== undefined) obj.e[m.front ? 'unshift' : 'push']([m.key, m.value]);
      break;
    case 'dupkey':
      if (obj !== undefined && obj.e.length > 0) obj.e.push([obj.e[m.entry % obj.e.length][0], m.value]);
      break;
    case 'rename':
      if (obj !== undefined && obj.e.length > 0) obj.e[m.entry % obj.e.length][0] = m.key;
      break;
  }
}

type ByteMut =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'dup'; from: number; len: number; to: number }
  | { kind: 'bom' };

const SPECIAL_BYTES = [
  [0xff], [0xfe], [0x80], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xef, 0xbb, 0xbf], [0x00], [0x22], [0x5c], [0x7b], [0x7d], [0x2c], [0xc3], [0xf0, 0x9f, 0x98],
].map((b) => Uint8Array.from(b));

const byteMutArb: fc.Arbitrary<ByteMut> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.oneof(fc.constantFrom(...SPECIAL_BYTES), fc.uint8Array({ minLength: 1, maxLength: 8 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dup' as const), from: fc.nat(), len: fc.integer({ min: 1, max: 64 }), to: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
);

function applyBytes(b: Uint8Array, m: ByteMut): Uint8Array {
  const n = b.length;
  const at = (r: number, extra = 0) => (n + extra === 0 ? 0 : r % (n + extra));
  switch (m.kind) {
    case 'flip':
      if (n > 0) b[at(m.at)] ^= 1 << m.bit;
      return b;
    case 'set':
      if (n > 0) b[at(m.at)] = m.value;
      return b;
    case 'insert': {
      const i = at(m.at, 1);
      return Buffer.concat([b.subarray(0, i), m.bytes, b.subarray(i)]);
    }
    case 'delete': {
      const i = at(m.at);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + m.len)]);
    }
    case 'truncate':
      return b.subarray(0, at(m.at, 1));
    case 'dup': {
      const i = at(m.from);
      const j = at(m.to, 1);
      return Buffer.concat([b.subarray(0, j), b.subarray(i, i + m.len), b.subarray(j)]);
    }
    case 'bom':
      return Buffer.concat([Uint8Array.from([0xef, 0xbb, 0xbf]), b]);
  }
}

// ---- oracles ----

type Parsed = { ok: true; value: UpgradeInfo | InformMessage | ProgressMessage } | { ok: false; message: string };
const PARSERS: Record<Kind, (p: string | Uint8Array) => UpgradeInfo | InformMessage | ProgressMessage> = {
  upgrade: (p) => parseUpgradeMessage(p),
  inform: parseInformMessage,
  progress: parseProgressMessage,
};
const BUILDERS: Record<Kind, (v: never) => string> = {
  upgrade: buildUpgradeMessage as (v: never) => string,
  inform: buildInformMessage as (v: never) => string,
  progress: buildProgressMessage as (v: never) => string,
};

const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

const isPlain = (o: unknown) => typeof o === 'object' && o !== null && Object.getPrototypeOf(o) === Object.prototype;
const ownKeysWithin = (o: object, allowed: readonly string[]) => Object.keys(o).every((k) => allowed.includes(k));
const decimalId = (id: unknown, max: number) => typeof id === 'string' && /^(?:0|[1-9][0-9]*)$/.test(id) && Number(id) <= max;
const moduleOk = (m: unknown) => m === undefined || (typeof m === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(m));
const intIn = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isSafeInteger(v) && !Object.is(v, -0) && v >= lo && v <= hi;

/** The documented constraints on a parsed value; returns what is wrong, or null. */
function invalid(kind: Kind, v: UpgradeInfo | InformMessage | ProgressMessage): string | null {
  if (!isPlain(v)) return 'not a plain object';
  if (kind === 'inform') {
    const m = v as InformMessage;
    if (!ownKeysWithin(m, ['id', 'version', 'module'])) return 'unknown key';
    if (!decimalId(m.id, 0xffffffff)) return 'id';
    if (typeof m.version !== 'string' || !isValidVersion(m.version)) return 'version';
    return moduleOk(m.module) ? null : 'module';
  }
  if (kind === 'progress') {
    const m = v as ProgressMessage;
    if (!ownKeysWithin(m, ['id', 'step', 'desc', 'module'])) return 'unknown key';
    if (!decimalId(m.id, 0xffffffff)) return 'id';
    if (!intIn(m.step, -4, 100)) return `step ${Object.is(m.step, -0) ? '-0' : m.step}`;
    if (typeof m.desc !== 'string' || m.desc.length > 1024) return 'desc';
    return moduleOk(m.module) ? null : 'module';
  }
  const u = v as UpgradeInfo;
  const keys = ['id', 'size', 'version', 'url', 'signMethod', 'sign', 'md5', 'isDiff', 'splitSize', 'diffVersion', 'digestsign', 'module', 'extData'];
  if (!ownKeysWithin(u, keys)) return 'unknown key';
  if (!decimalId(u.id, Number.MAX_SAFE_INTEGER)) return 'id';
  if (!intIn(u.size, 1, 256 * 1024 * 1024)) return 'size';
  if (typeof u.version !== 'string' || !isValidVersion(u.version)) return 'version';
  try {
    validateDownloadUrl(u.url);
  } catch {
    return 'url';
  }
  if (!['http:', 'https:'].includes(new URL(u.url).protocol)) return 'url scheme';
  if (u.signMethod !== 'SHA256' && u.signMethod !== 'Md5') return 'signMethod';
  if (!new RegExp(`^[0-9a-f]{${u.signMethod === 'SHA256' ? 64 : 32}}$`).test(u.sign)) return 'sign';
  if (u.md5 !== undefined && !/^[0-9a-f]{32}$/.test(u.md5)) return 'md5';
  if (u.signMethod === 'Md5' && u.md5 !== undefined && u.md5 !== u.sign) return 'md5 vs sign';
  if ((u.isDiff !== 0 && u.isDiff !== 1) || Object.is(u.isDiff, -0)) return 'isDiff';
  if (u.splitSize !== undefined && !intIn(u.splitSize, 1, 1 << 24)) return 'splitSize';
  if (u.diffVersion !== undefined && (typeof u.diffVersion !== 'string' || !isValidVersion(u.diffVersion))) return 'diffVersion';
  if (u.digestsign !== undefined) {
    const n = typeof u.digestsign === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(u.digestsign) ? Buffer.from(u.digestsign, 'base64').length : -1;
    if (n < 128 || n > 1024) return 'digestsign';
  }
  if (!moduleOk(u.module)) return 'module';
  if (u.extData !== undefined) {
    if (!isPlain(u.extData)) return 'extData type';
    const entries = Object.entries(u.extData);
    if (entries.length > 32 || entries.some(([k, x]) => k.length < 1 || k.length > 64 || typeof x !== 'string' || x.length > 4096)) return 'extData entry';
  }
  return null;
}

/** Parses with `kind`'s parser; fails the property on anything but a valid value or a MessageError. */
function parse(kind: Kind, payload: string | Uint8Array, watchdog: HangGuard, input: Uint8Array): Parsed {
  const t0 = performance.now();
  let out: Parsed;
  try {
    out = { ok: true, value: watchdog.guard(input, () => PARSERS[kind](payload)) };
  } catch (e) {
    if (!(e instanceof MessageError)) throw new Error(`${kind}: ${(e as Error)?.name}: ${(e as Error)?.message} (expected a MessageError)`);
    if (e.message.length < 10) throw new Error(`${kind}: MessageError without a useful message`);
    out = { ok: false, message: e.message };
  }
  const bad = out.ok ? invalid(kind, out.value) : null;
  if (out.ok && bad !== null) throw new Error(`${kind}: accepted an invalid value (${bad}): ${JSON.stringify(out.value)?.slice(0, 300)}`);
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) throw new Error(`${kind}: parsing ${payload.length} bytes took ${ms.toFixed(0)} ms`);
  if (Object.getOwnPropertyNames(Object.prototype).sort().join(',') !== PROTO_NAMES || ({} as Record<string, unknown>).polluted !== undefined) {
    throw new Error(`${kind}: Object.prototype changed`);
  }
  return out;
}

/** A value, or just 'refused' (messages may differ, e.g. a size in bytes or in characters). */
const outcome = (p: Parsed) => (p.ok ? p.value : 'refused');

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const startsWithBom = (b: Uint8Array) => b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;

describe('notice fuzz', () => {
  const watchdog = suiteWatchdog('fuzz-notice', HANG_MS, () => 256 * 1024);
  const seen = new Map<string, number>();
  const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);

  it('every sample is a real notice its parser accepts', () => {
    for (const s of SAMPLES) {
      const out = parse(s.kind, Buffer.from(s.text), watchdog, utf8.encode(s.text));
      expect(out.ok, s.text).toBe(true);
    }
  });

  /** `text` padded with an unknown key to exactly `size` UTF-8 bytes, using `ch` (1 to 4 bytes) as filler. */
  const padded = (text: string, size: number, ch: string) => {
    const head = `${text.slice(0, -1)},"pad":"`;
    const room = size - Buffer.byteLength(head) - 2;
    const unit = Buffer.byteLength(ch);
    const out = `${head}${ch.repeat(Math.floor(room / unit))}${'x'.repeat(room % unit)}"}`;
    expect(Buffer.byteLength(out)).toBe(size);
    return out;
  };

  it('the size bound is MAX_MESSAGE_BYTES of UTF-8, for strings and bytes alike, before any parsing', () => {
    for (const ch of ['a', 'é', '€', '😀']) {
      for (const s of SAMPLES) {
        const fits = padded(s.text, MAX_MESSAGE_BYTES, ch);
        const over = padded(s.text, MAX_MESSAGE_BYTES + 1, ch);
        for (const payload of [fits, Buffer.from(fits)]) expect(outcome(parse(s.kind, payload, watchdog, Buffer.from(fits))), `${s.kind} ${ch}`).not.toBe('refused');
        for (const payload of [over, Buffer.from(over)]) expect(() => PARSERS[s.kind](payload)).toThrow(new RegExp(`payload of ${MAX_MESSAGE_BYTES + 1} bytes exceeds ${MAX_MESSAGE_BYTES}`));
      }
    }
    // Past the bound nothing else is looked at: not the encoding, not the JSON.
    expect(() => parseUpgradeMessage(new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(0xff))).toThrow(/exceeds/);
    expect(() => parseInformMessage('['.repeat(1 << 20))).toThrow(/exceeds/);
  });

  // Regression, found by this fuzz (seed 0x07ad1ff): a string payload was measured in UTF-16 units, so
  // a notice of 16 KiB characters but more UTF-8 bytes was accepted as a string and refused as bytes.
  it('a notice within the bound in characters but past it in UTF-8 bytes is refused as a string too', () => {
    const text = padded(SAMPLES[0].text, MAX_MESSAGE_BYTES + 2, '😀');
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(() => parseUpgradeMessage(text)).toThrow(/exceeds/);
  });

  // Regression, found by this fuzz: the builders did not check the bound, so buildUpgradeMessage emitted
  // notices the parsers refuse (extData allows 32 entries of 4096 characters).
  it('the builders refuse a notice past the bound instead of emitting one no parser accepts', () => {
    const extData = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'v'.repeat(4000)]));
    expect(() => buildUpgradeMessage({ ...baseUpgrade, extData })).toThrow(/message of [0-9]+ bytes exceeds/);
    expect(() => buildUpgradeMessage({ ...baseUpgrade, extData: { k: 'v'.repeat(4000) } })).not.toThrow();
  });

  // Regression, found by this fuzz (seed 0x07ad1ff): `code` nested 8000 arrays deep (16 KB) made the
  // error message's JSON.stringify overflow the stack, a RangeError instead of a MessageError.
  it('a deeply nested code or signMethod is a MessageError with a short message', () => {
    const deep = '['.repeat(8000) + ']'.repeat(8000);
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    };
    for (const wire of [
      `{"code":${deep}}`,
      `{"code":"${'9'.repeat(10000)}"}`,
      `{"code":"1000","message":"success","id":1,"data":{"size":1,"version":"1","url":"https://h.test/","signMethod":"${'x'.repeat(10000)}","sign":""}}`,
    ]) {
      const e = err(() => parseUpgradeMessage(wire));
      expect(e).toBeInstanceOf(MessageError);
      expect(e.message.length).toBeLessThan(100);
    }
    // The same for the addressee check (found in review): String() of the nested arrays overflowed.
    const addressed = `{"code":"1000","message":"success","id":1,"deviceName":${deep},"data":{}}`;
    const e = err(() => parseUpgradeMessage(addressed, { device: { productKey: 'pk', deviceName: 'dn' } }));
    expect(e).toBeInstanceOf(MessageError);
    expect(e.message).toMatch(/^upgrade\.deviceName an array is not this device/);
  });

  // Regression, found by this fuzz (seed 0x07ad1ff): a step of "-0" (or a JSON -0, or isDiff -0) came
  // back as -0, which rebuilds as "0": not canonical.
  it('-0 is read as 0', () => {
    for (const step of ['"-0"', '-0', '-0.0']) expect(Object.is(parseProgressMessage(`{"id":1,"params":{"step":${step}}}`).step, 0)).toBe(true);
    const wire = JSON.stringify({ code: '1000', message: 'success', id: 1, data: { size: 10, version: '1.1', url: 'http://h.test/f', md5: MD5, isDiff: 0 } }).replace('"isDiff":0', '"isDiff":-0');
    expect(Object.is(parseUpgradeMessage(wire).isDiff, 0)).toBe(true);
  });

  it(
    `mutated notices give a valid value or a MessageError, in every parser (${RUNS} runs, seed ${SEED})`,
    () => {
      fc.assert(
        fc.property(
          fc.nat({ max: SAMPLES.length - 1 }),
          fc.array(jsonMutArb, { maxLength: 3 }),
          // Byte-level damage in half the cases: most of it stops at the UTF-8 or JSON check.
          fc.oneof(fc.constant([]), fc.array(byteMutArb, { minLength: 1, maxLength: 3 })),
          (which, jmuts, bmuts) => {
          const sample = SAMPLES[which];
          const root = { j: tree(JSON.parse(sample.text)) };
          for (const m of jmuts) applyJson(root, m);
          let bytes: Uint8Array = Buffer.from(ser(root.j));
          for (const m of bmuts) bytes = applyBytes(bytes, m);
          let text: string | null = null;
          try {
            text = strictUtf8.decode(bytes);
          } catch {
            text = null;
          }
          for (const kind of ['upgrade', 'inform', 'progress'] as const) {
            const fromBytes = parse(kind, bytes, watchdog, bytes);
            count(`${kind} ${fromBytes.ok ? 'ok' : fromBytes.message.replace(/[0-9]+/g, 'N').replace(/".*"|'.*'/g, 'S').slice(0, 50)}`);
            // A string and its UTF-8 bytes are the same notice (a leading BOM is dropped from bytes only).
            if (text !== null && !startsWithBom(bytes)) expect(outcome(parse(kind, text, watchdog, bytes)), 'the same notice as a string').toEqual(outcome(fromBytes));
            if (!fromBytes.ok) continue;
            // Canonical: what the parser accepted rebuilds to a notice that parses to the same value.
            // The builder may only refuse one that would come out larger than the parsers accept (it writes
            // every digest and the sign method out, so an old-protocol notice near the bound can grow past it).
            let rebuilt: string;
            try {
              rebuilt = BUILDERS[kind](fromBytes.value as never);
            } catch (e) {
              if (e instanceof MessageError && /exceeds/.test(e.message)) {
                count(`${kind} rebuilt too large`);
                continue;
              }
              throw new Error(`${kind}: the builder refused a parsed value: ${(e as Error).name}: ${(e as Error).message}`);
            }
            expect(Buffer.byteLength(rebuilt)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
            expect(outcome(parse(kind, rebuilt, watchdog, bytes)), 'the rebuilt notice').toEqual(outcome(fromBytes));
          }
        }),
        { seed: SEED, numRuns: RUNS },
      );
      if (process.env.OTADIFF_FUZZ_DEBUG) console.log([...seen].sort().map(([k, v]) => `${v}\t${k}`).join('\n'));
      if (RUNS >= 300) {
        const labels = [...seen.keys()].join(' | ');
        for (const part of ['upgrade ok', 'inform ok', 'progress ok', 'exceeds', 'not JSON', 'not valid UTF-N', 'must be a JSON object']) expect(labels, part).toContain(part);
      }
    },
    Math.max(60_000, RUNS * 20),
  );
});

describe('topic fuzz', () => {
  const TOPICS = [informTopic('a1B2c3', 'dev-01'), upgradeTopic('a1ProdKey01', 'dev@home.local:1'), progressTopic('PK9', 'd_e-v.x'), otaTopic('upgrade', 'Z'.repeat(32), 'n'.repeat(32))];
  const CHARS = ['/', '+', '#', '\u0000', ' ', 'é', '\ud800', 'A', '-', '.', '@', ':', '&', '|', '%2F', '０'];
  const topicMutArb = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), ch: fc.constantFrom(...CHARS) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), ch: fc.constantFrom(...CHARS) }),
    fc.record({ kind: fc.constant('case' as const), upper: fc.boolean() }),
    fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ kind: fc.constant('repeat' as const), n: fc.integer({ min: 2, max: 8 }) }),
  );

  it(`mutated topics parse to a canonical topic or null, never throw (${RUNS} runs, seed ${SEED})`, () => {
    let parsed = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.nat({ max: TOPICS.length - 1 }), fc.array(topicMutArb, { minLength: 1, maxLength: 3 }), (which, muts) => {
        let t = TOPICS[which];
        for (const m of muts) {
          const at = (r: number) => r % (t.length + 1);
          if (m.kind === 'insert') t = t.slice(0, at(m.at)) + m.ch + t.slice(at(m.at));
          else if (m.kind === 'delete') t = t.slice(0, at(m.at)) + t.slice(at(m.at) + m.len);
          else if (m.kind === 'replace') t = t.slice(0, at(m.at)) + m.ch + t.slice(at(m.at) + 1);
          else if (m.kind === 'case') t = m.upper ? t.toUpperCase() : t.toLowerCase();
          else if (m.kind === 'dup') t = t.slice(0, at(m.at) + m.len) + t.slice(at(m.at));
          else t = t.repeat(m.n);
        }
        const p = parseOtaTopic(t);
        if (p === null) {
          refused++;
          return;
        }
        parsed++;
        expect(isValidProductKey(p.productKey) && isValidDeviceName(p.deviceName)).toBe(true);
        expect(otaTopic(p.kind, p.productKey, p.deviceName)).toBe(t);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    if (RUNS >= 300) expect({ parsed: parsed > 0, refused: refused > 0 }).toEqual({ parsed: true, refused: true });
  });

  it(`topics built from mutated device ids throw TopicError or parse back to the same ids (${RUNS} runs, seed ${SEED})`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom<OtaTopicKind>('inform', 'upgrade', 'progress'),
        fc.oneof(fc.constantFrom('a1B2c3', 'pk', '', 'p/k', 'p+k', 'P'.repeat(33)), fc.string({ maxLength: 40 })),
        fc.oneof(fc.constantFrom('dev-01', 'abc', 'a/b/c', 'dev#1', 'x'.repeat(33), 'dev 01', 'dév-01'), fc.string({ maxLength: 40 })),
        (kind, pk, dn) => {
          let topic: string;
          try {
            topic = otaTopic(kind, pk, dn);
          } catch (e) {
            expect(e).toBeInstanceOf(TopicError);
            return;
          }
          expect(parseOtaTopic(topic)).toEqual({ kind, productKey: pk, deviceName: dn });
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    for (const junk of [undefined, null, 42, {}, ['/ota/device/upgrade/pk/dev-01']]) expect(parseOtaTopic(junk as unknown as string)).toBeNull();
  });
});
