// Products (productKey, productSecret) and devices (deviceName, deviceSecret), in memory or in the
// JSON file of a data directory from before the database (registry.json; json-import.ts reads it).
// The broker tests use it as a small in-memory registry.

import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';
import type { DeviceSecretLookup } from '../protocol/mqtt-auth.js';

export class RegistryError extends Error {
  override name = 'RegistryError';
}

export interface ProductRecord {
  productKey: string;
  productSecret: string;
}

export interface DeviceRecord {
  productKey: string;
  deviceName: string;
  deviceSecret: string;
}

interface RegistryFile {
  format: 'otadiff-device-registry';
  version: 1;
  products: ProductRecord[];
  devices: DeviceRecord[];
}

const SECRET_RE = /^[\x21-\x7e]{8,128}$/; // printable ASCII, no spaces
const MAX_ENTRIES = 1_000_000;

/** 32 random alphanumerics, the shape of an Aliyun DeviceSecret. */
export function generateSecret(length = 32): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    if (bytes[i] < 248) out += alphabet[bytes[i] % 62];
  }
  return out.length === length ? out : generateSecret(length);
}

/** A product or device secret: 8..128 printable ASCII characters, no spaces; throws RegistryError. */
export function checkSecret(s: unknown, what: string): string {
  if (typeof s !== 'string' || !SECRET_RE.test(s)) throw new RegistryError(`${what} must be 8..128 printable ASCII chars`);
  return s;
}

const key = (pk: string, dn: string): string => `${pk}/${dn}`;

export class DeviceRegistry implements DeviceSecretLookup {
  private readonly products = new Map<string, ProductRecord>();
  private readonly devices = new Map<string, DeviceRecord>();

  private constructor(private readonly path: string | undefined) {}

  static inMemory(): DeviceRegistry {
    return new DeviceRegistry(undefined);
  }

  /** Open a JSON-backed registry; a missing file starts empty. */
  static async open(path: string): Promise<DeviceRegistry> {
    const reg = new DeviceRegistry(path);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return reg;
      throw e;
    }
    reg.load(text);
    return reg;
  }

  private load(text: string): void {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new RegistryError('registry file is not JSON');
    }
    const f = data as Partial<RegistryFile>;
    if (typeof f !== 'object' || f === null || f.format !== 'otadiff-device-registry' || f.version !== 1) {
      throw new RegistryError('not an otadiff device registry (format/version)');
    }
    if (!Array.isArray(f.products) || !Array.isArray(f.devices)) throw new RegistryError('registry lacks products/devices arrays');
    if (f.products.length > MAX_ENTRIES || f.devices.length > MAX_ENTRIES) throw new RegistryError('registry too large');
    for (const p of f.products) this.addProductRecord(p);
    for (const d of f.devices) this.addDeviceRecord(d);
  }

  private addProductRecord(p: ProductRecord): void {
    if (typeof p !== 'object' || p === null || !isValidProductKey(p.productKey)) throw new RegistryError('invalid productKey');
    if (this.products.has(p.productKey)) throw new RegistryError(`duplicate product ${p.productKey}`);
    this.products.set(p.productKey, { productKey: p.productKey, productSecret: checkSecret(p.productSecret, 'productSecret') });
  }

  private addDeviceRecord(d: DeviceRecord): void {
    if (typeof d !== 'object' || d === null || !isValidProductKey(d.productKey) || !isValidDeviceName(d.deviceName)) {
      throw new RegistryError('invalid productKey or deviceName');
    }
    if (!this.products.has(d.productKey)) throw new RegistryError(`device ${d.deviceName} refers to unknown product ${d.productKey}`);
    const k = key(d.productKey, d.deviceName);
    if (this.devices.has(k)) throw new RegistryError(`duplicate device ${k}`);
    this.devices.set(k, { productKey: d.productKey, deviceName: d.deviceName, deviceSecret: checkSecret(d.deviceSecret, 'deviceSecret') });
  }

  addProduct(productKey: string, productSecret: string = generateSecret()): ProductRecord {
    this.addProductRecord({ productKey, productSecret });
    return { ...this.products.get(productKey)! };
  }

  addDevice(productKey: string, deviceName: string, deviceSecret: string = generateSecret()): DeviceRecord {
    this.addDeviceRecord({ productKey, deviceName, deviceSecret });
    return { ...this.devices.get(key(productKey, deviceName))! };
  }

  removeDevice(productKey: string, deviceName: string): boolean {
    return this.devices.delete(key(productKey, deviceName));
  }

  getProduct(productKey: string): ProductRecord | undefined {
    const p = this.products.get(productKey);
    return p && { ...p };
  }

  getDevice(productKey: string, deviceName: string): DeviceRecord | undefined {
    const d = this.devices.get(key(productKey, deviceName));
    return d && { ...d };
  }

  getDeviceSecret(productKey: string, deviceName: string): string | undefined {
    return this.devices.get(key(productKey, deviceName))?.deviceSecret;
  }

  listDevices(productKey?: string): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const d of this.devices.values()) if (productKey === undefined || d.productKey === productKey) out.push({ ...d });
    return out;
  }

  /** Persist to the backing file (no-op in memory mode). */
  async save(): Promise<void> {
    if (this.path === undefined) return;
    const file: RegistryFile = {
      format: 'otadiff-device-registry',
      version: 1,
      products: [...this.products.values()],
      devices: [...this.devices.values()],
    };
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.path);
  }
}
