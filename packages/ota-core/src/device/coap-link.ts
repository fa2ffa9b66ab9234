// OTA notices over CoAP (AliOS' trans_protcol alternative to MQTT): the same JSON
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
import { CoapChannel, decodeBlockOption, type BlockOption, type CoapTiming } from './coap-download.js';
import {
  buildInformMessage,
  buildProgressMessage,
  MAX_MESSAGE_BYTES,
  parseInformMessage,
  parseProgressMessage,
  parseUpgradeMessage,
  type InformMessage,
  type ProgressMessage,
  type UpgradeInfo,
  type UpgradeParseOptions,
} from '../protocol/messages.js';
import { deriveMqttCredentials, verifyMqttCredentials, type DeriveOptions, type DeviceIdentity, type DeviceSecretLookup, type MqttSignMethod } from '../protocol/mqtt-auth.js';
import type { DeviceRef } from './mqtt-link.js';
import { informTopic, parseOtaTopic, progressTopic, upgradeTopic } from '../protocol/topics.js';

export class OtaCoapError extends Error {
  override name = 'OtaCoapError';
  constructor(
    readonly code: 'AUTH' | 'NETWORK' | 'PROTOCOL',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const TOKEN_RE = /^[0-9a-f]{32}$/;
const key = (d: DeviceRef): string => `${d.productKey}/${d.deviceName}`;

// ------------------------------------------------------------ cloud side

export interface CoapNoticeServerOptions {
  registry: DeviceSecretLookup;
  allowedSignMethods?: readonly MqttSignMethod[];
  /** Lifetime of a session token (default 24 h). */
  tokenTtlMs?: number;
  /** A device signed in: a new session (the cloud drops a notice from the last one). */
  onAuth?: (device: DeviceRef) => void;
  onInform: (device: DeviceRef, msg: InformMessage) => void;
  onProgress: (device: DeviceRef, msg: ProgressMessage) => void;
  onInvalid?: (path: string, error: Error) => void;
  now?: () => number;
}

export interface CoapNoticeServer {
  /** Answers one request of the CoAP server (paths that hold no package). */
  handle(req: IncomingMessage, res: OutgoingMessage): void;
  /** The notice a device's next poll gets (a built upgrade message). */
  setNotice(device: DeviceRef, message: string): void;
  clearNotice(device: DeviceRef): void;
}

export function createCoapNoticeServer(o: CoapNoticeServerOptions): CoapNoticeServer {
  const ttl = o.tokenTtlMs ?? 86_400_000;
  const now = o.now ?? Date.now;
  // One live token per device keeps the table as small as the registry.
  const tokens = new Map<string, { device: DeviceRef; expires: number }>();
  const tokenOf = new Map<string, string>();
  const notices = new Map<string, string>();

  const reply = (res: OutgoingMessage, code: string, body?: string): void => {
    res.code = code;
    res.end(body === undefined ? undefined : Buffer.from(body, 'utf8'));
  };

  function auth(req: IncomingMessage, res: OutgoingMessage): void {
    let device: DeviceRef;
    try {
      if (req.payload.length > 1024) throw new Error('auth payload too large');
      const body = JSON.parse(req.payload.toString('utf8')) as { clientId?: unknown; username?: unknown; password?: unknown };
      if (typeof body !== 'object' || body === null || typeof body.clientId !== 'string' || typeof body.username !== 'string' || typeof body.password !== 'string') {
        throw new Error('auth needs clientId, username and password strings');
      }
      const v = verifyMqttCredentials(body.clientId, body.username, body.password, o.registry, { allowedSignMethods: o.allowedSignMethods });
      device = { productKey: v.productKey, deviceName: v.deviceName };
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
      if (path === '/auth') return req.method === 'POST' ? auth(req, res) : reply(res, '4.05');
      const t = parseOtaTopic(path);
      if (t === null) return reply(res, '4.04');
      const token = query.split('&').find((q) => q.startsWith('token='))?.slice(6) ?? '';
      const session = TOKEN_RE.test(token) ? tokens.get(token) : undefined;
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
  };
}

// ------------------------------------------------------------ device side

export interface CoapDeviceClientOptions extends DeriveOptions {
  /** Ask for an upgrade notice this often (ms; default 5000). */
  pollMs?: number;
  upgradeParse?: UpgradeParseOptions;
  onInvalid?: (path: string, error: Error) => void;
  /** A poll failed (the link keeps polling). */
  onError?: (error: Error) => void;
  /** RFC 7252 ACK_TIMEOUT (default 2000 ms) and MAX_RETRANSMIT (default 4). */
  ackTimeoutMs?: number;
  maxRetransmit?: number;
}

export interface OtaCoapDeviceClient {
  reportVersion(version: string, module?: string): Promise<void>;
  reportProgress(step: number, desc?: string, module?: string): Promise<void>;
  onUpgrade(handler: (info: UpgradeInfo) => void): void;
  close(): Promise<void>;
}

let nextId = 1;
const newMessageId = (): string => String((nextId = (nextId % 4294967295) + 1));

/** Signs in at the cloud's CoAP server (coap://host:port) and starts polling for notices. */
export async function connectOtaDeviceCoap(url: string, identity: DeviceIdentity, opts: CoapDeviceClientOptions = {}): Promise<OtaCoapDeviceClient> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OtaCoapError('PROTOCOL', `not a URL: ${url}`);
  }
  if (u.protocol !== 'coap:') throw new OtaCoapError('PROTOCOL', `not a coap:// URL: ${url}`);
  const host = u.hostname;
  const channel = new CoapChannel(host, u.port === '' ? 5683 : Number(u.port));
  await channel.open(host.startsWith('127.') || host === 'localhost' ? '127.0.0.1' : undefined);
  // close() aborts the exchange in flight: no retransmission timer outlives the link.
  const abort = new AbortController();
  const timing: CoapTiming = { ackTimeoutMs: opts.ackTimeoutMs ?? 2000, maxRetransmit: opts.maxRetransmit ?? 4, responseTimeoutMs: 10_000, random: Math.random, signal: abort.signal };
  const { productKey: pk, deviceName: dn } = identity;
  const seg = (topic: string): string[] => topic.split('/').filter((s) => s.length > 0);

  // The channel carries one exchange at a time: requests queue up.
  let queue: Promise<unknown> = Promise.resolve();
  const exchange = (code: 'GET' | 'POST', path: string[], query: string[], payload?: string, block?: BlockOption) => {
    const run = queue.then(() => channel.request({ code, path, query, block, payload: payload === undefined ? undefined : Buffer.from(payload, 'utf8') }, timing));
    queue = run.catch(() => {});
    return run.then((x) => x.packet);
  };

  let token = '';
  const signIn = async (): Promise<void> => {
    const c = deriveMqttCredentials(identity, opts);
    const p = await exchange('POST', ['auth'], [], JSON.stringify({ clientId: c.clientId, username: c.username, password: c.password })).catch((e: unknown) => {
      throw new OtaCoapError('NETWORK', `no answer from ${url}: ${(e as Error).message}`, { cause: e });
    });
    if (p.code !== '2.05') throw new OtaCoapError('AUTH', `the cloud refused the device's sign-in (CoAP ${p.code})`);
    const t = (JSON.parse(p.payload.toString('utf8')) as { token?: unknown }).token;
    if (typeof t !== 'string' || !TOKEN_RE.test(t)) throw new OtaCoapError('PROTOCOL', 'the sign-in answer holds no token');
    token = t;
  };
  /** A request with the session token; signs in again once when the token expired. */
  const call = async (code: 'GET' | 'POST', topic: string, payload?: string, block?: BlockOption) => {
    for (let attempt = 0; ; attempt++) {
      const p = await exchange(code, seg(topic), [`token=${token}`], payload, block);
      if (p.code === '4.01' && attempt === 0) {
        await signIn();
        continue;
      }
      if (!p.code.startsWith('2.')) throw new OtaCoapError(p.code === '4.01' || p.code === '4.03' ? 'AUTH' : 'PROTOCOL', `CoAP ${p.code} for ${topic}`);
      return p;
    }
  };

  try {
    await signIn();
  } catch (e) {
    abort.abort();
    await queue;
    await channel.close();
    throw e;
  }

  const handlers: Array<(info: UpgradeInfo) => void> = [];
  let lastNotice: string | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;
  /** The notice, gathered block by block when the server splits it (Block2, >= 1 KiB). */
  const fetchNotice = async (): Promise<Buffer> => {
    const topic = upgradeTopic(pk, dn);
    let p = await call('GET', topic);
    const parts: Buffer[] = [p.payload];
    let total = p.payload.length;
    for (let num = 0; ; ) {
      const raw = p.options.find((o) => o.name === 'Block2')?.value;
      if (raw === undefined) break;
      const b = decodeBlockOption(raw);
      if (b.num !== num || (b.more && p.payload.length !== b.size)) throw new OtaCoapError('PROTOCOL', `notice block ${b.num} out of order or short`);
      if (!b.more) break;
      if (total > MAX_MESSAGE_BYTES) throw new OtaCoapError('PROTOCOL', `a notice over ${MAX_MESSAGE_BYTES} bytes`);
      num++;
      p = await call('GET', topic, undefined, { num, more: false, size: b.size });
      parts.push(p.payload);
      total += p.payload.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
  };
  const poll = async (): Promise<void> => {
    try {
      const body = await fetchNotice();
      if (closed || body.length === 0) return;
      const info = parseUpgradeMessage(body, opts.upgradeParse);
      if (info.id === lastNotice) return; // the same notice until the cloud hears from us
      lastNotice = info.id;
      for (const h of handlers) h(info);
    } catch (e) {
      if (closed) return;
      if ((e as Error).name === 'MessageError') opts.onInvalid?.(upgradeTopic(pk, dn), e as Error);
      else opts.onError?.(e as Error);
    }
  };
  const schedule = (): void => {
    if (closed) return;
    timer = setTimeout(() => {
      polling = poll().finally(schedule);
    }, opts.pollMs ?? 5000);
  };
  schedule();

  return {
    async reportVersion(version, module) {
      const m: InformMessage = { id: newMessageId(), version };
      if (module !== undefined) m.module = module;
      await call('POST', informTopic(pk, dn), buildInformMessage(m));
    },
    async reportProgress(step, desc = '', module) {
      const m: ProgressMessage = { id: newMessageId(), step, desc };
      if (module !== undefined) m.module = module;
      await call('POST', progressTopic(pk, dn), buildProgressMessage(m));
    },
    onUpgrade: (h) => void handlers.push(h),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      abort.abort(new Error('link closed'));
      await polling?.catch(() => {});
      await queue;
      await channel.close();
    },
  };
}
