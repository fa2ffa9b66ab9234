// The cloud's OTA client over mqtt.js: collects informs and progress, pushes upgrade notices.
// Incoming payloads go through the strict parsers; malformed ones are reported through
// onInvalid and otherwise dropped.

import { connectAsync, type MqttClient } from 'mqtt';
import { buildUpgradeMessage, parseInformMessage, parseProgressMessage, type InformMessage, type ProgressMessage, type UpgradeInfo } from '../protocol/messages.js';
import type { ServiceCredential } from '../protocol/mqtt-auth.js';
import { otaTopicFilter, parseOtaTopic, upgradeTopic, type DeviceRef } from '../protocol/topics.js';

export class OtaCloudMqttError extends Error {
  override name = 'OtaCloudMqttError';
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
    if (granted.some((g) => g.qos === 128)) throw new OtaCloudMqttError('broker refused the cloud subscriptions');
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

