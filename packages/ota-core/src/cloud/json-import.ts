// Imports a data directory in the JSON format from before the database (otadiff 0.1's
// registry.json, cloud.json, products.json, files/fw/PK/VERSION.bin + .json, jobs/ID.json and
// status.json) into a store, in one transaction: products and devices with their secrets, the URL
// key and broker credential, firmware with its releases, jobs, and each device's last version and
// job state. Every file is validated as untrusted input first; nothing is written when one is bad.
// The JSON files are left as they were.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudStoreError, checkVersion, initialJobState, type CloudStore, type FirmwareRelease, type OtaJob, type PackageMode, type ProductConfig } from './cloud-store.js';
import { FINAL_STATES, type DeviceJobState } from './db/schema.js';
import { DeviceRegistry, RegistryError } from './device-registry.js';
import { isValidDeviceName, isValidProductKey } from '../protocol/topics.js';
import { compareVersions, isValidVersion } from '../protocol/version.js';

const MAX_COUNTER = 0xffff_ffff;
const JOB_ID_RE = /^[0-9]{13}-[0-9a-f]{8}$/;
const MAX_FILE_BYTES = 512 * 1024 * 1024;
const JOB_STATES: readonly string[] = ['notified', 'downloading', 'downloaded', 'succeeded', 'failed'];

export interface ImportSummary {
  products: number;
  devices: number;
  firmware: number;
  jobs: number;
}

/** A JSON data directory: it has the registry or the products file of the old format. */
export function hasJsonData(dir: string): boolean {
  return existsSync(join(dir, 'registry.json')) || existsSync(join(dir, 'products.json'));
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CloudStoreError(`${what} ${path} is unreadable: ${(e as Error).message}`);
  }
}

function parseProducts(raw: unknown): Map<string, ProductConfig> {
  const out = new Map<string, ProductConfig>();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CloudStoreError('products.json must be an object');
  for (const [pk, v] of Object.entries(raw as Record<string, unknown>)) {
    const c = v as Partial<ProductConfig> | null;
    if (!isValidProductKey(pk) || typeof c !== 'object' || c === null) throw new CloudStoreError(`products.json: bad entry ${JSON.stringify(pk).slice(0, 80)}`);
    if (c.mode !== 'inplace' && c.mode !== 'ab' && c.mode !== 'full') throw new CloudStoreError(`products.json: ${pk}.mode must be inplace, ab or full`);
    for (const k of ['splitSize', 'dictSize'] as const) {
      const n = c[k];
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new CloudStoreError(`products.json: ${pk}.${k} must be a positive integer`);
    }
    out.set(pk, { productKey: pk, mode: c.mode, splitSize: c.splitSize!, dictSize: c.dictSize! });
  }
  return out;
}

function parseRelease(raw: unknown, version: string, file: string): FirmwareRelease {
  const r = raw as Partial<FirmwareRelease> | null;
  if (typeof r !== 'object' || r === null) throw new CloudStoreError(`${file} must be an object`);
  const c = r.securityCounter;
  if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > MAX_COUNTER) throw new CloudStoreError(`${file}: securityCounter must be an integer from 0 to ${MAX_COUNTER}`);
  if (typeof r.allowDowngrade !== 'boolean') throw new CloudStoreError(`${file}: allowDowngrade must be true or false`);
  return { version, securityCounter: c, allowDowngrade: r.allowDowngrade };
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

interface OldStatus {
  version?: string;
  lastSeen?: number;
  job?: { id: string; state: DeviceJobState; step?: number; desc?: string; isDiff?: boolean; packageBytes?: number; fromVersion?: string; updatedAt: number };
}

