// The cloud's half of the OTA notices over CoAP (AliOS' trans_protcol alternative to MQTT): the same JSON
// messages as the MQTT topics, on the same paths of the cloud's CoAP server.
//
//   POST /auth                              {clientId, username, password} -> {token}
//   POST /ota/device/inform/{pk}/{dn}?token=…    inform JSON        -> 2.04
//   POST /ota/device/progress/{pk}/{dn}?token=…  progress JSON      -> 2.04
//   GET  /ota/device/upgrade/{pk}/{dn}?token=…   -> 2.05 the pending notice (empty: none)
//
// The sign-in is the MQTT one (deriveMqttCredentials / verifyMqttCredentials), once per
// session like Aliyun's CoAP auth; the token it yields names one device, and a request
// for another device's path is refused (4.03). The device learns of upgrades by polling.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, OutgoingMessage } from 'coap';
import { SESSION_TOKEN_RE } from '../protocol/coap.js';
import { MAX_MESSAGE_BYTES, parseInformMessage, parseProgressMessage, type InformMessage, type ProgressMessage } from '../protocol/messages.js';
import { MqttAuthError, verifyMqttCredentials, type MqttSignMethod } from '../protocol/mqtt-auth.js';
import { SignInGuard, type SignInGuardOptions } from '../protocol/sign-in-guard.js';
import { lookupFor, type AsyncDeviceSecretLookup } from './secret-lookup.js';
import { deviceKey as key, parseOtaTopic, type DeviceRef } from '../protocol/topics.js';

export interface CoapNoticeServerOptions {
  registry: AsyncDeviceSecretLookup;
  allowedSignMethods?: readonly MqttSignMethod[];
  /** Lifetime of a session token (default 24 h). */
  tokenTtlMs?: number;
  /** A device signed in: a new session (the cloud drops a notice from the last one). */
  onAuth?: (device: DeviceRef) => void;
  onInform: (device: DeviceRef, msg: InformMessage) => void;
  onProgress: (device: DeviceRef, msg: ProgressMessage) => void;
  onInvalid?: (path: string, error: Error) => void;
  now?: () => number;
  /** Sign-in freshness (timestamp window, replay check); default a guard on `now`, ±15 min. */
  signIn?: SignInGuard | SignInGuardOptions;
}

export interface CoapNoticeServer {
  /** Answers one request of the CoAP server (paths that hold no package). */
  handle(req: IncomingMessage, res: OutgoingMessage): void;
  /** The notice a device's next poll gets (a built upgrade message). */
  setNotice(device: DeviceRef, message: string): void;
  clearNotice(device: DeviceRef): void;
  /** Ends the device's session (it was removed or its secret rotated): its token stops working. */
  endSession(device: DeviceRef): boolean;
}

export function createCoapNoticeServer(o: CoapNoticeServerOptions): CoapNoticeServer {
  const ttl = o.tokenTtlMs ?? 86_400_000;
  const now = o.now ?? Date.now;
  const guard = o.signIn instanceof SignInGuard ? o.signIn : new SignInGuard({ now, ...o.signIn });
  // One live token per device keeps the table as small as the registry.
  const tokens = new Map<string, { device: DeviceRef; expires: number }>();
  const tokenOf = new Map<string, string>();
  const notices = new Map<string, string>();

  const reply = (res: OutgoingMessage, code: string, body?: string): void => {
    res.code = code;
    res.end(body === undefined ? undefined : Buffer.from(body, 'utf8'));
  };

  async function auth(req: IncomingMessage, res: OutgoingMessage): Promise<void> {
    let device: DeviceRef;
    try {
      if (req.payload.length > 1024) throw new Error('auth payload too large');
      const body = JSON.parse(req.payload.toString('utf8')) as { clientId?: unknown; username?: unknown; password?: unknown };
      if (typeof body !== 'object' || body === null || typeof body.clientId !== 'string' || typeof body.username !== 'string' || typeof body.password !== 'string') {
        throw new Error('auth needs clientId, username and password strings');
      }
      const lookup = await lookupFor(body.username, o.registry);
      const v = verifyMqttCredentials(body.clientId, body.username, body.password, lookup, { allowedSignMethods: o.allowedSignMethods });
      device = { productKey: v.productKey, deviceName: v.deviceName };
      const fresh = guard.admit(key(device), v.timestamp, body.password);
      if (!fresh.ok) throw new MqttAuthError(fresh.code, fresh.message);
    } catch (e) {
      o.onInvalid?.('/auth', e as Error);
      return reply(res, '4.01');
    }
    const old = tokenOf.get(key(device));
    if (old !== undefined) tokens.delete(old);
    const token = randomBytes(16).toString('hex');
    tokens.set(token, { device, expires: now() + ttl });
    tokenOf.set(key(device), token);
    o.onAuth?.(device);
    reply(res, '2.05', JSON.stringify({ token }));
  }

  return {
    handle(req, res) {
      const [path, query = ''] = (req.url ?? '/').split('?', 2);
      if (path === '/auth') return req.method === 'POST' ? void auth(req, res) : reply(res, '4.05');
      const t = parseOtaTopic(path);
      if (t === null) return reply(res, '4.04');
      const token = query.split('&').find((q) => q.startsWith('token='))?.slice(6) ?? '';
      const session = SESSION_TOKEN_RE.test(token) ? tokens.get(token) : undefined;
      if (session === undefined || session.expires <= now()) {
        if (session !== undefined) tokens.delete(token);
        return reply(res, '4.01');
      }
      const d = session.device;
      if (d.productKey !== t.productKey || d.deviceName !== t.deviceName) return reply(res, '4.03');
      if (t.kind === 'upgrade') {
        if (req.method !== 'GET') return reply(res, '4.05');
        return reply(res, '2.05', notices.get(key(d)) ?? '');
      }
      if (req.method !== 'POST') return reply(res, '4.05');
      if (req.payload.length > MAX_MESSAGE_BYTES) return reply(res, '4.13');
      try {
        if (t.kind === 'inform') {
          const m = parseInformMessage(req.payload);
          reply(res, '2.04');
          o.onInform(d, m);
        } else {
          const m = parseProgressMessage(req.payload);
          reply(res, '2.04');
          o.onProgress(d, m);
        }
      } catch (e) {
        o.onInvalid?.(path, e as Error);
        reply(res, '4.00');
      }
    },
    setNotice: (d, message) => void notices.set(key(d), message),
    clearNotice: (d) => void notices.delete(key(d)),
    endSession(d) {
      const t = tokenOf.get(key(d));
      tokenOf.delete(key(d));
      notices.delete(key(d));
      return t !== undefined && tokens.delete(t);
    },
  };
}
