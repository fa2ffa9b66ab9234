// Thin OTA clients over mqtt.js: a device side (inform, progress, upgrade
// notices) and a cloud side (collect informs/progress, push upgrades).
// Incoming payloads go through the strict parsers; malformed ones are reported
// through onInvalid and otherwise dropped.

import { connectAsync, type MqttClient } from 'mqtt';
import { deriveMqttCredentials, type DeriveOptions, type DeviceIdentity } from '../protocol/mqtt-auth.js';
import {
  buildInformMessage,
  buildProgressMessage,
  buildUpgradeMessage,
  parseInformMessage,
  parseProgressMessage,
  parseUpgradeMessage,
  type InformMessage,
  type ProgressMessage,
  type UpgradeInfo,
  type UpgradeParseOptions,
} from '../protocol/messages.js';
import { informTopic, otaTopicFilter, parseOtaTopic, progressTopic, upgradeTopic } from '../protocol/topics.js';
import type { ServiceCredential } from '../cloud/broker.js';

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
  close(): Promise<void>;
}

export interface DeviceClientOptions extends DeriveOptions {
  upgradeParse?: UpgradeParseOptions;
  onInvalid?: (topic: string, error: Error) => void;
}

export async function connectOtaDevice(url: string, identity: DeviceIdentity, opts: DeviceClientOptions = {}): Promise<OtaDeviceClient> {
  const creds = deriveMqttCredentials(identity, opts);
  const client = await connectAsync(url, {
    clientId: creds.clientId,
    username: creds.username,
    password: creds.password,
    reconnectPeriod: 0,
    keepalive: 300,
  });
  const { productKey: pk, deviceName: dn } = identity;
  const handlers: Array<(info: UpgradeInfo) => void> = [];
  client.on('message', (topic, payload) => {
    // The broker only forwards this device's own topic; anything else is a broker gone wrong.
    if (topic !== upgradeTopic(pk, dn)) return opts.onInvalid?.(topic, new OtaMqttError(`a message on ${topic.slice(0, 128)}, not this device's upgrade topic: ignored`));
    try {
      const info = parseUpgradeMessage(payload, opts.upgradeParse);
      for (const h of handlers) h(info);
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
    close: () => client.endAsync(),
  };
}

export interface DeviceRef {
  productKey: string;
  deviceName: string;
}

export interface OtaCloudClient {
  readonly mqtt: MqttClient;
  onInform(handler: (device: DeviceRef, msg: InformMessage) => void): void;
  onProgress(handler: (device: DeviceRef, msg: ProgressMessage) => void): void;
  pushUpgrade(device: DeviceRef, info: UpgradeInfo): Promise<void>;
  close(): Promise<void>;
}

export interface CloudClientOptions {
  clientId?: string;
  onInvalid?: (topic: string, error: Error) => void;
}

export async function connectOtaCloud(url: string, service: ServiceCredential, opts: CloudClientOptions = {}): Promise<OtaCloudClient> {
  const client = await connectAsync(url, {
    clientId: opts.clientId ?? `otadiff-cloud-${process.pid}`,
    username: service.username,
    password: service.password,
    reconnectPeriod: 0,
  });
  const informHandlers: Array<(d: DeviceRef, m: InformMessage) => void> = [];
  const progressHandlers: Array<(d: DeviceRef, m: ProgressMessage) => void> = [];
  client.on('message', (topic, payload) => {
    const t = parseOtaTopic(topic);
    if (t === null) return;
    const device = { productKey: t.productKey, deviceName: t.deviceName };
    try {
      if (t.kind === 'inform') {
        const m = parseInformMessage(payload);
        for (const h of informHandlers) h(device, m);
      } else if (t.kind === 'progress') {
        const m = parseProgressMessage(payload);
        for (const h of progressHandlers) h(device, m);
      }
    } catch (e) {
      opts.onInvalid?.(topic, e as Error);
    }
  });
  try {
    const granted = await client.subscribeAsync([otaTopicFilter('inform'), otaTopicFilter('progress')], { qos: 1 });
    if (granted.some((g) => g.qos === 128)) throw new OtaMqttError('broker refused the cloud subscriptions');
  } catch (e) {
    await client.endAsync(true);
    throw e;
  }
  return {
    mqtt: client,
    onInform: (h) => void informHandlers.push(h),
    onProgress: (h) => void progressHandlers.push(h),
    async pushUpgrade(device, info) {
      // The cloud may hand out CoAP download URLs; each device decides what it accepts.
      await client.publishAsync(upgradeTopic(device.productKey, device.deviceName), buildUpgradeMessage(info, { allowedProtocols: ['http:', 'https:', 'coap:'] }), { qos: 1 });
    },
    close: () => client.endAsync(),
  };
}
