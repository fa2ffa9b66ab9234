// Alibaba Cloud IoT MQTT sign-in (unique-certificate-per-device):
//   mqttClientId = clientId + "|securemode=3,signmethod=hmacsha256,timestamp=<ms>|"
//   mqttUsername = deviceName + "&" + productKey
//   mqttPassword = hex(HMAC_<signmethod>(deviceSecret, content))
// where content concatenates name+value of the submitted parameters sorted by
// name: clientId, deviceName, productKey, timestamp (clientId and timestamp are
// optional and, when sent, must equal the ones inside mqttClientId).

import { createHmac, timingSafeEqual } from 'node:crypto';
import { isValidDeviceName, isValidProductKey } from './topics.js';

export class MqttAuthError extends Error {
  override name = 'MqttAuthError';
  constructor(
    readonly code: 'MALFORMED' | 'UNKNOWN_DEVICE' | 'BAD_SIGNATURE' | 'STALE_TIMESTAMP' | 'REPLAYED' | 'UNSUPPORTED_SIGN_METHOD',
    message: string,
  ) {
    super(message);
  }
}

export type MqttSignMethod = 'hmacsha256' | 'hmacsha1' | 'hmacmd5';

const HMAC_ALG: Record<MqttSignMethod, string> = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' };
const HMAC_LEN: Record<MqttSignMethod, number> = { hmacsha256: 32, hmacsha1: 20, hmacmd5: 16 };

/** The cloud's own sign-in at a broker (not a device's). */
export interface ServiceCredential {
  username: string;
  password: string;
}

export interface DeviceIdentity {
  productKey: string;
  deviceName: string;
  deviceSecret: string;
}

export interface MqttCredentials {
  clientId: string;
  username: string;
  password: string;
}

export interface DeriveOptions {
  /** Client id before the '|' (default `${productKey}.${deviceName}`, Aliyun's default). */
  clientIdBase?: string;
  /** Milliseconds since the epoch; default Date.now(). `null` omits the timestamp. */
  timestamp?: number | null;
  signMethod?: MqttSignMethod;
  /** 2 = TLS, 3 = plain TCP (default 3). */
  secureMode?: 2 | 3;
}

/** Anything that can answer "what is this device's secret?" (DeviceRegistry does). */
export interface DeviceSecretLookup {
  getDeviceSecret(productKey: string, deviceName: string): string | undefined;
}

export interface VerifyOptions {
  /** Clock in ms; with it, a timestamp is required and must lie within maxSkewMs. */
  now?: () => number;
  maxSkewMs?: number;
  allowedSignMethods?: readonly MqttSignMethod[];
}

export interface VerifiedDevice {
  productKey: string;
  deviceName: string;
  clientIdBase: string;
  timestamp?: number;
  signMethod: MqttSignMethod;
  /** 2: the device claims TLS; 3: plain TCP. */
  secureMode: 2 | 3;
}

const CLIENT_ID_BASE_RE = /^[A-Za-z0-9_.:@-]{0,64}$/;
const EXT_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const EXT_VALUE_RE = /^[A-Za-z0-9_.:-]{0,64}$/;
const TIMESTAMP_RE = /^[0-9]{1,16}$/;

export function signContent(params: { clientId?: string; deviceName: string; productKey: string; timestamp?: string }): string {
  // Names already in dictionary order: clientId < deviceName < productKey < timestamp.
  let s = '';
  if (params.clientId !== undefined && params.clientId !== '') s += 'clientId' + params.clientId;
  s += 'deviceName' + params.deviceName + 'productKey' + params.productKey;
  if (params.timestamp !== undefined) s += 'timestamp' + params.timestamp;
  return s;
}

function hmac(method: MqttSignMethod, secret: string, content: string): Buffer {
  return createHmac(HMAC_ALG[method], secret).update(content, 'utf8').digest();
}

export function deriveMqttCredentials(identity: DeviceIdentity, opts: DeriveOptions = {}): MqttCredentials {
  const { productKey, deviceName, deviceSecret } = identity;
  if (!isValidProductKey(productKey) || !isValidDeviceName(deviceName)) {
    throw new MqttAuthError('MALFORMED', 'invalid productKey or deviceName');
  }
  if (typeof deviceSecret !== 'string' || deviceSecret.length === 0) throw new MqttAuthError('MALFORMED', 'empty deviceSecret');
  const base = opts.clientIdBase ?? `${productKey}.${deviceName}`;
  if (!CLIENT_ID_BASE_RE.test(base)) throw new MqttAuthError('MALFORMED', 'clientIdBase has characters outside [A-Za-z0-9_.:@-] or is too long');
  const method = opts.signMethod ?? 'hmacsha256';
  if (!(method in HMAC_ALG)) throw new MqttAuthError('UNSUPPORTED_SIGN_METHOD', `sign method ${method}`);
  const ts = opts.timestamp === null ? undefined : String(Math.trunc(opts.timestamp ?? Date.now()));
  const ext = [`securemode=${opts.secureMode ?? 3}`, `signmethod=${method}`];
  if (ts !== undefined) ext.push(`timestamp=${ts}`);
  const password = hmac(method, deviceSecret, signContent({ clientId: base, deviceName, productKey, timestamp: ts })).toString('hex');
  return { clientId: `${base}|${ext.join(',')}|`, username: `${deviceName}&${productKey}`, password };
}

