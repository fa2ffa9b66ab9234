// Alibaba Cloud IoT OTA topics (Alink, confirmed against the "OTA update" topic
// reference): device -> cloud inform/progress, cloud -> device upgrade.

export class TopicError extends Error {
  override name = 'TopicError';
}

/** One device of one product: what every topic and message names. */
export interface DeviceRef {
  productKey: string;
  deviceName: string;
}

/** "productKey/deviceName": a device's key in maps and logs. */
export const deviceKey = (d: DeviceRef): string => `${d.productKey}/${d.deviceName}`;

export type OtaTopicKind = 'inform' | 'upgrade' | 'progress';

export interface OtaTopic {
  kind: OtaTopicKind;
  productKey: string;
  deviceName: string;
}

// ProductKey: letters and digits. DeviceName (Aliyun rule): 4-32 chars of
// letters, digits, '-', '_', '@', '.', ':'. Neither may hold '/', '+', '#',
// '&' or '|', which keeps topics, MQTT usernames and client ids unambiguous.
const PRODUCT_KEY_RE = /^[A-Za-z0-9]{1,32}$/;
const DEVICE_NAME_RE = /^[A-Za-z0-9_@.:-]{4,32}$/;

export function isValidProductKey(pk: unknown): pk is string {
  return typeof pk === 'string' && PRODUCT_KEY_RE.test(pk);
}

export function isValidDeviceName(dn: unknown): dn is string {
  return typeof dn === 'string' && DEVICE_NAME_RE.test(dn);
}

export function assertDeviceId(productKey: string, deviceName: string): void {
  if (!isValidProductKey(productKey)) throw new TopicError(`invalid productKey ${JSON.stringify(productKey)}`);
  if (!isValidDeviceName(deviceName)) throw new TopicError(`invalid deviceName ${JSON.stringify(deviceName)}`);
}

export function otaTopic(kind: OtaTopicKind, productKey: string, deviceName: string): string {
  assertDeviceId(productKey, deviceName);
  return `/ota/device/${kind}/${productKey}/${deviceName}`;
}

export const informTopic = (pk: string, dn: string): string => otaTopic('inform', pk, dn);
export const upgradeTopic = (pk: string, dn: string): string => otaTopic('upgrade', pk, dn);
export const progressTopic = (pk: string, dn: string): string => otaTopic('progress', pk, dn);

/** Wildcard filter the cloud subscribes to for one kind, across all devices. */
export const otaTopicFilter = (kind: OtaTopicKind): string => `/ota/device/${kind}/+/+`;

/** Parse a concrete OTA topic; returns null for anything else (including wildcards). */
export function parseOtaTopic(topic: string): OtaTopic | null {
  if (typeof topic !== 'string' || topic.length > 128) return null;
  const parts = topic.split('/');
  // ['', 'ota', 'device', kind, pk, dn]
  if (parts.length !== 6 || parts[0] !== '' || parts[1] !== 'ota' || parts[2] !== 'device') return null;
  const kind = parts[3];
  if (kind !== 'inform' && kind !== 'upgrade' && kind !== 'progress') return null;
  if (!isValidProductKey(parts[4]) || !isValidDeviceName(parts[5])) return null;
  return { kind, productKey: parts[4], deviceName: parts[5] };
}
