// The cloud's data directory: devices, firmware per product, generated diff packages
// and upgrade jobs, all plain files so `otadiff serve` subcommands can edit them while
// the server runs (it re-reads them).
//
//   DATA/registry.json            products + devices with their secrets (DeviceRegistry, 0600)
//   DATA/cloud.json               URL-signing key and the cloud's broker credential (0600)
//   DATA/products.json            per product: package mode (inplace | ab | full), split and dictionary size
//   DATA/files/fw/PK/VERSION.bin  firmware store (immutable: a version is added once)
//   DATA/files/fw/PK/VERSION.json its release: security counter, allow-downgrade (signed into its packages)
//   DATA/files/pkg/PK/*.otad      diff packages and raw (OTA_RAW) packages, generated on demand
//                                 and cached, signed with the cloud's package signing key
//   DATA/jobs/ID.json             upgrade jobs (product, target version, devices)
//   DATA/status.json              written by the server: device versions and job progress

import { createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatePackage, packRaw, type GenerateResult } from '@otadiff/diff-gen';
import { FIRMWARE_VERSION_BYTES, parseHeader, type PackageHeader, type PatchMode } from '@otadiff/patch-apply';
import { DeviceRegistry, generateSecret, type DeviceRecord, type ProductRecord } from './device-registry.js';
import type { ServiceCredential } from '../protocol/mqtt-auth.js';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';
import { compareVersions, isValidVersion } from '../protocol/version.js';

export class CloudStoreError extends Error {
  override name = 'CloudStoreError';
}

/** How a product's updates travel: diffs for that restore mode, or always the whole image ('full'). */
export type PackageMode = Exclude<PatchMode, 'raw'> | 'full';

/** What the owner states about a stored firmware version; signed into every package that installs it. */
export interface FirmwareRelease {
  version: string;
  /** Anti-rollback counter: devices refuse a package below the one they recorded. */
  securityCounter: number;
  /** Devices may install it below their recorded counter (an owner's deliberate rollback). */
  allowDowngrade: boolean;
}

export interface CloudStoreOptions {
  /**
   * Private key (Ed25519, EC P-256 or RSA-2048) that signs the packages the store generates: diffs and
   * raw (OTA_RAW) packages. Without it they are unsigned, and devices that trust a key refuse them.
   */
  signingKey?: KeyObject;
}

export interface ProductConfig {
  productKey: string;
  /** inplace / ab: diff packages for that restore mode; full: always the whole image (a raw package). */
  mode: PackageMode;
  splitSize: number;
  dictSize: number;
}

export interface OtaJob {
  id: string;
  productKey: string;
  version: string;
  /** Device names, or 'all' devices of the product. */
  devices: string[] | 'all';
  createdAt: number;
  /** How its devices download (default: the cloud's `downloadProtocol`). */
  downloadProtocol?: 'http' | 'coap';
}

export type JobState = 'notified' | 'downloading' | 'downloaded' | 'succeeded' | 'failed';

export interface DeviceStatus {
  productKey: string;
  deviceName: string;
  version?: string;
  lastSeen?: number;
  job?: {
    id: string;
    version: string;
    state: JobState;
    step?: number;
    desc?: string;
    isDiff?: boolean;
    packageBytes?: number;
    fromVersion?: string;
    updatedAt: number;
  };
}

export interface CloudStatus {
  devices: DeviceStatus[];
}

export interface StoredPackage {
  /** URL path under the file server. */
  path: string;
  size: number;
  bytes: Uint8Array;
  /** The package's header (diff and raw packages; not a plain firmware image). */
  header?: PackageHeader;
}

const MAX_COUNTER = 0xffff_ffff;

interface CloudSecrets {
  urlSecret: string;
  service: ServiceCredential;
}

const DEFAULT_SPLIT = 64 * 1024;
const DEFAULT_DICT = 16 * 1024;
const JOB_ID_RE = /^[0-9]{13}-[0-9a-f]{8}$/;

