// The cloud's OTA client over mqtt.js: collects informs and progress, pushes upgrade notices.
// Incoming payloads go through the strict parsers; malformed ones are reported through onInvalid
// and otherwise dropped.
//
// A message is acknowledged (PUBACK) only once its handler has finished (its row update
// committed), so a message whose worker dies before that stays with the broker. With `shared` (an
// external MQTT 5 broker, several workers) the subscriptions are shared ($share/GROUP/…: each message
// goes to one worker) and the session outlives the connection, so a live worker can resume a dead
// one's session and handle what the broker kept for it (drainSession). A lost connection is logged,
// retried with backoff and resubscribed; its return is logged too.

import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { buildCancelMessage, buildUpgradeMessage, parseInformMessage, parseProgressMessage, type CancelNotice, type InformMessage, type ProgressMessage, type UpgradeInfo } from '../protocol/messages.js';
import type { ServiceCredential } from '../protocol/mqtt-auth.js';
import { backoffDelay, type BackoffOptions } from '../protocol/retry.js';
import { otaTopicFilter, parseOtaTopic, upgradeTopic, type DeviceRef } from '../protocol/topics.js';

export class OtaCloudMqttError extends Error {
  override name = 'OtaCloudMqttError';
}

type Handler<M> = (d: DeviceRef, m: M) => void | Promise<void>;

export interface OtaCloudClient {
  /** The current connection (replaced after a reconnect). */
  readonly mqtt: MqttClient;
  readonly connected: boolean;
  onInform(handler: Handler<InformMessage>): void;
  onProgress(handler: Handler<ProgressMessage>): void;
  pushUpgrade(device: DeviceRef, info: UpgradeInfo): Promise<void>;
  /** Tells a device to stop its download of `version` (its rollout was cancelled). */
  pushCancel(device: DeviceRef, cancel: CancelNotice): Promise<void>;
  /** Unsubscribes, lets the messages in hand finish, and disconnects (ending a shared session). */
  close(): Promise<void>;
}

export interface CloudClientOptions {
  /** Or a function, asked at each (re)connect: a new id starts a new session. */
  clientId?: string | (() => string);
  /** Shared subscriptions and a lasting session: several workers on an external MQTT 5 broker. */
  shared?: boolean;
  /** The shared subscription group (default otadiff-cloud). */
  group?: string;
  /** How long the broker keeps a shared session after its connection drops (s, default 3600). */
  sessionExpirySec?: number;
  /** Reconnect after a lost connection (default true). */
  reconnect?: boolean;
  backoff?: BackoffOptions;
  /**
   * Handlers in place before the first message can arrive (a message handled by none is acknowledged
   * and gone). onInform/onProgress of the client add more later.
   */
  onInform?: Handler<InformMessage>;
  onProgress?: Handler<ProgressMessage>;
  onInvalid?: (topic: string, error: Error) => void;
  /** Handler failures (the message is acknowledged all the same, or the stream would stall). */
  onError?: (error: Error) => void;
  log?: (line: string) => void;
}

const filters = (o: CloudClientOptions): string[] => {
  const plain = [otaTopicFilter('inform'), otaTopicFilter('progress')];
  return o.shared ? plain.map((f) => `$share/${o.group ?? 'otadiff-cloud'}/${f}`) : plain;
};

/** Parses and routes one message to the handlers; resolves when they have finished. */
function router(informs: Handler<InformMessage>[], progress: Handler<ProgressMessage>[], o: CloudClientOptions) {
  return async (packet: IPublishPacket): Promise<void> => {
    const t = parseOtaTopic(packet.topic);
    if (t === null) return;
    const device = { productKey: t.productKey, deviceName: t.deviceName };
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    try {
      if (t.kind === 'inform') {
        const m = parseInformMessage(payload);
        for (const h of informs) await h(device, m);
      } else if (t.kind === 'progress') {
        const m = parseProgressMessage(payload);
        for (const h of progress) await h(device, m);
      }
    } catch (e) {
      if ((e as Error).name === 'MessageError') o.onInvalid?.(packet.topic, e as Error);
      else o.onError?.(e as Error);
    }
  };
}