/** status.json's entries that are well formed (it is the server's own cache: a bad entry is skipped, not fatal). */
function parseStatus(raw: unknown): Map<string, OldStatus> {
  const out = new Map<string, OldStatus>();
  const list = (raw as { devices?: unknown } | null)?.devices;
  if (!Array.isArray(list)) return out;
  const str = (v: unknown, max = 1000): string | undefined => (typeof v === 'string' && v.length <= max ? v : undefined);
  const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined);
  for (const d of list.slice(0, 2_000_000) as Array<Record<string, unknown>>) {
    if (typeof d !== 'object' || d === null || !isValidProductKey(d.productKey) || !isValidDeviceName(d.deviceName)) continue;
    const s: OldStatus = {};
    const v = str(d.version, 64);
    if (v !== undefined && isValidVersion(v)) s.version = v;
    s.lastSeen = int(d.lastSeen);
    const j = d.job as Record<string, unknown> | undefined;
    if (typeof j === 'object' && j !== null && typeof j.id === 'string' && JOB_ID_RE.test(j.id) && typeof j.state === 'string' && JOB_STATES.includes(j.state)) {
      s.job = { id: j.id, state: j.state as DeviceJobState, step: int(j.step), desc: str(j.desc), isDiff: typeof j.isDiff === 'boolean' ? j.isDiff : undefined, packageBytes: int(j.packageBytes), fromVersion: str(j.fromVersion, 64), updatedAt: int(j.updatedAt) ?? Date.now() };
    }
    out.set(`${d.productKey}/${d.deviceName}`, s);
  }
  return out;
}