function writeAtomic(path: string, text: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CloudStoreError(`${what} ${path} is unreadable: ${(e as Error).message}`);
  }
}

function checkVersion(v: string): string {
  if (!isValidVersion(v) || /[/\\]/.test(v)) throw new CloudStoreError(`invalid version ${JSON.stringify(v)}`);
  return v;
}

/** A version that goes into a signed package header: printable ASCII, at most 32 bytes. */
function checkReleaseVersion(v: string): string {
  checkVersion(v); // letters, digits and . _ + - only: printable ASCII already
  if (v.length > FIRMWARE_VERSION_BYTES)
    throw new CloudStoreError(`version ${JSON.stringify(v)} is too long: a package's signed header holds at most ${FIRMWARE_VERSION_BYTES} printable ASCII characters`);
  return v;
}

function parseRelease(raw: unknown, version: string, file: string): FirmwareRelease {
  const r = raw as Partial<FirmwareRelease> | null;
  if (typeof r !== 'object' || r === null) throw new CloudStoreError(`${file} must be an object`);
  const c = r.securityCounter;
  if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > MAX_COUNTER) throw new CloudStoreError(`${file}: securityCounter must be an integer from 0 to ${MAX_COUNTER}`);
  if (typeof r.allowDowngrade !== 'boolean') throw new CloudStoreError(`${file}: allowDowngrade must be true or false`);
  return { version, securityCounter: c, allowDowngrade: r.allowDowngrade };
}

/** Short fingerprint of a signing key's public half, so cached packages follow a change of key. */
function keyTag(key: KeyObject | undefined): string {
  if (key === undefined) return 'unsigned';
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return `k${createHash('sha256').update(spki).digest('hex').slice(0, 12)}`;
}

function parseProducts(raw: unknown): Map<string, ProductConfig> {
  const out = new Map<string, ProductConfig>();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CloudStoreError('products.json must be an object');
  for (const [pk, v] of Object.entries(raw as Record<string, unknown>)) {
    const c = v as Partial<ProductConfig> | null;
    if (!isValidProductKey(pk) || typeof c !== 'object' || c === null) throw new CloudStoreError(`products.json: bad entry ${JSON.stringify(pk)}`);
    if (c.mode !== 'inplace' && c.mode !== 'ab' && c.mode !== 'full') throw new CloudStoreError(`products.json: ${pk}.mode must be inplace, ab or full`);
    for (const k of ['splitSize', 'dictSize'] as const) {
      const n = c[k];
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new CloudStoreError(`products.json: ${pk}.${k} must be a positive integer`);
    }
    out.set(pk, { productKey: pk, mode: c.mode, splitSize: c.splitSize!, dictSize: c.dictSize! });
  }
  return out;
}

function parseJob(raw: unknown, file: string): OtaJob {
  const j = raw as Partial<OtaJob> | null;
  if (typeof j !== 'object' || j === null || typeof j.id !== 'string' || !JOB_ID_RE.test(j.id)) throw new CloudStoreError(`job ${file}: bad id`);
  if (!isValidProductKey(j.productKey)) throw new CloudStoreError(`job ${file}: bad productKey`);
  if (typeof j.version !== 'string' || !isValidVersion(j.version)) throw new CloudStoreError(`job ${file}: bad version`);
  const devices = j.devices;
  if (devices !== 'all' && !(Array.isArray(devices) && devices.length <= 100_000 && devices.every(isValidDeviceName))) {
    throw new CloudStoreError(`job ${file}: devices must be "all" or a list of device names`);
  }
  if (typeof j.createdAt !== 'number' || !Number.isSafeInteger(j.createdAt)) throw new CloudStoreError(`job ${file}: bad createdAt`);
  const dp = j.downloadProtocol;
  if (dp !== undefined && dp !== 'http' && dp !== 'coap') throw new CloudStoreError(`job ${file}: downloadProtocol must be "http" or "coap"`);
  const job: OtaJob = { id: j.id, productKey: j.productKey, version: j.version, devices, createdAt: j.createdAt };
  if (dp !== undefined) job.downloadProtocol = dp;
  return job;
}