/** Acknowledge each message after `route` has handled it; count the messages in hand. */
function ackAfter(client: MqttClient, route: (p: IPublishPacket) => Promise<void>, inHand: { n: number; idle?: () => void; last: number }): void {
  client.handleMessage = (packet, callback) => {
    inHand.n++;
    inHand.last = Date.now();
    route(packet).finally(() => {
      inHand.n--;
      if (inHand.n === 0) inHand.idle?.();
      callback();
    });
  };
}

function connectOptions(service: ServiceCredential, clientId: string, o: CloudClientOptions, resume: boolean): IClientOptions {
  const base: IClientOptions = { clientId, username: service.username, password: service.password, reconnectPeriod: 0, connectTimeout: 10_000 };
  if (!o.shared) return base;
  return { ...base, protocolVersion: 5, clean: !resume, properties: { sessionExpiryInterval: o.sessionExpirySec ?? 3600 } };
}

/**
 * Connects with handleMessage in place before the first packet (a resumed session's messages may
 * arrive with the CONNACK); rejects with the first error or close before the CONNACK.
 */
function connectAcking(url: string, options: IClientOptions, route: (p: IPublishPacket) => Promise<void>, inHand: { n: number; idle?: () => void; last: number }): Promise<MqttClient> {
  const c = connect(url, options);
  ackAfter(c, route, inHand);
  return new Promise((resolve, reject) => {
    const onClose = (): void => fail();
    const onConnect = (): void => {
      c.removeListener('error', fail);
      c.removeListener('close', onClose);
      c.on('error', () => {}); // surfaced through 'close'
      resolve(c);
    };
    const fail = (e?: Error): void => {
      c.removeListener('connect', onConnect);
      c.removeListener('error', fail);
      c.removeListener('close', onClose);
      c.on('error', () => {});
      c.end(true);
      reject(e ?? new OtaCloudMqttError(`connection to ${url} closed before the broker accepted it`));
    };
    c.once('error', fail);
    c.once('close', onClose);
    c.once('connect', onConnect);
  });
}

async function subscribe(client: MqttClient, o: CloudClientOptions): Promise<void> {
  const granted = await client.subscribeAsync(filters(o), { qos: 1 });
  if (granted.some((g) => g.qos === 128 || g.qos > 2)) throw new OtaCloudMqttError('broker refused the cloud subscriptions');
}

