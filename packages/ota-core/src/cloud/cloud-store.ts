// The cloud's state, in a database (db/: SQLite in DATA/otadiff.db by default, or PostgreSQL with
// `db`), and its files, content-addressed in DATA/files/objects (object-store.ts):
//
//   settings          the URL-signing key and the cloud's broker credential
//   products          per product: secret, package mode (inplace | ab | full), split and dictionary size
//   devices           products' devices with their secrets, last reported version, current job
//   firmware          versions per product (immutable) with their release: security counter, allow-downgrade
//   packages          diffs and raw (OTA_RAW) packages made on demand, signed with the package key
//   jobs, job_devices upgrade jobs (product, target version, all devices or a list)
//   device_jobs       one row per device and job: the push queue and the device's progress
//   workers           the cloud processes sharing the database
//
// Every change is one transaction, so `serve` subcommands in other processes (add-device,
// add-firmware, job) can run while `serve` runs, and at the same time as each other.

import { randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Transaction } from 'kysely';
import { FIRMWARE_VERSION_BYTES, type PackageHeader, type PatchMode } from '@otadiff/patch-apply';
import { DatabaseError, isPostgresUrl, openDatabaseEngine, type DatabaseHandle, type Engine } from './db/engine.js';
import { migrate } from './db/migrations.js';
import { FINAL_STATES, IN_FLIGHT_STATES, isTold, type Database, type DeviceJobState, type NewDeviceJob } from './db/schema.js';
import { checkSecret, generateSecret, type DeviceRecord, type ProductRecord } from './device-registry.js';
import { ObjectStore } from './object-store.js';
import { PackageCache } from './package-cache.js';
import { PackageMaker, type PackageMeta } from './packages.js';
import type { ServiceCredential } from '../protocol/mqtt-auth.js';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';
import { compareVersions, isValidVersion } from '../protocol/version.js';
import { decideTarget, type JobTarget } from './job-target.js';
import { writeAudit, type AuditEntry } from './audit.js';
import { addTags, checkTags, MAX_TAGS, removeTags, tagsOf } from './device-tags.js';

/** What kind of refusal (the API answers 404, 409 or 400). */
export type StoreErrorKind = 'invalid' | 'not-found' | 'conflict';

export class CloudStoreError extends Error {
  override name = 'CloudStoreError';
  constructor(
    message: string,
    readonly kind: StoreErrorKind = 'invalid',
  ) {
    super(message);
  }
}

/** A job to create: a product's version for a list of devices, or all of them. */
export interface NewJob {
  productKey: string;
  version: string;
  /** Device names; default (or empty, unless `listed`): all devices of the product, also those added later. */
  devices?: string[];
  /** `devices` is the list even when empty (a rollout by tags that matched none is refused before). */
  listed?: boolean;
  downloadProtocol?: 'http' | 'coap';
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
  /** postgres://user:pass@host/db; default the SQLite file DATA/otadiff.db. */
  db?: string;
  /** See OpenOptions.durability (default 'sync'; `serve` uses 'fast' for its status updates). */
  durability?: 'sync' | 'fast';
  /** Package bytes kept in memory for CoAP and the tests (default 64 MiB). */
  packageCacheBytes?: number;
  /** Import a JSON data directory (the format before the database) found in DATA (default true). */
  importJson?: boolean;
  log?: (line: string) => void;
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

export type JobState = DeviceJobState;

export interface DeviceStatus {
  productKey: string;
  deviceName: string;
  version?: string;
  lastSeen?: number;
  /** The device's current job's state; 'idle' (seen, no job) or 'never-seen' without one. */
  state: JobState | 'idle' | 'never-seen';
  job?: {
    id: string;
    version: string;
    state: JobState;
    step?: number;
    desc?: string;
    isDiff?: boolean;
    packageBytes?: number;
    fromVersion?: string;
    pushes: number;
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
  sha256: string;
  bytes: Uint8Array;
  /** The package's header (diff and raw packages; not a plain firmware image). */
  header?: PackageHeader;
}

const MAX_COUNTER = 0xffff_ffff;
const DEFAULT_SPLIT = 64 * 1024;
const DEFAULT_DICT = 16 * 1024;
/** Rows per INSERT: well inside SQLite's and PostgreSQL's limits on bound parameters. */
const BATCH_ROWS = 400;
const MAX_JOB_DEVICES = 1_000_000;

export function checkVersion(v: string): string {
  if (typeof v !== 'string' || !isValidVersion(v) || /[/\\]/.test(v)) throw new CloudStoreError(`invalid version ${JSON.stringify(v)}`);
  return v;
}

/** A version that goes into a signed package header: printable ASCII, at most 32 bytes. */
function checkReleaseVersion(v: string): string {
  checkVersion(v); // letters, digits and . _ + - only: printable ASCII already
  if (v.length > FIRMWARE_VERSION_BYTES)
    throw new CloudStoreError(`version ${JSON.stringify(v)} is too long: a package's signed header holds at most ${FIRMWARE_VERSION_BYTES} printable ASCII characters`);
  return v;
}

function checkMode(mode: unknown): PackageMode {
  if (mode !== 'inplace' && mode !== 'ab' && mode !== 'full') throw new CloudStoreError(`mode must be inplace, ab or full, not ${String(mode)}`);
  return mode;
}

export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function chunks<T>(list: readonly T[], n = BATCH_ROWS): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
  return out;
}

/**
 * The job state a device gets when a job for `target` starts (or a rollout releases it), from the
 * version it last reported and the security counter it recorded (job-target.ts), with why it is skipped.
 */
export function initialJobState(reported: string | null, target: string | JobTarget, recordedCounter = 0): { state: DeviceJobState; detail: string | null } {
  const t = typeof target === 'string' ? { version: target, allowDowngrade: false, securityCounter: 0 } : target;
  const d = decideTarget(reported, recordedCounter, t);
  if (d.kind === 'wait') return { state: 'waiting', detail: null };
  return d.kind === 'push' ? { state: 'queued', detail: d.rollback ? `rollback from ${reported}` : null } : { state: 'skipped', detail: d.detail };
}

export class CloudStore {
  private secrets!: { urlSecret: string; service: ServiceCredential };
  readonly objects: ObjectStore;
  readonly packages: PackageMaker;