export class CloudStore {
  registry!: DeviceRegistry;
  private products = new Map<string, ProductConfig>();
  private jobList: OtaJob[] = [];
  private secrets!: CloudSecrets;
  private readonly generating = new Map<string, Promise<StoredPackage>>();
  private stamp = '';
  /** keyTag(signingKey), in the names of cached packages. */
  private readonly keyTag: string;

  private constructor(
    readonly dataDir: string,
    /** Signs the packages the store generates (see CloudStoreOptions). */
    readonly signingKey: KeyObject | undefined,
  ) {
    this.keyTag = keyTag(signingKey);
  }

  get filesDir(): string {
    return join(this.dataDir, 'files');
  }

  get urlSecret(): string {
    return this.secrets.urlSecret;
  }

  get serviceCredential(): ServiceCredential {
    return { ...this.secrets.service };
  }

  /** Opens (and creates, when missing) a data directory. */
  static async open(dataDir: string, opts: CloudStoreOptions = {}): Promise<CloudStore> {
    const s = new CloudStore(dataDir, opts.signingKey);
    for (const d of [dataDir, s.filesDir, join(s.filesDir, 'fw'), join(s.filesDir, 'pkg'), join(dataDir, 'jobs')]) mkdirSync(d, { recursive: true });
    const secretsPath = join(dataDir, 'cloud.json');
    if (!existsSync(secretsPath)) {
      const fresh: CloudSecrets = { urlSecret: generateSecret(48), service: { username: 'otadiff-cloud', password: generateSecret(40) } };
      writeAtomic(secretsPath, `${JSON.stringify(fresh, null, 2)}\n`, 0o600);
    }
    const sec = readJson(secretsPath, 'cloud secrets') as Partial<CloudSecrets>;
    if (typeof sec?.urlSecret !== 'string' || sec.urlSecret.length < 16 || typeof sec.service?.username !== 'string' || typeof sec.service.password !== 'string') {
      throw new CloudStoreError(`${secretsPath} lacks urlSecret/service`);
    }
    s.secrets = { urlSecret: sec.urlSecret, service: { username: sec.service.username, password: sec.service.password } };
    await s.reload();
    return s;
  }

  private fileStamp(): string {
    const parts: string[] = [];
    for (const f of ['registry.json', 'products.json']) {
      const p = join(this.dataDir, f);
      parts.push(existsSync(p) ? `${statSync(p).mtimeMs}:${statSync(p).size}` : '-');
    }
    parts.push(readdirSync(join(this.dataDir, 'jobs')).sort().join(','));
    return parts.join('|');
  }

  /** Re-reads registry, products and jobs; true when anything changed on disk. */
  async reload(): Promise<boolean> {
    const stamp = this.fileStamp();
    if (stamp === this.stamp) return false;
    const registry = await DeviceRegistry.open(join(this.dataDir, 'registry.json'));
    const pPath = join(this.dataDir, 'products.json');
    const products = existsSync(pPath) ? parseProducts(readJson(pPath, 'products')) : new Map<string, ProductConfig>();
    const jobs: OtaJob[] = [];
    const jobsDir = join(this.dataDir, 'jobs');
    for (const f of readdirSync(jobsDir)) {
      if (!f.endsWith('.json')) continue;
      jobs.push(parseJob(readJson(join(jobsDir, f), 'job'), f));
    }
    jobs.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    this.registry = registry;
    this.products = products;
    this.jobList = jobs;
    this.stamp = stamp;
    return true;
  }

  // ---------------------------------------------------------------- products and devices

  product(productKey: string): ProductConfig | undefined {
    const c = this.products.get(productKey);
    return c && { ...c };
  }

  productList(): ProductConfig[] {
    return [...this.products.values()].map((c) => ({ ...c }));
  }

