// Strict parsers and builders for the Alibaba Cloud IoT OTA messages.
// Field names follow Aliyun's "OTA update" Alink topic reference and the
// AliOS Things ota_service parser (see the package report for sources).
// Every payload is untrusted: sizes, ids, urls, hex digests and base64 are
// validated before anything reaches the downloader or the flash port.

import { isValidVersion } from './version.js';

export class MessageError extends Error {
  override name = 'MessageError';
}

/** Negative `step` values of a progress report (Aliyun IOT_OTAP_* convention). */
export const OtaStep = {
  UPGRADE_FAILED: -1,
  DOWNLOAD_FAILED: -2,
  VERIFY_FAILED: -3,
  BURN_FAILED: -4,
} as const;
export type OtaStepError = (typeof OtaStep)[keyof typeof OtaStep];

export type SignMethod = 'SHA256' | 'Md5';

export interface InformMessage {
  /** Message id: decimal string, 0..4294967295. */
  id: string;
  version: string;
  module?: string;
}

export interface ProgressMessage {
  id: string;
  /** 0..100 percent, or an OtaStep error code (-1..-4). */
  step: number;
  desc: string;
  module?: string;
}

export interface UpgradeInfo {
  /** Message id: decimal string of a non-negative safe integer (Aliyun uses ms timestamps). */
  id: string;
  size: number;
  version: string;
  url: string;
  signMethod: SignMethod;
  /** Lower-case hex digest of the whole file with `signMethod`. */
  sign: string;
  /** Lower-case hex MD5 of the file, when the cloud sent it. */
  md5?: string;
  isDiff: 0 | 1;
  splitSize?: number;
  diffVersion?: string;
  /** Base64 RSA signature (PKCS#1 v1.5, SHA-256) over the binary file digest. */
  digestsign?: string;
  module?: string;
  extData?: Record<string, string>;
}

export interface UpgradeParseOptions {
  /** Largest acceptable `size` in bytes (default 256 MiB). */
  maxSize?: number;
  /** URL schemes accepted for `url` (default http: and https:). */
  allowedProtocols?: readonly string[];
  /**
   * The receiving device. Aliyun's notice names no device (the topic does), but one that
   * does (productKey / deviceName, at the top or in data) must name this one.
   */
  device?: { productKey: string; deviceName: string };
}

/**
 * Largest notice (inform, progress, upgrade) in UTF-8 bytes, checked before decoding or parsing: a
 * string payload counts its UTF-8 encoding, so a notice is accepted or refused alike as text or bytes.
 * The builders refuse to emit anything larger.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024;
/** Largest split size a notice may name (the otadiff package format's own limit). */
const MAX_SPLIT_SIZE = 1 << 24;
const MAX_U32 = 4294967295;
const DEFAULT_MAX_SIZE = 256 * 1024 * 1024;
const MAX_URL_LENGTH = 2048;
const MODULE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const HEX_RE = /^[0-9a-fA-F]+$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_DESC = 1024;

type Json = Record<string, unknown>;

/**
 * A short description of an untrusted value for an error message. Never JSON.stringify the value
 * itself: a 16 KiB notice can nest arrays thousands deep (stack overflow) or carry a 16 KiB string.
 */
function preview(v: unknown): string {
  if (typeof v === 'string') return v.length > 32 ? `${JSON.stringify(v.slice(0, 32))}...` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v;
}