export async function connectOtaCloud(url: string, service: ServiceCredential, opts: CloudClientOptions = {}): Promise<OtaCloudClient> {
  const idOf = (): string => (typeof opts.clientId === 'function' ? opts.clientId() : (opts.clientId ?? `otadiff-cloud-${process.pid}`));
  let lastId = idOf();
  const log = opts.log ?? (() => {});
  const informs: Handler<InformMessage>[] = opts.onInform === undefined ? [] : [opts.onInform];
  const progress: Handler<ProgressMessage>[] = opts.onProgress === undefined ? [] : [opts.onProgress];
  const route = router(informs, progress, opts);
  const inHand: { n: number; idle?: () => void; last: number } = { n: 0, last: 0 };
  let closing = false;
  let timer: NodeJS.Timeout | undefined;

  const open = async (resume: boolean): Promise<MqttClient> => {
    const id = idOf();
    const c = await connectAcking(url, connectOptions(service, id, opts, resume && id === lastId), route, inHand);
    lastId = id;
    try {
      await subscribe(c, opts);
    } catch (e) {
      await c.endAsync(true);
      throw e;
    }
    return c;
  };

  let client = await open(false);
  const watch = (c: MqttClient): void => {
    c.once('close', () => {
      if (closing || c !== client) return;
      log(`lost the broker ${url}; reconnecting`);
      if (opts.reconnect !== false) schedule(1, Date.now());
    });
  };
  const schedule = (attempt: number, since: number): void => {
    timer = setTimeout(() => {
      if (closing) return;
      open(true).then(
        (c) => {
          if (closing) return void c.endAsync(true);
          client = c;
          watch(c);
          log(`back at the broker ${url} after ${attempt} attempt(s), ${((Date.now() - since) / 1000).toFixed(1)} s; resubscribed`);
        },
        (e: unknown) => {
          if (attempt === 1 || attempt % 10 === 0) log(`broker ${url} still unreachable (attempt ${attempt}): ${(e as Error).message}`);
          schedule(attempt + 1, since);
        },
      );
    }, backoffDelay(attempt, { initialMs: 250, maxMs: 30_000, ...opts.backoff }));
    timer.unref();
  };
  watch(client);

  return {
    get mqtt() {
      return client;
    },
    get connected() {
      return client.connected;
    },
    onInform: (h) => void informs.push(h),
    onProgress: (h) => void progress.push(h),
    async pushUpgrade(device, info) {
      if (!client.connected) throw new OtaCloudMqttError('not connected to the broker');
      // The cloud may hand out CoAP download URLs; each device decides what it accepts.
      await client.publishAsync(upgradeTopic(device.productKey, device.deviceName), buildUpgradeMessage(info, { allowedProtocols: ['http:', 'https:', 'coap:'] }), { qos: 1 });
    },
    async pushCancel(device, cancel) {
      if (!client.connected) throw new OtaCloudMqttError('not connected to the broker');
      await client.publishAsync(upgradeTopic(device.productKey, device.deviceName), buildCancelMessage(cancel), { qos: 1 });
    },
    async close() {
      closing = true;
      clearTimeout(timer);
      if (client.connected) {
        await client.unsubscribeAsync(filters(opts)).catch(() => {});
        await waitIdle(inHand, 5_000);
        // MQTT 5: a session expiry of 0 at DISCONNECT ends the session (no takeover needed).
        await client.endAsync(false, opts.shared ? { properties: { sessionExpiryInterval: 0 } } : {}).catch(() => client.endAsync(true));
      } else await client.endAsync(true);
    },
  };
}

function waitIdle(inHand: { n: number; idle?: () => void }, timeoutMs: number): Promise<void> {
  if (inHand.n === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    inHand.idle = () => {
      clearTimeout(t);
      resolve();
    };
  });
}

/**
 * Takes over a dead worker's shared session: connects with its client id, resuming the session, and
 * handles every message the broker kept or still deals to it (acknowledged after the handlers), then
 * unsubscribes, handles what was queued until `quietMs` pass without a message, and disconnects
 * with a session expiry of 0, which ends the session. Resolves with the messages handled.
 */
export async function drainSession(
  url: string,
  service: ServiceCredential,
  clientId: string,
  handlers: { onInform: Handler<InformMessage>; onProgress: Handler<ProgressMessage> },
  opts: CloudClientOptions & { quietMs?: number } = {},
): Promise<number> {
  const o = { ...opts, shared: true };
  let handled = 0;
  const inner = router([handlers.onInform], [handlers.onProgress], o);
  const route = async (p: IPublishPacket): Promise<void> => {
    handled++;
    await inner(p);
  };
  const inHand: { n: number; idle?: () => void; last: number } = { n: 0, last: Date.now() };
  const c = await connectAcking(url, connectOptions(service, clientId, o, true), route, inHand);
  const quiet = opts.quietMs ?? 500;
  const settle = async (): Promise<void> => {
    for (;;) {
      await new Promise((r) => setTimeout(r, quiet / 2));
      if (inHand.n === 0 && Date.now() - inHand.last >= quiet) return;
    }
  };
  await settle();
  await c.unsubscribeAsync(filters(o)).catch(() => {});
  await settle();
  await c.endAsync(false, { properties: { sessionExpiryInterval: 0 } }).catch(() => c.endAsync(true));
  return handled;
}