  async addProduct(productKey: string, o: { productSecret?: string; mode?: PackageMode; splitSize?: number; dictSize?: number } = {}): Promise<ProductRecord & { config: ProductConfig }> {
    if (!isValidProductKey(productKey)) throw new CloudStoreError(`invalid productKey ${JSON.stringify(productKey)}`);
    if (this.products.has(productKey)) throw new CloudStoreError(`product ${productKey} exists`);
    const mode = o.mode ?? 'inplace';
    if (mode !== 'inplace' && mode !== 'ab' && mode !== 'full') throw new CloudStoreError(`mode must be inplace, ab or full, not ${String(mode)}`);
    const config: ProductConfig = { productKey, mode, splitSize: o.splitSize ?? DEFAULT_SPLIT, dictSize: o.dictSize ?? DEFAULT_DICT };
    const rec = this.registry.getProduct(productKey) ?? this.registry.addProduct(productKey, o.productSecret);
    await this.registry.save();
    this.products.set(productKey, config);
    writeAtomic(join(this.dataDir, 'products.json'), `${JSON.stringify(Object.fromEntries(this.products), null, 2)}\n`);
    this.stamp = this.fileStamp();
    return { ...rec, config };
  }

  async addDevice(productKey: string, deviceName: string, deviceSecret?: string): Promise<DeviceRecord> {
    if (!this.products.has(productKey)) throw new CloudStoreError(`unknown product ${productKey}`);
    const d = this.registry.addDevice(productKey, deviceName, deviceSecret);
    await this.registry.save();
    this.stamp = this.fileStamp();
    return d;
  }

  // ---------------------------------------------------------------- firmware

  private fwDir(productKey: string): string {
    return join(this.filesDir, 'fw', productKey);
  }

  /**
   * Stores a firmware version (immutable: adding the same version twice is refused) with its release:
   * the security counter defaults to the highest of the product's older versions (so a new release
   * keeps the counter monotonic), and may not go below an older version's or above a newer one's
   * unless the release allows a downgrade.
   */
  addFirmware(
    productKey: string,
    version: string,
    image: Uint8Array,
    o: { securityCounter?: number; allowDowngrade?: boolean } = {},
  ): { path: string; size: number; sha256: string; securityCounter: number; allowDowngrade: boolean } {
    if (!this.products.has(productKey)) throw new CloudStoreError(`unknown product ${productKey}`);
    checkReleaseVersion(version);
    if (image.length === 0) throw new CloudStoreError('empty firmware image');
    const releases = this.firmwareReleases(productKey);
    if (releases.some((r) => compareVersions(r.version, version) === 0)) throw new CloudStoreError(`${productKey} already has firmware ${version}`);
    const older = releases.filter((r) => compareVersions(r.version, version) < 0);
    const newer = releases.filter((r) => compareVersions(r.version, version) > 0);
    const allowDowngrade = o.allowDowngrade ?? false;
    const floor = older.reduce((m, r) => Math.max(m, r.securityCounter), 0);
    const securityCounter = o.securityCounter ?? floor;
    if (!Number.isInteger(securityCounter) || securityCounter < 0 || securityCounter > MAX_COUNTER)
      throw new CloudStoreError(`security counter must be an integer from 0 to ${MAX_COUNTER}`);
    if (!allowDowngrade) {
      const below = older.find((r) => r.securityCounter > securityCounter);
      if (below !== undefined)
        throw new CloudStoreError(`security counter ${securityCounter} of ${version} is below the ${below.securityCounter} of the older ${below.version}: counters must not decrease (or allow a downgrade)`);
      const above = newer.find((r) => r.securityCounter < securityCounter);
      if (above !== undefined)
        throw new CloudStoreError(`security counter ${securityCounter} of ${version} is above the ${above.securityCounter} of the newer ${above.version}: counters must not decrease`);
    }
    mkdirSync(this.fwDir(productKey), { recursive: true });
    // The release first: a .bin never lacks its .json.
    writeAtomic(join(this.fwDir(productKey), `${version}.json`), `${JSON.stringify({ securityCounter, allowDowngrade }, null, 2)}\n`);
    writeAtomic(join(this.fwDir(productKey), `${version}.bin`), image);
    return { path: `/fw/${productKey}/${version}.bin`, size: image.length, sha256: createHash('sha256').update(image).digest('hex'), securityCounter, allowDowngrade };
  }

