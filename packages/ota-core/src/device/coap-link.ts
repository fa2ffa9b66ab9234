// The device's half of the OTA notices over CoAP (AliOS' trans_protcol alternative to MQTT): the same JSON
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

import { CoapChannel, type CoapTiming } from './coap-download.js';
import { decodeBlockOption, SESSION_TOKEN_RE, type BlockOption } from '../protocol/coap.js';
import {
  buildInformMessage,
  buildProgressMessage,
  MAX_MESSAGE_BYTES,
  parseCloudNotice,
  type CancelNotice,
  type InformMessage,
  type ProgressMessage,
  type UpgradeInfo,
  type UpgradeParseOptions,
} from '../protocol/messages.js';
import { deriveMqttCredentials, type DeriveOptions, type DeviceIdentity } from '../protocol/mqtt-auth.js';
import { informTopic, progressTopic, upgradeTopic } from '../protocol/topics.js';

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
  onCancel(handler: (c: CancelNotice) => void): void;
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
    if (typeof t !== 'string' || !SESSION_TOKEN_RE.test(t)) throw new OtaCoapError('PROTOCOL', 'the sign-in answer holds no token');
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
  const cancels: Array<(c: CancelNotice) => void> = [];
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
      const n = parseCloudNotice(body, opts.upgradeParse);
      const id = n.kind === 'upgrade' ? n.info.id : `cancel-${n.cancel.id}`;
      if (id === lastNotice) return; // the same notice until the cloud hears from us
      lastNotice = id;
      if (n.kind === 'upgrade') for (const h of handlers) h(n.info);
      else for (const h of cancels) h(n.cancel);
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
    onCancel: (h) => void cancels.push(h),
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

