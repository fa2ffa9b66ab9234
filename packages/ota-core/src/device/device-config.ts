// A device's default identity, for createOtaService() without options (AliOS reads
// the same quadruple from its KV / the board's provisioning):
//   $OTADIFF_DEVICE_CONFIG, else ~/.otadiff/device.json
//   { "productKey": "...", "productSecret": "...", "deviceName": "...", "deviceSecret": "...",
//     "broker": "mqtt://127.0.0.1:1883", "flash": "/path/to/flash-dir",
//     "trustedKeys": ["keys/firmware.pub"] }
// trustedKeys: the public keys (PEM file paths, relative to the config file, or PEM text)
// that must sign every package; the service and the bootloader refuse anything else.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';
import { isPemText } from './trusted-keys.js';

export class DeviceConfigError extends Error {
  override name = 'DeviceConfigError';
}

export interface DeviceConfig {
  productKey: string;
  productSecret?: string;
  deviceName: string;
  deviceSecret: string;
  broker?: string;
  /** Flash directory of the device (relative paths are relative to the config file). */
  flash?: string;
  /** Public keys that sign the device's packages: PEM file paths (made absolute) or PEM text. */
  trustedKeys?: string[];
}

export function defaultDeviceConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const p = env.OTADIFF_DEVICE_CONFIG;
  return p !== undefined && p !== '' ? p : join(homedir(), '.otadiff', 'device.json');
}

const SECRET_RE = /^[\x21-\x7e]{1,128}$/;

export function parseDeviceConfig(text: string, baseDir = '.'): DeviceConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new DeviceConfigError('device config is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new DeviceConfigError('device config must be a JSON object');
  const o = raw as Record<string, unknown>;
  if (!isValidProductKey(o.productKey)) throw new DeviceConfigError('device config: invalid productKey');
  if (!isValidDeviceName(o.deviceName)) throw new DeviceConfigError('device config: invalid deviceName');
  if (typeof o.deviceSecret !== 'string' || !SECRET_RE.test(o.deviceSecret)) throw new DeviceConfigError('device config: invalid deviceSecret');
  const cfg: DeviceConfig = { productKey: o.productKey, deviceName: o.deviceName, deviceSecret: o.deviceSecret };
  if (o.productSecret !== undefined) {
    if (typeof o.productSecret !== 'string' || !SECRET_RE.test(o.productSecret)) throw new DeviceConfigError('device config: invalid productSecret');
    cfg.productSecret = o.productSecret;
  }
  if (o.broker !== undefined) {
    if (typeof o.broker !== 'string' || !/^mqtts?:\/\/[^\s]+$/.test(o.broker)) throw new DeviceConfigError('device config: broker must be an mqtt:// or mqtts:// URL');
    cfg.broker = o.broker;
  }
  if (o.flash !== undefined) {
    if (typeof o.flash !== 'string' || o.flash.length === 0) throw new DeviceConfigError('device config: flash must be a directory path');
    cfg.flash = isAbsolute(o.flash) ? o.flash : resolve(baseDir, o.flash);
  }
  if (o.trustedKeys !== undefined) {
    const keys = o.trustedKeys;
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > 16 || !keys.every((k) => typeof k === 'string' && k.length > 0 && k.length <= 8192)) {
      throw new DeviceConfigError('device config: trustedKeys must be a list of 1 to 16 public keys (PEM file paths or PEM text)');
    }
    cfg.trustedKeys = (keys as string[]).map((k) => (isPemText(k) || isAbsolute(k) ? k : resolve(baseDir, k)));
  }
  return cfg;
}

export function loadDeviceConfig(path = defaultDeviceConfigPath()): DeviceConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DeviceConfigError(`cannot read the device config ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parseDeviceConfig(text, dirname(path));
}