  private constructor(
    readonly dataDir: string,
    readonly handle: DatabaseHandle,
    opts: CloudStoreOptions,
  ) {
    this.objects = new ObjectStore(join(dataDir, 'files'));
    this.packages = new PackageMaker(this, this.objects, new PackageCache(opts.packageCacheBytes ?? 64 * 1024 * 1024), opts.signingKey);
  }

  get engine(): Engine {
    return this.handle.engine;
  }

  get db() {
    return this.handle.db;
  }

  /** The file server's root: DATA/files. */
  get filesDir(): string {
    return this.objects.root;
  }

  get urlSecret(): string {
    return this.secrets.urlSecret;
  }

  get serviceCredential(): ServiceCredential {
    return { ...this.secrets.service };
  }

  get signingKey(): KeyObject | undefined {
    return this.packages.signingKey;
  }

  /**
   * Opens (and creates, when missing) a data directory and its database, applying migrations. A data
   * directory in the JSON format from before the database is imported on first open (json-import.ts).
   */
  static async open(dataDir: string, opts: CloudStoreOptions = {}): Promise<CloudStore> {
    mkdirSync(join(dataDir, 'files', 'objects'), { recursive: true });
    if (opts.db !== undefined && !isPostgresUrl(opts.db)) throw new CloudStoreError(`--db must be a postgres:// URL (the SQLite database is DATA/otadiff.db), not ${JSON.stringify(opts.db.slice(0, 80))}`);
    const location = opts.db ?? join(dataDir, 'otadiff.db');
    let handle: DatabaseHandle;
    try {
      handle = await openDatabaseEngine({ location, durability: opts.durability });
      await migrate(handle).catch(async (e: unknown) => {
        await handle.close();
        throw e;
      });
    } catch (e) {
      if (e instanceof DatabaseError) throw new CloudStoreError(e.message);
      throw e;
    }
    const s = new CloudStore(dataDir, handle, opts);
    try {
      if (opts.importJson ?? true) {
        const { hasJsonData, importJsonDir } = await import('./json-import.js');
        if (hasJsonData(dataDir) && (await s.setting('json_import')) === undefined && (await s.isEmpty())) {
          const r = await importJsonDir(s, dataDir);
          opts.log?.(`imported the JSON data directory ${dataDir}: ${r.products} product(s), ${r.devices} device(s), ${r.firmware} firmware version(s), ${r.jobs} job(s)`);
        }
      }
      await s.loadSecrets();
    } catch (e) {
      await handle.close();
      throw e;
    }
    return s;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  // ---------------------------------------------------------------- settings

  async setting(key: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return r?.value;
  }

  /** Sets `key` unless it has a value; returns the value it has. */
  async settingOnce(key: string, value: string, trx: Transaction<Database> | undefined = undefined): Promise<string> {
    const db = trx ?? this.db;
    await db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
    const r = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirstOrThrow();
    return r.value;
  }

  private async loadSecrets(): Promise<void> {
    const urlSecret = await this.settingOnce('url_secret', generateSecret(48));
    const username = await this.settingOnce('service_username', 'otadiff-cloud');
    const password = await this.settingOnce('service_password', generateSecret(40));
    this.secrets = { urlSecret, service: { username, password } };
  }

  private async isEmpty(): Promise<boolean> {
    const p = await this.db.selectFrom('products').select('product_key').limit(1).executeTakeFirst();
    return p === undefined;
  }

  // ---------------------------------------------------------------- products and devices

  async product(productKey: string): Promise<ProductConfig | undefined> {
    const r = await this.db.selectFrom('products').selectAll().where('product_key', '=', productKey).executeTakeFirst();
    return r && { productKey: r.product_key, mode: r.mode as PackageMode, splitSize: r.split_size, dictSize: r.dict_size };
  }

  async productList(): Promise<ProductConfig[]> {
    const rows = await this.db.selectFrom('products').selectAll().orderBy('product_key').execute();
    return rows.map((r) => ({ productKey: r.product_key, mode: r.mode as PackageMode, splitSize: r.split_size, dictSize: r.dict_size }));
  }

  async addProduct(productKey: string, o: { productSecret?: string; mode?: PackageMode; splitSize?: number; dictSize?: number; audit?: AuditEntry } = {}): Promise<ProductRecord & { config: ProductConfig }> {
    if (!isValidProductKey(productKey)) throw new CloudStoreError(`invalid productKey ${JSON.stringify(productKey)}`);
    const mode = checkMode(o.mode ?? 'inplace');
    const config: ProductConfig = { productKey, mode, splitSize: o.splitSize ?? DEFAULT_SPLIT, dictSize: o.dictSize ?? DEFAULT_DICT };
    const productSecret = checkSecret(o.productSecret ?? generateSecret(), 'productSecret');
    try {
      await this.handle.write(async (trx) => {
        await trx
          .insertInto('products')
          .values({ product_key: productKey, product_secret: productSecret, mode, split_size: config.splitSize, dict_size: config.dictSize, created_at: Date.now() })
          .execute();
        if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: productKey, detail: { mode, splitSize: config.splitSize, dictSize: config.dictSize } });
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new CloudStoreError(`product ${productKey} exists`, 'conflict');
      throw e;
    }
    return { productKey, productSecret, config };
  }

  /**
   * The job a device registered now joins: the product's newest job for all devices, as a waiting
   * row; a rollout's (running or paused) as a held one, for its waves to release. A finished or
   * cancelled rollout takes no new devices.
   */
  private async joinableJob(trx: Transaction<Database>, productKey: string): Promise<{ id: string; state: 'waiting' | 'held' } | undefined> {
    const job = await trx
      .selectFrom('jobs')
      .leftJoin('rollouts', 'rollouts.job_id', 'jobs.id')
      .select(['jobs.id', 'rollouts.state as rollout'])
      .where('jobs.product_key', '=', productKey)
      .where('jobs.target', '=', 'all')
      .orderBy('jobs.created_at', 'desc')
      .orderBy('jobs.id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (job === undefined) return undefined;
    if (job.rollout === null) return { id: job.id, state: 'waiting' };
    return job.rollout === 'running' || job.rollout === 'paused' ? { id: job.id, state: 'held' } : undefined;
  }

  /** Registers a device (a generated secret unless given) with its tags; it joins the product's newest job for all devices. */
  async addDevice(productKey: string, deviceName: string, deviceSecret?: string, o: { tags?: string[]; audit?: AuditEntry } = {}): Promise<DeviceRecord> {
    if (!isValidProductKey(productKey) || !isValidDeviceName(deviceName)) throw new CloudStoreError('invalid productKey or deviceName');
    const secret = checkSecret(deviceSecret ?? generateSecret(), 'deviceSecret');
    const tags = checkTags(o.tags ?? []);
    return this.handle.write(async (trx) => {
      if (!(await this.lockProduct(trx, productKey))) throw new CloudStoreError(`unknown product ${productKey}`, 'not-found');
      const now = Date.now();
      const job = await this.joinableJob(trx, productKey);
      try {
        await trx
          .insertInto('devices')
          .values({ product_key: productKey, device_name: deviceName, device_secret: secret, created_at: now, version: null, last_seen: null, current_job: job?.id ?? null })
          .execute();
      } catch (e) {
        if (isUniqueViolation(e)) throw new CloudStoreError(`device ${productKey}/${deviceName} exists`, 'conflict');
        throw e;
      }
      await addTags(trx, productKey, deviceName, tags);
      if (job !== undefined) {
        await trx.insertInto('device_jobs').values(this.jobRow(job.id, productKey, deviceName, job.state, null, now)).execute();
      }
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: `${productKey}/${deviceName}`, detail: { tags } }, now);
      return { productKey, deviceName, deviceSecret: secret };
    });
  }