  /** The release of a stored version (a store from before releases had none: counter 0). */
  firmwareRelease(productKey: string, version: string): FirmwareRelease | undefined {
    const v = this.storedVersion(productKey, version);
    return v === undefined ? undefined : this.releaseOf(productKey, v);
  }

  /** The releases of every stored version, oldest first. */
  firmwareReleases(productKey: string): FirmwareRelease[] {
    return this.firmwareVersions(productKey).map((v) => this.releaseOf(productKey, v));
  }

  /** The stored spelling of `version` (compared as a version: "1.0" finds "1.0.0"). */
  private storedVersion(productKey: string, version: string): string | undefined {
    return this.firmwareVersions(productKey).find((x) => compareVersions(x, version) === 0);
  }

  /** The release of stored version `v`. */
  private releaseOf(productKey: string, v: string): FirmwareRelease {
    const file = join(this.fwDir(productKey), `${v}.json`);
    if (!existsSync(file)) return { version: v, securityCounter: 0, allowDowngrade: false };
    return parseRelease(readJson(file, 'firmware release'), v, file);
  }

  /** Stored versions, oldest first. */
  firmwareVersions(productKey: string): string[] {
    const dir = this.fwDir(productKey);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f.endsWith('.bin') && isValidVersion(f.slice(0, -4)))
      .map((f) => f.slice(0, -4))
      .sort(compareVersions);
  }

  /** The stored file for `version` (compared as a version: "1.0" finds "1.0.0"). */
  firmware(productKey: string, version: string): StoredPackage | undefined {
    const v = this.storedVersion(productKey, version);
    return v === undefined ? undefined : this.readFirmware(productKey, v);
  }

  private readFirmware(productKey: string, v: string): StoredPackage {
    const bytes = new Uint8Array(readFileSync(join(this.fwDir(productKey), `${v}.bin`)));
    return { path: `/fw/${productKey}/${v}.bin`, size: bytes.length, bytes };
  }

  /**
   * The diff package from `from` to `to` for the product's mode, signed with the store's key and
   * carrying `to`'s release, generated on first use and cached under files/pkg. Undefined when either
   * image is missing or the product ships full images.
   */
  async diffPackage(productKey: string, from: string, to: string): Promise<StoredPackage | undefined> {
    const cfg = this.products.get(productKey);
    if (cfg === undefined || cfg.mode === 'full') return undefined;
    const mode = cfg.mode;
    const fromV = this.storedVersion(productKey, from);
    const toV = this.storedVersion(productKey, to);
    if (fromV === undefined || toV === undefined) return undefined;
    const release = this.releaseOf(productKey, toV);
    const name = `${fromV}_to_${toV}.${mode}.s${cfg.splitSize}.d${cfg.dictSize}.${this.keyTag}.otad`;
    return this.cached(productKey, name, async () =>
      generatePackage(this.readFirmware(productKey, fromV).bytes, this.readFirmware(productKey, toV).bytes, {
        mode,
        splitSize: cfg.splitSize,
        dictSize: cfg.dictSize,
        firmwareVersion: release.version,
        securityCounter: release.securityCounter,
        allowDowngrade: release.allowDowngrade,
        signingKey: this.signingKey,
      }),
    );
  }

  /**
   * The full image of `version` as a raw (OTA_RAW) package: the image behind the same signed header
   * as a diff, with its release. Generated on first use and cached. Undefined when the store lacks it.
   */
  async rawPackage(productKey: string, version: string): Promise<StoredPackage | undefined> {
    const v = this.storedVersion(productKey, version);
    if (v === undefined) return undefined;
    const release = this.releaseOf(productKey, v);
    const split = this.products.get(productKey)?.splitSize ?? DEFAULT_SPLIT;
    const name = `${v}.raw.s${split}.${this.keyTag}.otad`;
    return this.cached(productKey, name, async () =>
      packRaw(this.readFirmware(productKey, v).bytes, {
        splitSize: split,
        firmwareVersion: release.version,
        securityCounter: release.securityCounter,
        allowDowngrade: release.allowDowngrade,
        signingKey: this.signingKey,
      }),
    );
  }

  /** files/pkg/PK/NAME, made by `make` once (concurrent callers share the work) and kept. */
  private async cached(productKey: string, name: string, make: () => Promise<GenerateResult>): Promise<StoredPackage> {
    const file = join(this.filesDir, 'pkg', productKey, name);
    const path = `/pkg/${productKey}/${name}`;
    if (existsSync(file)) {
      const bytes = new Uint8Array(readFileSync(file));
      return { path, size: bytes.length, bytes, header: parseHeader(bytes) };
    }
    let p = this.generating.get(file);
    if (p === undefined) {
      p = (async () => {
        const { package: bytes, header } = await make();
        mkdirSync(join(this.filesDir, 'pkg', productKey), { recursive: true });
        writeAtomic(file, bytes);
        return { path, size: bytes.length, bytes, header };
      })();
      this.generating.set(file, p);
      p.finally(() => this.generating.delete(file)).catch(() => {});
    }
    return p;
  }

  // ---------------------------------------------------------------- jobs

  jobs(): OtaJob[] {
    return this.jobList.map((j) => ({ ...j, devices: j.devices === 'all' ? 'all' : [...j.devices] }));
  }

  /** Creates an upgrade job: `version` for the listed devices (default: all of the product). */
  createJob(o: { productKey: string; version: string; devices?: string[]; downloadProtocol?: 'http' | 'coap' }): OtaJob {
    if (!this.products.has(o.productKey)) throw new CloudStoreError(`unknown product ${o.productKey}`);
    checkVersion(o.version);
    if (this.firmware(o.productKey, o.version) === undefined) throw new CloudStoreError(`${o.productKey} has no firmware ${o.version}; add it first`);
    const devices = o.devices === undefined || o.devices.length === 0 ? 'all' : [...o.devices];
    if (devices !== 'all') {
      for (const d of devices) if (this.registry.getDevice(o.productKey, d) === undefined) throw new CloudStoreError(`unknown device ${o.productKey}/${d}`);
    }
    const createdAt = Date.now();
    const job: OtaJob = { id: `${createdAt}-${randomBytes(4).toString('hex')}`, productKey: o.productKey, version: o.version, devices, createdAt };
    if (o.downloadProtocol !== undefined) {
      if (o.downloadProtocol !== 'http' && o.downloadProtocol !== 'coap') throw new CloudStoreError(`unknown download protocol ${String(o.downloadProtocol)}`);
      job.downloadProtocol = o.downloadProtocol;
    }
    writeAtomic(join(this.dataDir, 'jobs', `${job.id}.json`), `${JSON.stringify(job, null, 2)}\n`);
    this.jobList.push(job);
    this.stamp = this.fileStamp();
    return { ...job };
  }

  /** The newest job that covers this device. */
  jobFor(productKey: string, deviceName: string): OtaJob | undefined {
    for (let i = this.jobList.length - 1; i >= 0; i--) {
      const j = this.jobList[i];
      if (j.productKey === productKey && (j.devices === 'all' || j.devices.includes(deviceName))) return { ...j };
    }
    return undefined;
  }

  // ---------------------------------------------------------------- status

  readStatus(): CloudStatus {
    const p = join(this.dataDir, 'status.json');
    if (!existsSync(p)) return { devices: [] };
    const raw = readJson(p, 'status') as Partial<CloudStatus>;
    return { devices: Array.isArray(raw?.devices) ? raw.devices : [] };
  }

  writeStatus(s: CloudStatus): void {
    writeAtomic(join(this.dataDir, 'status.json'), `${JSON.stringify(s, null, 2)}\n`);
  }
}