/** Imports `dir` into `store`, which must hold no product yet. */
export async function importJsonDir(store: CloudStore, dir: string): Promise<ImportSummary> {
  if (!hasJsonData(dir)) throw new CloudStoreError(`${dir} is not a JSON data directory of otadiff (no registry.json or products.json)`);
  // Everything is read and validated before the first write.
  let registry: DeviceRegistry;
  try {
    registry = await DeviceRegistry.open(join(dir, 'registry.json'));
  } catch (e) {
    if (e instanceof RegistryError || e instanceof SyntaxError) throw new CloudStoreError(`${join(dir, 'registry.json')}: ${(e as Error).message}`);
    throw e;
  }
  const pPath = join(dir, 'products.json');
  const configs = existsSync(pPath) ? parseProducts(readJson(pPath, 'products')) : new Map<string, ProductConfig>();
  const secretsPath = join(dir, 'cloud.json');
  let secrets: { urlSecret: string; username: string; password: string } | undefined;
  if (existsSync(secretsPath)) {
    const s = readJson(secretsPath, 'cloud secrets') as { urlSecret?: unknown; service?: { username?: unknown; password?: unknown } } | null;
    if (typeof s?.urlSecret !== 'string' || s.urlSecret.length < 16 || typeof s.service?.username !== 'string' || typeof s.service.password !== 'string')
      throw new CloudStoreError(`${secretsPath} lacks urlSecret/service`);
    secrets = { urlSecret: s.urlSecret, username: s.service.username, password: s.service.password };
  }
  const productKeys = new Set([...configs.keys(), ...registry.listDevices().map((d) => d.productKey)]);
  for (const pk of configs.keys()) if (registry.getProduct(pk) === undefined) throw new CloudStoreError(`products.json names ${pk}, registry.json does not`);
  const firmware: Array<{ productKey: string; release: FirmwareRelease; file: string }> = [];
  for (const pk of productKeys) {
    const fwDir = join(dir, 'files', 'fw', pk);
    if (!existsSync(fwDir)) continue;
    for (const f of readdirSync(fwDir)) {
      if (!f.endsWith('.bin')) continue;
      const v = f.slice(0, -4);
      checkVersion(v);
      const relFile = join(fwDir, `${v}.json`);
      const release = existsSync(relFile) ? parseRelease(readJson(relFile, 'firmware release'), v, relFile) : { version: v, securityCounter: 0, allowDowngrade: false };
      firmware.push({ productKey: pk, release, file: join(fwDir, f) });
    }
  }
  const jobs: OtaJob[] = [];
  const jobsDir = join(dir, 'jobs');
  if (existsSync(jobsDir)) for (const f of readdirSync(jobsDir)) if (f.endsWith('.json')) jobs.push(parseJob(readJson(join(jobsDir, f), 'job'), f));
  jobs.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  for (const j of jobs) {
    if (!productKeys.has(j.productKey)) throw new CloudStoreError(`job ${j.id} is for unknown product ${j.productKey}`);
    if (j.devices !== 'all') for (const d of j.devices) if (registry.getDevice(j.productKey, d) === undefined) throw new CloudStoreError(`job ${j.id} lists unknown device ${j.productKey}/${d}`);
  }
  const statusPath = join(dir, 'status.json');
  const status = existsSync(statusPath) ? parseStatus(readJson(statusPath, 'status')) : new Map<string, OldStatus>();

  // Images first (fsynced objects); rows in one transaction after.
  const objects = firmware.map((f) => {
    const bytes = readFileSync(f.file);
    if (bytes.length === 0 || bytes.length > MAX_FILE_BYTES) throw new CloudStoreError(`${f.file}: an image of ${bytes.length} bytes`);
    return { ...f, ...store.objects.put(new Uint8Array(bytes)) };
  });
  const now = Date.now();
  await store.handle.write(async (trx) => {
    if ((await trx.selectFrom('products').select('product_key').limit(1).executeTakeFirst()) !== undefined) {
      throw new CloudStoreError('the target database holds products already: import into an empty one');
    }
    const upsert = async (key: string, value: string): Promise<void> => {
      await trx.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
    };
    if (secrets !== undefined) {
      await upsert('url_secret', secrets.urlSecret);
      await upsert('service_username', secrets.username);
      await upsert('service_password', secrets.password);
    }
    for (const pk of productKeys) {
      const c = configs.get(pk) ?? { productKey: pk, mode: 'inplace' as PackageMode, splitSize: 64 * 1024, dictSize: 16 * 1024 };
      const secret = registry.getProduct(pk)!.productSecret;
      await trx.insertInto('products').values({ product_key: pk, product_secret: secret, mode: c.mode, split_size: c.splitSize, dict_size: c.dictSize, created_at: now }).execute();
    }
    for (const f of objects) {
      await trx
        .insertInto('firmware')
        .values({ product_key: f.productKey, version: f.release.version, sha256: f.sha256, size: f.size, security_counter: f.release.securityCounter, allow_downgrade: f.release.allowDowngrade ? 1 : 0, created_at: now })
        .execute();
    }
    for (const j of jobs) {
      await trx.insertInto('jobs').values({ id: j.id, product_key: j.productKey, version: j.version, target: j.devices === 'all' ? 'all' : 'list', download_protocol: j.downloadProtocol ?? null, created_at: j.createdAt }).execute();
      if (j.devices !== 'all') for (const d of j.devices) await trx.insertInto('job_devices').values({ job_id: j.id, device_name: d }).execute();
    }
    for (const d of registry.listDevices()) {
      const s = status.get(`${d.productKey}/${d.deviceName}`) ?? {};
      // The newest job that covers the device is its current one (as the JSON store decided).
      const job = [...jobs].reverse().find((j) => j.productKey === d.productKey && (j.devices === 'all' || j.devices.includes(d.deviceName)));
      await trx
        .insertInto('devices')
        .values({ product_key: d.productKey, device_name: d.deviceName, device_secret: d.deviceSecret, created_at: now, version: s.version ?? null, last_seen: s.lastSeen ?? null, current_job: job?.id ?? null })
        .execute();
      if (job === undefined) continue;
      const old = s.job?.id === job.id ? s.job : undefined;
      let state: DeviceJobState = old?.state ?? initialJobState(s.version ?? null, job.version).state;
      // A device that was told and has not finished is told again (a download resumes from its checkpoint).
      if (!FINAL_STATES.includes(state) && state !== 'waiting' && s.version !== undefined && compareVersions(s.version, job.version) < 0) state = 'queued';
      await trx
        .insertInto('device_jobs')
        .values({
          job_id: job.id,
          product_key: d.productKey,
          device_name: d.deviceName,
          state,
          step: old?.step ?? null,
          detail: old?.desc ?? null,
          from_version: old?.fromVersion ?? s.version ?? null,
          is_diff: old?.isDiff === undefined ? null : old.isDiff ? 1 : 0,
          package_bytes: old?.packageBytes ?? null,
          pushes: old === undefined ? 0 : 1,
          created_at: now,
          queued_at: state === 'queued' ? now : null,
          notified_at: old === undefined ? null : old.updatedAt,
          updated_at: old?.updatedAt ?? now,
          finished_at: FINAL_STATES.includes(state) ? (old?.updatedAt ?? now) : null,
        })
        .execute();
    }
    await upsert('json_import', JSON.stringify({ from: dir, at: new Date(now).toISOString() }));
  });
  return { products: productKeys.size, devices: registry.listDevices().length, firmware: objects.length, jobs: jobs.length };
}