/** A built notice, unless it is larger than any parser accepts. */
function bounded(what: string, message: string): string {
  const len = Buffer.byteLength(message, 'utf8');
  if (len > MAX_MESSAGE_BYTES) throw new MessageError(`${what}: message of ${len} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  return message;
}

function decodeJson(payload: string | Uint8Array, what: string): Json {
  const len = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength;
  if (len > MAX_MESSAGE_BYTES) throw new MessageError(`${what}: payload of ${len} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  let text: string;
  try {
    text = typeof payload === 'string' ? payload : new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    throw new MessageError(`${what}: payload is not valid UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MessageError(`${what}: payload is not JSON`);
  }
  return asObject(value, what);
}

function asObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MessageError(`${what} must be a JSON object`);
  }
  return value as Json;
}

function has(o: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined && o[key] !== null;
}

function parseId(v: unknown, max: number, what: string): string {
  let s: string;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new MessageError(`${what}.id must be a non-negative integer`);
    s = String(v);
  } else if (typeof v === 'string' && /^(?:0|[1-9][0-9]{0,15})$/.test(v)) {
    s = v;
  } else {
    throw new MessageError(`${what}.id must be a decimal number`);
  }
  if (Number(s) > max) throw new MessageError(`${what}.id ${s} exceeds ${max}`);
  return s;
}

function parseVersionField(v: unknown, what: string): string {
  if (typeof v !== 'string' || !isValidVersion(v)) throw new MessageError(`${what} is not a valid version`);
  return v;
}

function parseModule(o: Json, what: string): string | undefined {
  if (!has(o, 'module')) return undefined;
  const m = o.module;
  if (typeof m !== 'string' || !MODULE_RE.test(m)) throw new MessageError(`${what}.module is invalid`);
  return m;
}

function parseHex(v: unknown, chars: number, what: string): string {
  if (typeof v !== 'string' || v.length !== chars || !HEX_RE.test(v)) {
    throw new MessageError(`${what} must be ${chars} hex digits`);
  }
  return v.toLowerCase();
}

function parsePositiveInt(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0 || v > max) {
    throw new MessageError(`${what} must be an integer in 1..${max}`);
  }
  return v;
}

function checkDesc(d: unknown, what: string): string {
  if (typeof d !== 'string' || d.length > MAX_DESC) throw new MessageError(`${what} must be a string of at most ${MAX_DESC} chars`);
  return d;
}

/** Validate a download URL from an untrusted message. */
export function validateDownloadUrl(url: unknown, allowed: readonly string[] = ['http:', 'https:']): string {
  if (typeof url !== 'string' || url.length === 0 || url.length > MAX_URL_LENGTH) {
    throw new MessageError(`url must be a string of 1..${MAX_URL_LENGTH} chars`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(url)) throw new MessageError('url contains whitespace or control characters');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MessageError('url is not an absolute URL');
  }
  if (!allowed.includes(parsed.protocol)) throw new MessageError(`url scheme ${parsed.protocol} not allowed`);
  if (parsed.username || parsed.password) throw new MessageError('url must not carry credentials');
  if (!parsed.hostname) throw new MessageError('url has no host');
  return url;
}

// ---------------------------------------------------------------- inform

export function parseInformMessage(payload: string | Uint8Array): InformMessage {
  const root = decodeJson(payload, 'inform');
  const id = parseId(root.id, MAX_U32, 'inform');
  const params = asObject(root.params, 'inform.params');
  const version = parseVersionField(params.version, 'inform.params.version');
  const module = parseModule(params, 'inform.params');
  return module === undefined ? { id, version } : { id, version, module };
}

export function buildInformMessage(m: InformMessage): string {
  const id = parseId(m.id, MAX_U32, 'inform');
  const params: Json = { version: parseVersionField(m.version, 'inform.version') };
  if (m.module !== undefined) params.module = parseModule({ module: m.module }, 'inform');
  return bounded('inform', JSON.stringify({ id, params }));
}

// ---------------------------------------------------------------- progress

function parseStep(v: unknown): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^-?[0-9]{1,3}$/.test(v)) n = Number(v);
  else throw new MessageError('progress.params.step must be an integer (as string)');
  if (!Number.isInteger(n) || n < OtaStep.BURN_FAILED || n > 100) {
    throw new MessageError(`progress.params.step ${n} outside -4..100`);
  }
  return n === 0 ? 0 : n; // "-0" and a JSON -0 are step 0, not -0
}

export function parseProgressMessage(payload: string | Uint8Array): ProgressMessage {
  const root = decodeJson(payload, 'progress');
  const id = parseId(root.id, MAX_U32, 'progress');
  const params = asObject(root.params, 'progress.params');
  const step = parseStep(params.step);
  const desc = has(params, 'desc') ? checkDesc(params.desc, 'progress.params.desc') : '';
  const module = parseModule(params, 'progress.params');
  const out: ProgressMessage = { id, step, desc };
  if (module !== undefined) out.module = module;
  return out;
}

export function buildProgressMessage(m: ProgressMessage): string {
  const id = parseId(m.id, MAX_U32, 'progress');
  // Aliyun carries step as a decimal string.
  const params: Json = { step: String(parseStep(m.step)), desc: checkDesc(m.desc, 'progress.desc') };
  if (m.module !== undefined) params.module = parseModule({ module: m.module }, 'progress');
  return bounded('progress', JSON.stringify({ id, params }));
}

// ---------------------------------------------------------------- upgrade

function parseSignMethod(v: unknown): SignMethod {
  // Aliyun documents "MD5"/"SHA256" while devices see "Md5" on the wire;
  // AliOS Things upper-cases before comparing, so do we.
  if (typeof v !== 'string') throw new MessageError('upgrade.data.signMethod must be a string');
  const u = v.toUpperCase();
  if (u === 'SHA256') return 'SHA256';
  if (u === 'MD5') return 'Md5';
  throw new MessageError(`upgrade.data.signMethod ${preview(v)} not supported`);
}

export const signHexLength = (m: SignMethod): number => (m === 'SHA256' ? 64 : 32);

function parseDigestSign(v: unknown): string {
  if (typeof v !== 'string' || v.length > 2048 || v.length % 4 !== 0 || !BASE64_RE.test(v)) {
    throw new MessageError('upgrade.data.digestsign must be canonical base64');
  }
  const bytes = Buffer.from(v, 'base64').length;
  if (bytes < 128 || bytes > 1024) throw new MessageError(`upgrade.data.digestsign of ${bytes} bytes is not an RSA signature`);
  return v;
}

function parseExtData(v: unknown): Record<string, string> {
  const o = asObject(v, 'upgrade.data.extData');
  const keys = Object.keys(o);
  if (keys.length > 32) throw new MessageError('upgrade.data.extData has too many entries');
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const k of keys) {
    const val = o[k];
    if (k.length === 0 || k.length > 64 || typeof val !== 'string' || val.length > 4096) {
      throw new MessageError(`upgrade.data.extData entry ${JSON.stringify(k.slice(0, 64))} is invalid`);
    }
    out[k] = val;
  }
  return { ...out };
}

function parseUpgradeData(d: Json, id: string, opts: UpgradeParseOptions): UpgradeInfo {
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  const size = parsePositiveInt(d.size, maxSize, 'upgrade.data.size');
  const version = parseVersionField(d.version, 'upgrade.data.version');
  const url = validateDownloadUrl(d.url, opts.allowedProtocols);
  let signMethod: SignMethod;
  let sign: string;
  const md5 = has(d, 'md5') ? parseHex(d.md5, 32, 'upgrade.data.md5') : undefined;
  if (has(d, 'signMethod')) {
    signMethod = parseSignMethod(d.signMethod);
    sign = parseHex(d.sign, signHexLength(signMethod), 'upgrade.data.sign');
    if (signMethod === 'Md5' && md5 !== undefined && md5 !== sign) {
      throw new MessageError('upgrade.data.md5 disagrees with sign');
    }
  } else {
    // Old protocol without signMethod: the md5 field is the only digest.
    if (md5 === undefined) throw new MessageError('upgrade.data has neither signMethod nor md5');
    signMethod = 'Md5';
    sign = md5;
  }
  let isDiff: 0 | 1 = 0;
  if (has(d, 'isDiff')) {
    if (d.isDiff !== 0 && d.isDiff !== 1) throw new MessageError('upgrade.data.isDiff must be 0 or 1');
    isDiff = d.isDiff === 1 ? 1 : 0; // a JSON -0 is 0
  }
  const out: UpgradeInfo = { id, size, version, url, signMethod, sign, isDiff };
  if (md5 !== undefined) out.md5 = md5;
  // AliOS Things reads the misspelt "splictSize"; accept either, they must agree.
  const split = has(d, 'splitSize') ? d.splitSize : d.splictSize;
  if (has(d, 'splitSize') && has(d, 'splictSize') && d.splitSize !== d.splictSize) {
    throw new MessageError('upgrade.data.splitSize and splictSize disagree');
  }
  // Not capped at the file size: a 64 KiB split with a 10 KiB package is normal, and the
  // package header is authoritative (the device checks the two agree).
  if (split !== undefined && split !== null) out.splitSize = parsePositiveInt(split, MAX_SPLIT_SIZE, 'upgrade.data.splitSize');
  if (has(d, 'diffVersion')) out.diffVersion = parseVersionField(d.diffVersion, 'upgrade.data.diffVersion');
  if (has(d, 'digestsign')) out.digestsign = parseDigestSign(d.digestsign);
  const module = parseModule(d, 'upgrade.data');
  if (module !== undefined) out.module = module;
  if (has(d, 'extData')) out.extData = parseExtData(d.extData);
  return out;
}

export function parseUpgradeMessage(payload: string | Uint8Array, opts: UpgradeParseOptions = {}): UpgradeInfo {
  const root = decodeJson(payload, 'upgrade');
  if (root.code !== '1000' && root.code !== 1000) throw new MessageError(`upgrade.code ${preview(root.code)} is not "1000"`);
  if (root.message !== 'success') throw new MessageError('upgrade.message is not "success"');
  const id = parseId(root.id, Number.MAX_SAFE_INTEGER, 'upgrade');
  const data = asObject(root.data, 'upgrade.data');
  if (opts.device !== undefined) checkAddressee(root, data, opts.device);
  return parseUpgradeData(data, id, opts);
}

function checkAddressee(root: Json, data: Json, device: { productKey: string; deviceName: string }): void {
  for (const [o, where] of [[root, 'upgrade'], [data, 'upgrade.data']] as const) {
    for (const key of ['productKey', 'deviceName'] as const) {
      const v = o[key];
      if (has(o, key) && v !== device[key]) {
        // preview() for an array or object: String() of arrays nested thousands deep overflows the stack.
        const shown = typeof v === 'object' && v !== null ? preview(v) : JSON.stringify(String(v).slice(0, 64));
        throw new MessageError(`${where}.${key} ${shown} is not this device (${device.productKey}/${device.deviceName})`);
      }
    }
  }
}

function toWireData(n: UpgradeInfo): Json {
  const data: Json = {
    size: n.size,
    version: n.version,
    url: n.url,
    signMethod: n.signMethod,
    sign: n.sign,
    isDiff: n.isDiff,
  };
  if (n.md5 !== undefined) data.md5 = n.md5;
  if (n.splitSize !== undefined) data.splitSize = n.splitSize;
  if (n.diffVersion !== undefined) data.diffVersion = n.diffVersion;
  if (n.digestsign !== undefined) data.digestsign = n.digestsign;
  if (n.module !== undefined) data.module = n.module;
  if (n.extData !== undefined) data.extData = n.extData;
  return data;
}

export function buildUpgradeMessage(info: UpgradeInfo, opts: UpgradeParseOptions = {}): string {
  const id = parseId(info.id, Number.MAX_SAFE_INTEGER, 'upgrade');
  // Validate (and normalise hex case) by parsing what we are about to send:
  // a builder never emits what the parser would reject.
  const n = parseUpgradeData(toWireData(info), id, opts);
  return bounded('upgrade', JSON.stringify({ code: '1000', data: toWireData(n), id: Number(id), message: 'success' }));
}

// ---------------------------------------------------------------- cancel (an otadiff extension)

/**
 * The cloud cancelled the update to `version` (its rollout was cancelled): a device still
 * downloading it stops; one that has handed it to its bootloader finishes. On the upgrade topic,
 * told apart from an upgrade notice by its code; a device that knows only Aliyun's notices drops it
 * as malformed.
 */
export interface CancelNotice {
  id: string;
  version: string;
}

export const CANCEL_CODE = 'cancel';

export function buildCancelMessage(c: CancelNotice): string {
  const id = parseId(c.id, Number.MAX_SAFE_INTEGER, 'cancel');
  return bounded('cancel', JSON.stringify({ code: CANCEL_CODE, data: { version: parseVersionField(c.version, 'cancel.version') }, id: Number(id), message: 'cancelled' }));
}

export type CloudNotice = { kind: 'upgrade'; info: UpgradeInfo } | { kind: 'cancel'; cancel: CancelNotice };

/** An upgrade or a cancel notice, parsed as strictly as parseUpgradeMessage. */
export function parseCloudNotice(payload: string | Uint8Array, opts: UpgradeParseOptions = {}): CloudNotice {
  const root = decodeJson(payload, 'notice');
  if (root.code !== CANCEL_CODE) return { kind: 'upgrade', info: parseUpgradeMessage(payload, opts) };
  const id = parseId(root.id, Number.MAX_SAFE_INTEGER, 'cancel');
  const data = asObject(root.data, 'cancel.data');
  if (opts.device !== undefined) checkAddressee(root, data, opts.device);
  return { kind: 'cancel', cancel: { id, version: parseVersionField(data.version, 'cancel.data.version') } };
}