  /** Registers many devices in one transaction (the fleet bench); each as addDevice would. */
  async addDevices(productKey: string, devices: ReadonlyArray<{ deviceName: string; deviceSecret?: string; tags?: string[] }>): Promise<DeviceRecord[]> {
    const out: Array<DeviceRecord & { tags: string[] }> = devices.map((d) => {
      if (!isValidDeviceName(d.deviceName)) throw new CloudStoreError(`invalid deviceName ${JSON.stringify(d.deviceName)}`);
      return { productKey, deviceName: d.deviceName, deviceSecret: checkSecret(d.deviceSecret ?? generateSecret(), 'deviceSecret'), tags: checkTags(d.tags ?? []) };
    });
    await this.handle.write(async (trx) => {
      if (!(await this.lockProduct(trx, productKey))) throw new CloudStoreError(`unknown product ${productKey}`, 'not-found');
      const job = await this.joinableJob(trx, productKey);
      const now = Date.now();
      for (const part of chunks(out)) {
        try {
          await trx
            .insertInto('devices')
            .values(part.map((d) => ({ product_key: productKey, device_name: d.deviceName, device_secret: d.deviceSecret, created_at: now, version: null, last_seen: null, current_job: job?.id ?? null })))
            .execute();
        } catch (e) {
          if (isUniqueViolation(e)) throw new CloudStoreError(`a device of ${productKey} exists already`, 'conflict');
          throw e;
        }
        const tagRows = part.flatMap((d) => d.tags.map((tag) => ({ product_key: productKey, device_name: d.deviceName, tag })));
        for (const t of chunks(tagRows)) await trx.insertInto('device_tags').values(t).execute();
        if (job !== undefined) await trx.insertInto('device_jobs').values(part.map((d) => this.jobRow(job.id, productKey, d.deviceName, job.state, null, now))).execute();
      }
    });
    return out.map(({ tags: _tags, ...d }) => d);
  }

