// The device's OTA client over mqtt.js: inform, progress, upgrade notices (the cloud's is
// cloud/mqtt-client.ts). Incoming payloads go through the strict parsers; malformed ones are
// reported through onInvalid and otherwise dropped.

import { connectAsync, type MqttClient } from 'mqtt';
import { deriveMqttCredentials, type DeriveOptions, type DeviceIdentity } from '../protocol/mqtt-auth.js';
import {
  buildInformMessage,
  buildProgressMessage,
  parseCloudNotice,
  type CancelNotice,
  type InformMessage,
  type ProgressMessage,
  type UpgradeInfo,
  type UpgradeParseOptions,
} from '../protocol/messages.js';
import { informTopic, progressTopic, upgradeTopic } from '../protocol/topics.js';

export class OtaMqttError extends Error {
  override name = 'OtaMqttError';
}

let nextId = 1;
const newMessageId = (): string => String((nextId = (nextId % 4294967295) + 1));

export interface OtaDeviceClient {
  readonly mqtt: MqttClient;
  reportVersion(version: string, module?: string): Promise<void>;
  reportProgress(step: number, desc?: string, module?: string): Promise<void>;
  onUpgrade(handler: (info: UpgradeInfo) => void): void;
  /** The cloud cancelled an update (its rollout was cancelled). */
  onCancel(handler: (c: CancelNotice) => void): void;
  close(): Promise<void>;
}

export interface DeviceClientOptions extends DeriveOptions {
  /** Certificates (PEM) to trust for an mqtts:// broker, beside the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  upgradeParse?: UpgradeParseOptions;
  onInvalid?: (topic: string, error: Error) => void;
}

export async function connectOtaDevice(url: string, identity: DeviceIdentity, opts: DeviceClientOptions = {}): Promise<OtaDeviceClient> {
  // Over TLS a device says so in its sign-in (securemode=2); the broker refuses that claim on plain TCP.
  const tls = /^mqtts:/i.test(url);
  const creds = deriveMqttCredentials(identity, { secureMode: tls ? 2 : 3, ...opts });
  const client = await connectAsync(url, {
    clientId: creds.clientId,
    username: creds.username,
    password: creds.password,
    reconnectPeriod: 0,
    keepalive: 300,
    ...(tls && opts.ca !== undefined ? { ca: opts.ca as string | Buffer | string[] | Buffer[] } : {}),
  });
  // This link never reconnects (the service makes a new one): once closed, end it, so a report
  // waiting for its PUBACK fails instead of waiting for ever.
  client.once('close', () => void client.end(true));
  const { productKey: pk, deviceName: dn } = identity;
  const handlers: Array<(info: UpgradeInfo) => void> = [];
  const cancels: Array<(c: CancelNotice) => void> = [];
  client.on('message', (topic, payload) => {
    // The broker only forwards this device's own topic; anything else is a broker gone wrong.
    if (topic !== upgradeTopic(pk, dn)) return opts.onInvalid?.(topic, new OtaMqttError(`a message on ${topic.slice(0, 128)}, not this device's upgrade topic: ignored`));
    try {
      const n = parseCloudNotice(payload, opts.upgradeParse);
      if (n.kind === 'upgrade') for (const h of handlers) h(n.info);
      else for (const h of cancels) h(n.cancel);
    } catch (e) {
      opts.onInvalid?.(topic, e as Error);
    }
  });
  try {
    const granted = await client.subscribeAsync(upgradeTopic(pk, dn), { qos: 1 });
    if (granted.some((g) => g.qos === 128)) throw new OtaMqttError('broker refused the upgrade subscription');
  } catch (e) {
    await client.endAsync(true);
    throw e;
  }
  return {
    mqtt: client,
    async reportVersion(version, module) {
      const m: InformMessage = { id: newMessageId(), version };
      if (module !== undefined) m.module = module;
      await client.publishAsync(informTopic(pk, dn), buildInformMessage(m), { qos: 1 });
    },
    async reportProgress(step, desc = '', module) {
      const m: ProgressMessage = { id: newMessageId(), step, desc };
      if (module !== undefined) m.module = module;
      await client.publishAsync(progressTopic(pk, dn), buildProgressMessage(m), { qos: 1 });
    },
    onUpgrade(handler) {
      handlers.push(handler);
    },
    onCancel(handler) {
      cancels.push(handler);
    },
    close: () => client.endAsync(),
  };
}