interface ParsedClientId {
  base: string;
  ext: Map<string, string>;
}

export function parseMqttClientId(clientId: string): ParsedClientId {
  if (typeof clientId !== 'string' || clientId.length > 256) throw new MqttAuthError('MALFORMED', 'clientId too long');
  const first = clientId.indexOf('|');
  if (first < 0 || clientId[clientId.length - 1] !== '|' || first === clientId.length - 1) {
    throw new MqttAuthError('MALFORMED', 'clientId lacks the |extension| block');
  }
  const base = clientId.slice(0, first);
  if (!CLIENT_ID_BASE_RE.test(base)) throw new MqttAuthError('MALFORMED', 'clientId base has invalid characters');
  const inner = clientId.slice(first + 1, -1);
  const ext = new Map<string, string>();
  for (const pair of inner.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new MqttAuthError('MALFORMED', 'clientId extension is not key=value');
    const k = pair.slice(0, eq);
    const v = pair.slice(eq + 1);
    if (!EXT_KEY_RE.test(k) || !EXT_VALUE_RE.test(v)) throw new MqttAuthError('MALFORMED', 'clientId extension has invalid characters');
    if (ext.has(k)) throw new MqttAuthError('MALFORMED', `clientId extension ${k} repeated`);
    ext.set(k, v);
  }
  return { base, ext };
}

// A fixed key used when the device is unknown so the reply time does not
// reveal whether a (productKey, deviceName) pair exists.
const DUMMY_SECRET = 'otadiff-unknown-device-dummy-secret';

/**
 * Broker-side check of a CONNECT's credentials. Returns the device on success,
 * throws MqttAuthError otherwise.
 */
export function verifyMqttCredentials(
  clientId: string,
  username: string | undefined,
  password: string | Uint8Array | undefined,
  registry: DeviceSecretLookup,
  opts: VerifyOptions = {},
): VerifiedDevice {
  if (typeof username !== 'string' || password === undefined) throw new MqttAuthError('MALFORMED', 'username and password are required');
  const amp = username.indexOf('&');
  if (amp < 0 || username.indexOf('&', amp + 1) >= 0) throw new MqttAuthError('MALFORMED', 'username must be deviceName&productKey');
  const deviceName = username.slice(0, amp);
  const productKey = username.slice(amp + 1);
  if (!isValidDeviceName(deviceName) || !isValidProductKey(productKey)) throw new MqttAuthError('MALFORMED', 'username has an invalid deviceName or productKey');
  const { base, ext } = parseMqttClientId(clientId);
  const securemode = ext.get('securemode');
  if (securemode !== '2' && securemode !== '3') throw new MqttAuthError('MALFORMED', 'securemode must be 2 or 3');
  const method = ext.get('signmethod') as MqttSignMethod | undefined;
  const allowed = opts.allowedSignMethods ?? ['hmacsha256'];
  if (method === undefined || !(method in HMAC_ALG) || !allowed.includes(method)) {
    throw new MqttAuthError('UNSUPPORTED_SIGN_METHOD', `signmethod ${String(method)} not accepted`);
  }
  const tsText = ext.get('timestamp');
  let timestamp: number | undefined;
  if (tsText !== undefined) {
    if (!TIMESTAMP_RE.test(tsText)) throw new MqttAuthError('MALFORMED', 'timestamp is not a decimal millisecond count');
    timestamp = Number(tsText);
  }
  const pwText = typeof password === 'string' ? password : Buffer.from(password).toString('latin1');
  const expectedLen = HMAC_LEN[method] * 2;
  if (pwText.length !== expectedLen || !/^[0-9a-fA-F]+$/.test(pwText)) {
    throw new MqttAuthError('BAD_SIGNATURE', 'password is not a hex HMAC of the right length');
  }
  const secret = registry.getDeviceSecret(productKey, deviceName);
  const expected = hmac(method, secret ?? DUMMY_SECRET, signContent({ clientId: base, deviceName, productKey, timestamp: tsText }));
  const given = Buffer.from(pwText, 'hex');
  const match = timingSafeEqual(expected, given);
  if (secret === undefined) throw new MqttAuthError('UNKNOWN_DEVICE', 'unknown device');
  if (!match) throw new MqttAuthError('BAD_SIGNATURE', 'password does not match');
  if (opts.now) {
    if (timestamp === undefined) throw new MqttAuthError('STALE_TIMESTAMP', 'timestamp required');
    const skew = Math.abs(opts.now() - timestamp);
    if (skew > (opts.maxSkewMs ?? 5 * 60_000)) throw new MqttAuthError('STALE_TIMESTAMP', `timestamp off by ${skew} ms`);
  }
  const out: VerifiedDevice = { productKey, deviceName, clientIdBase: base, signMethod: method, secureMode: securemode === '2' ? 2 : 3 };
  if (timestamp !== undefined) out.timestamp = timestamp;
  return out;
}