  /**
   * Removes a device: its row, tags and job rows (their history with them); its live sessions are
   * ended by every worker (a revocation row they poll). Returns false when there was none.
   */
  async removeDevice(productKey: string, deviceName: string, o: { audit?: AuditEntry } = {}): Promise<boolean> {
    return this.handle.write(async (trx) => {
      const now = Date.now();
      const gone = await trx.deleteFrom('devices').where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
      if (Number(gone.numDeletedRows) === 0) return false;
      await trx.deleteFrom('device_tags').where('product_key', '=', productKey).where('device_name', '=', deviceName).execute();
      await trx.deleteFrom('device_job_events').where('product_key', '=', productKey).where('device_name', '=', deviceName).execute();
      await trx.deleteFrom('device_jobs').where('product_key', '=', productKey).where('device_name', '=', deviceName).execute();
      await trx.insertInto('revocations').values({ product_key: productKey, device_name: deviceName, reason: 'removed', at: now }).execute();
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: `${productKey}/${deviceName}` }, now);
      return true;
    });
  }

  /** A new secret for a device (generated unless given); the old one stops working and live sessions end. */
  async rotateSecret(productKey: string, deviceName: string, o: { deviceSecret?: string; audit?: AuditEntry } = {}): Promise<DeviceRecord> {
    const secret = checkSecret(o.deviceSecret ?? generateSecret(), 'deviceSecret');
    return this.handle.write(async (trx) => {
      const now = Date.now();
      const r = await trx
        .updateTable('devices')
        .set((eb) => ({ device_secret: secret, credential_version: eb('credential_version', '+', 1) }))
        .where('product_key', '=', productKey)
        .where('device_name', '=', deviceName)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) throw new CloudStoreError(`unknown device ${productKey}/${deviceName}`, 'not-found');
      await trx.insertInto('revocations').values({ product_key: productKey, device_name: deviceName, reason: 'secret rotated', at: now }).execute();
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: `${productKey}/${deviceName}` }, now);
      return { productKey, deviceName, deviceSecret: secret };
    });
  }

  /** Adds and removes tags of a device; returns its tags. */
  async tagDevice(productKey: string, deviceName: string, o: { add?: string[]; remove?: string[]; audit?: AuditEntry }): Promise<string[]> {
    const add = checkTags(o.add ?? []);
    const remove = checkTags(o.remove ?? []);
    return this.handle.write(async (trx) => {
      const d = await trx.selectFrom('devices').select('device_name').where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
      if (d === undefined) throw new CloudStoreError(`unknown device ${productKey}/${deviceName}`, 'not-found');
      await removeTags(trx, productKey, deviceName, remove);
      await addTags(trx, productKey, deviceName, add);
      const tags = await tagsOf(trx, productKey, deviceName);
      if (tags.length > MAX_TAGS) throw new CloudStoreError(`a device carries at most ${MAX_TAGS} tags`);
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: `${productKey}/${deviceName}`, detail: { add, remove } });
      return tags;
    });
  }

  async device(productKey: string, deviceName: string): Promise<DeviceRecord | undefined> {
    const r = await this.db
      .selectFrom('devices')
      .select(['product_key', 'device_name', 'device_secret'])
      .where('product_key', '=', productKey)
      .where('device_name', '=', deviceName)
      .executeTakeFirst();
    return r && { productKey: r.product_key, deviceName: r.device_name, deviceSecret: r.device_secret };
  }

  /** The device's secret (the broker's and the CoAP sign-in's lookup). */
  async deviceSecret(productKey: string, deviceName: string): Promise<string | undefined> {
    if (!isValidProductKey(productKey) || !isValidDeviceName(deviceName)) return undefined;
    return (await this.device(productKey, deviceName))?.deviceSecret;
  }

  async deviceCount(productKey?: string): Promise<number> {
    let q = this.db.selectFrom('devices').select((eb) => eb.fn.countAll<number>().as('n'));
    if (productKey !== undefined) q = q.where('product_key', '=', productKey);
    return Number((await q.executeTakeFirstOrThrow()).n);
  }

  // ---------------------------------------------------------------- firmware

  /**
   * Stores a firmware version (immutable: adding the same version twice is refused) with its release:
   * the security counter defaults to the highest of the product's older versions (so a new release
   * keeps the counter monotonic), and may not go below an older version's or above a newer one's
   * unless the release allows a downgrade. The image is written (fsynced) before its row commits.
   */
  async addFirmware(
    productKey: string,
    version: string,
    image: Uint8Array,
    o: { securityCounter?: number; allowDowngrade?: boolean; audit?: AuditEntry } = {},
  ): Promise<{ path: string; size: number; sha256: string; securityCounter: number; allowDowngrade: boolean }> {
    checkReleaseVersion(version);
    if (image.length === 0) throw new CloudStoreError('empty firmware image');
    const allowDowngrade = o.allowDowngrade ?? false;
    if (o.securityCounter !== undefined && (!Number.isInteger(o.securityCounter) || o.securityCounter < 0 || o.securityCounter > MAX_COUNTER))
      throw new CloudStoreError(`security counter must be an integer from 0 to ${MAX_COUNTER}`);
    if ((await this.product(productKey)) === undefined) throw new CloudStoreError(`unknown product ${productKey}`, 'not-found');
    const { sha256, size } = this.objects.put(image);
    return this.handle.write(async (trx) => {
      // One add-firmware per product at a time: the counter checks read the product's other versions.
      if (!(await this.lockProduct(trx, productKey))) throw new CloudStoreError(`unknown product ${productKey}`);
      const releases = await this.releasesIn(trx, productKey);
      if (releases.some((r) => compareVersions(r.version, version) === 0)) throw new CloudStoreError(`${productKey} already has firmware ${version}`, 'conflict');
      const older = releases.filter((r) => compareVersions(r.version, version) < 0);
      const newer = releases.filter((r) => compareVersions(r.version, version) > 0);
      const floor = older.reduce((m, r) => Math.max(m, r.securityCounter), 0);
      const securityCounter = o.securityCounter ?? floor;
      if (!allowDowngrade) {
        const below = older.find((r) => r.securityCounter > securityCounter);
        if (below !== undefined)
          throw new CloudStoreError(`security counter ${securityCounter} of ${version} is below the ${below.securityCounter} of the older ${below.version}: counters must not decrease (or allow a downgrade)`);
        const above = newer.find((r) => r.securityCounter < securityCounter);
        if (above !== undefined)
          throw new CloudStoreError(`security counter ${securityCounter} of ${version} is above the ${above.securityCounter} of the newer ${above.version}: counters must not decrease`);
      }
      await trx
        .insertInto('firmware')
        .values({ product_key: productKey, version, sha256, size, security_counter: securityCounter, allow_downgrade: allowDowngrade ? 1 : 0, created_at: Date.now() })
        .execute();
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: `${productKey}@${version}`, detail: { sha256, size, securityCounter, allowDowngrade } });
      return { path: this.objects.urlPath(sha256), size, sha256, securityCounter, allowDowngrade };
    });
  }

  private async releasesIn(db: Transaction<Database> | DatabaseHandle['db'], productKey: string): Promise<Array<FirmwareRelease & { sha256: string; size: number }>> {
    const rows = await db.selectFrom('firmware').selectAll().where('product_key', '=', productKey).execute();
    return rows
      .map((r) => ({ version: r.version, securityCounter: Number(r.security_counter), allowDowngrade: r.allow_downgrade === 1, sha256: r.sha256, size: Number(r.size) }))
      .sort((a, b) => compareVersions(a.version, b.version));
  }

  /** The releases of every stored version, oldest first. */
  async firmwareReleases(productKey: string): Promise<FirmwareRelease[]> {
    return (await this.releasesIn(this.db, productKey)).map(({ version, securityCounter, allowDowngrade }) => ({ version, securityCounter, allowDowngrade }));
  }

  /** Stored versions, oldest first. */
  async firmwareVersions(productKey: string): Promise<string[]> {
    return (await this.releasesIn(this.db, productKey)).map((r) => r.version);
  }

  /** A stored version (compared as a version: "1.0" finds "1.0.0"): its release and image object. */
  async storedFirmware(productKey: string, version: string): Promise<(FirmwareRelease & { sha256: string; size: number }) | undefined> {
    return (await this.releasesIn(this.db, productKey)).find((r) => compareVersions(r.version, version) === 0);
  }

  private readonly counters = new Map<string, number>();
  /**
   * The security counter of a stored version (exactly as spelt, then compared as a version), or
   * undefined when the store lacks it. Firmware is immutable: a found counter is remembered.
   */
  async releaseCounter(productKey: string, version: string): Promise<number | undefined> {
    const k = `${productKey}\n${version}`;
    const hit = this.counters.get(k);
    if (hit !== undefined) return hit;
    const r = await this.db.selectFrom('firmware').select('security_counter').where('product_key', '=', productKey).where('version', '=', version).executeTakeFirst();
    const c = r !== undefined ? Number(r.security_counter) : (await this.storedFirmware(productKey, version))?.securityCounter;
    if (c === undefined) return undefined;
    if (this.counters.size >= 4096) this.counters.delete(this.counters.keys().next().value!);
    this.counters.set(k, c);
    return c;
  }

  /** The release of a stored version. */
  async firmwareRelease(productKey: string, version: string): Promise<FirmwareRelease | undefined> {
    const f = await this.storedFirmware(productKey, version);
    return f && { version: f.version, securityCounter: f.securityCounter, allowDowngrade: f.allowDowngrade };
  }

  /** The stored image of `version`. */
  async firmware(productKey: string, version: string): Promise<StoredPackage | undefined> {
    const f = await this.storedFirmware(productKey, version);
    if (f === undefined) return undefined;
    return { path: this.objects.urlPath(f.sha256), size: f.size, sha256: f.sha256, bytes: this.objects.read(f.sha256) };
  }

  /** The diff from `from` to `to` for the product's mode (see PackageMaker); undefined when it ships full images or lacks either image. */
  async diffPackage(productKey: string, from: string, to: string): Promise<StoredPackage | undefined> {
    const meta = await this.packages.diff(productKey, from, to);
    return meta && this.packages.withBytes(meta);
  }

  /** The full image of `version` as a raw (OTA_RAW) package. */
  async rawPackage(productKey: string, version: string): Promise<StoredPackage | undefined> {
    const meta = await this.packages.raw(productKey, version);
    return meta && this.packages.withBytes(meta);
  }

  /** The package metadata a notice needs (no bytes). */
  packageMeta(productKey: string, from: string | undefined, to: string): Promise<{ meta: PackageMeta; isDiff: boolean; diffError?: Error }> {
    return this.packages.forDevice(productKey, from, to);
  }

  // ---------------------------------------------------------------- jobs

  /**
   * Serialises changes to one product's devices and jobs: PostgreSQL locks its row until commit;
   * SQLite's write transaction holds the whole database already. False when there is no such product.
   */
  private async lockProduct(trx: Transaction<Database>, productKey: string): Promise<boolean> {
    let q = trx.selectFrom('products').select('product_key').where('product_key', '=', productKey);
    if (this.engine === 'postgres') q = q.forUpdate();
    return (await q.executeTakeFirst()) !== undefined;
  }

  jobRow(jobId: string, productKey: string, deviceName: string, state: DeviceJobState, fromVersion: string | null, now: number, detail: string | null = null): NewDeviceJob {
    return {
      job_id: jobId,
      product_key: productKey,
      device_name: deviceName,
      state,
      from_version: state === 'queued' ? fromVersion : null,
      detail,
      wave: null,
      released_at: null,
      pushes: 0,
      created_at: now,
      queued_at: state === 'queued' ? now : null,
      updated_at: now,
      finished_at: FINAL_STATES.includes(state) ? now : null,
    };
  }

  /**
   * Creates an upgrade job: `version` for the listed devices (default: all of the product, also those
   * added later). In the same transaction each device's unfinished job is superseded and the devices
   * known to run an older version are queued for a notice; the others wait for their version.
   */
  async createJob(o: NewJob & { audit?: AuditEntry }): Promise<OtaJob> {
    const target = await this.checkJob(o);
    return this.handle.write(async (trx) => {
      const { job } = await this.createJobIn(trx, o, target);
      if (o.audit !== undefined) await writeAudit(trx, { ...o.audit, target: job.id, detail: { productKey: job.productKey, version: job.version, devices: job.devices === 'all' ? 'all' : job.devices.length, ...o.audit.detail } });
      return job;
    });
  }

  /** The checks of a new job before its transaction: the product, the version and its release. */
  async checkJob(o: NewJob): Promise<JobTarget> {
    checkVersion(o.version);
    if (o.devices !== undefined && o.devices.length > MAX_JOB_DEVICES) throw new CloudStoreError(`a job lists at most ${MAX_JOB_DEVICES} devices`);
    if (o.downloadProtocol !== undefined && o.downloadProtocol !== 'http' && o.downloadProtocol !== 'coap') throw new CloudStoreError(`unknown download protocol ${String(o.downloadProtocol)}`);
    if ((await this.product(o.productKey)) === undefined) throw new CloudStoreError(`unknown product ${o.productKey}`, 'not-found');
    const f = await this.storedFirmware(o.productKey, o.version);
    if (f === undefined) throw new CloudStoreError(`${o.productKey} has no firmware ${o.version}; add it first`, 'not-found');
    return { version: f.version, allowDowngrade: f.allowDowngrade, securityCounter: f.securityCounter };
  }

  /**
   * A job in the caller's transaction: each listed device's (default: every device of the product's)
   * unfinished job is superseded, and each gets a row: queued when it runs a version the job moves
   * (job-target.ts), skipped, or waiting for its version; with `hold`, every row is held for a
   * rollout's waves to release.
   */
  async createJobIn(trx: Transaction<Database>, o: NewJob, target: JobTarget, opts: { hold?: boolean } = {}): Promise<{ job: OtaJob; devices: number }> {
    const list = o.devices === undefined || (o.devices.length === 0 && !o.listed) ? undefined : [...new Set(o.devices)];
    // Jobs and registrations of a product one at a time, and its device rows held until commit:
    // an inform handled meanwhile waits, then finds this job (device-status.ts).
    if (!(await this.lockProduct(trx, o.productKey))) throw new CloudStoreError(`unknown product ${o.productKey}`, 'not-found');
    const now = Date.now();
    const id = `${now}-${randomBytes(4).toString('hex')}`;
    let q = trx.selectFrom('devices').select(['device_name', 'version', 'recorded_counter']).where('product_key', '=', o.productKey);
    if (this.engine === 'postgres') q = q.forUpdate();
    const devices: Array<{ device_name: string; version: string | null; recorded_counter: number }> = [];
    if (list === undefined) devices.push(...(await q.execute()));
    else {
      for (const part of chunks(list)) devices.push(...(await q.where('device_name', 'in', part).execute()));
      if (devices.length !== list.length) {
        const known = new Set(devices.map((d) => d.device_name));
        throw new CloudStoreError(`unknown device ${o.productKey}/${list.find((d) => !known.has(d))}`, 'not-found');
      }
    }
    await trx
      .insertInto('jobs')
      .values({
        id,
        product_key: o.productKey,
        version: target.version,
        target: list === undefined ? 'all' : 'list',
        download_protocol: o.downloadProtocol ?? null,
        created_at: now,
        allow_downgrade: target.allowDowngrade ? 1 : 0,
        security_counter: target.securityCounter,
      })
      .execute();
    const unfinished = FINAL_STATES as DeviceJobState[];
    if (list === undefined) {
      await trx
        .updateTable('device_jobs')
        .set({ state: 'superseded', updated_at: now, finished_at: now })
        .where('product_key', '=', o.productKey)
        .where('state', 'not in', unfinished)
        .execute();
      await trx.updateTable('devices').set({ current_job: id }).where('product_key', '=', o.productKey).execute();
    } else {
      for (const part of chunks(list)) {
        await trx.insertInto('job_devices').values(part.map((device_name) => ({ job_id: id, device_name }))).execute();
        await trx
          .updateTable('device_jobs')
          .set({ state: 'superseded', updated_at: now, finished_at: now })
          .where('product_key', '=', o.productKey)
          .where('device_name', 'in', part)
          .where('state', 'not in', unfinished)
          .execute();
        await trx.updateTable('devices').set({ current_job: id }).where('product_key', '=', o.productKey).where('device_name', 'in', part).execute();
      }
    }
    for (const part of chunks(devices)) {
      await trx
        .insertInto('device_jobs')
        .values(
          part.map((d) => {
            if (opts.hold === true) return this.jobRow(id, o.productKey, d.device_name, 'held', null, now);
            const s = initialJobState(d.version, target, Number(d.recorded_counter));
            return this.jobRow(id, o.productKey, d.device_name, s.state, d.version, now, s.detail);
          }),
        )
        .execute();
    }
    const job: OtaJob = { id, productKey: o.productKey, version: target.version, devices: list ?? 'all', createdAt: now };
    if (o.downloadProtocol !== undefined) job.downloadProtocol = o.downloadProtocol;
    return { job, devices: devices.length };
  }

  /** Every job, oldest first. */
  async jobs(): Promise<OtaJob[]> {
    const rows = await this.db.selectFrom('jobs').selectAll().orderBy('created_at').orderBy('id').execute();
    const lists = new Map<string, string[]>();
    const listed = rows.filter((r) => r.target === 'list').map((r) => r.id);
    for (const part of chunks(listed)) {
      for (const m of await this.db.selectFrom('job_devices').selectAll().where('job_id', 'in', part).orderBy('device_name').execute()) {
        let l = lists.get(m.job_id);
        if (l === undefined) lists.set(m.job_id, (l = []));
        l.push(m.device_name);
      }
    }
    return rows.map((r) => this.jobOf(r, lists.get(r.id) ?? []));
  }

  /** One job (without its device list: `devices` is 'all' or the list's length in names is not needed). */
  async job(id: string): Promise<OtaJob | undefined> {
    const r = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (r === undefined) return undefined;
    const names = r.target === 'list' ? (await this.db.selectFrom('job_devices').select('device_name').where('job_id', '=', id).execute()).map((x) => x.device_name) : [];
    return this.jobOf(r, names);
  }

  private jobOf(r: { id: string; product_key: string; version: string; target: string; download_protocol: string | null; created_at: number }, names: string[]): OtaJob {
    const job: OtaJob = { id: r.id, productKey: r.product_key, version: r.version, devices: r.target === 'all' ? 'all' : names, createdAt: Number(r.created_at) };
    if (r.download_protocol === 'http' || r.download_protocol === 'coap') job.downloadProtocol = r.download_protocol;
    return job;
  }

  // ---------------------------------------------------------------- status

  /** Every registered device with its last version and its current job's state. */
  async status(o: { productKey?: string } = {}): Promise<CloudStatus> {
    let q = this.db
      .selectFrom('devices as d')
      .leftJoin('device_jobs as j', (join) => join.onRef('j.job_id', '=', 'd.current_job').onRef('j.product_key', '=', 'd.product_key').onRef('j.device_name', '=', 'd.device_name'))
      .leftJoin('jobs as jb', 'jb.id', 'd.current_job')
      .select([
        'd.product_key',
        'd.device_name',
        'd.version',
        'd.last_seen',
        'd.current_job',
        'jb.version as target',
        'j.state',
        'j.step',
        'j.detail',
        'j.is_diff',
        'j.package_bytes',
        'j.from_version',
        'j.pushes',
        'j.updated_at',
      ])
      .orderBy('d.product_key')
      .orderBy('d.device_name');
    if (o.productKey !== undefined) q = q.where('d.product_key', '=', o.productKey);
    const rows = await q.execute();
    return {
      devices: rows.map((r) => {
        const s: DeviceStatus = { productKey: r.product_key, deviceName: r.device_name, state: r.state ?? (r.version === null ? 'never-seen' : 'idle') };
        if (r.version !== null) s.version = r.version;
        if (r.last_seen !== null) s.lastSeen = Number(r.last_seen);
        if (r.current_job !== null && r.state !== null && r.target !== null) {
          s.job = { id: r.current_job, version: r.target, state: r.state, pushes: Number(r.pushes ?? 0), updatedAt: Number(r.updated_at) };
          if (r.step !== null) s.job.step = r.step;
          if (r.detail !== null) s.job.desc = r.detail;
          if (r.is_diff !== null) s.job.isDiff = r.is_diff === 1;
          if (r.package_bytes !== null) s.job.packageBytes = Number(r.package_bytes);
          if (r.from_version !== null) s.job.fromVersion = r.from_version;
        }
        return s;
      }),
    };
  }

  /**
   * Whether a device may still download for a job: it was sent the job's notice and has not finished
   * (a download URL is bound to both; the file server asks at every request).
   */
  async downloadAllowed(jobId: string, productKey: string, deviceName: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('device_jobs')
      .select(['state', 'pushes'])
      .where('job_id', '=', jobId)
      .where('product_key', '=', productKey)
      .where('device_name', '=', deviceName)
      .executeTakeFirst();
    return row !== undefined && isTold(row.state, Number(row.pushes));
  }

  /** Devices per job state of one job (the bench and `status` summaries). */
  async jobCounts(jobId: string): Promise<Partial<Record<DeviceJobState, number>>> {
    const rows = await this.db
      .selectFrom('device_jobs')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('job_id', '=', jobId)
      .groupBy('state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }
}

