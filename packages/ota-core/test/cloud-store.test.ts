// The cloud store's contract, the same suite on both engines (SQLite always, PostgreSQL when a
// server answers: helpers/engines.ts): releases (security counter, allow-downgrade, version length),
// the signed packages it makes, jobs and each device's job state, the push queue shared by several
// connections, migrations, workers, and the import of a JSON data directory.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { checkTrust, recordsOffset, SignatureType, type PackageHeader } from '@otadiff/patch-apply';
import { CloudStore, CloudStoreError } from '../src/cloud/cloud-store.js';
import { recordInform, recordProgress } from '../src/cloud/device-status.js';
import { claimPushes, expireNotices } from '../src/cloud/push-queue.js';
import { claimDead, deadWorkers, heartbeat, registerWorker } from '../src/cloud/workers.js';
import { SCHEMA_VERSION } from '../src/cloud/db/migrations.js';
import { DeviceConfigError, parseDeviceConfig } from '../src/device/device-config.js';
import { resolveTrustedKeys, TrustedKeyError } from '../src/device/trusted-keys.js';
import { ENGINES, engineContext, type EngineContext } from './helpers/engines.js';
import { firmwarePair, packageKeys } from './helpers/ota-rig.js';
import { testBytes } from './helpers/http.js';

const PK = 'a1Store';
const pair = firmwarePair(48 * 1024, 51);
const keys = packageKeys();

function trusted(pkg: Uint8Array, h: PackageHeader, securityCounter?: number): void {
  checkTrust(h, pkg.subarray(0, h.headerLength), pkg.subarray(h.headerLength, recordsOffset(h)), { keys: resolveTrustedKeys([keys.publicKey]), securityCounter });
}

const d = (deviceName: string) => ({ productKey: PK, deviceName });

describe.each(ENGINES)('the cloud store on %s', (engine) => {
  let ctx: EngineContext;
  beforeEach(async () => {
    ctx = await engineContext(engine);
  });
  afterEach(async () => {
    await ctx.close();
  });
  async function store(opts: Parameters<EngineContext['open']>[0] = {}, mode: 'inplace' | 'full' = 'inplace'): Promise<CloudStore> {
    const s = await ctx.open(opts);
    if ((await s.product(PK)) === undefined) await s.addProduct(PK, { mode, splitSize: 16 * 1024 });
    return s;
  }

  describe('firmware releases', () => {
    it('a security counter defaults to the highest of the older versions and never decreases with the version', async () => {
      const s = await store();
      expect(await s.addFirmware(PK, '1.0.0', testBytes(100, 1))).toMatchObject({ securityCounter: 0, allowDowngrade: false });
      expect(await s.addFirmware(PK, '1.1.0', testBytes(100, 2), { securityCounter: 3 })).toMatchObject({ securityCounter: 3 });
      expect(await s.addFirmware(PK, '1.2.0', testBytes(100, 3))).toMatchObject({ securityCounter: 3 });
      await expect(s.addFirmware(PK, '1.3.0', testBytes(100, 4), { securityCounter: 2 })).rejects.toThrow(/security counter 2 of 1\.3\.0 is below the 3 of the older 1\.(1|2)\.0/);
      await expect(s.addFirmware(PK, '1.0.5', testBytes(100, 5), { securityCounter: 4 })).rejects.toThrow(/above the 3 of the newer 1\.1\.0/);
      // The owner's deliberate exception.
      expect(await s.addFirmware(PK, '1.3.0', testBytes(100, 4), { securityCounter: 1, allowDowngrade: true })).toMatchObject({ securityCounter: 1, allowDowngrade: true });
      expect(await s.firmwareRelease(PK, '1.1')).toEqual({ version: '1.1.0', securityCounter: 3, allowDowngrade: false });
      await expect(s.addFirmware(PK, '2.0.0', testBytes(100, 6), { securityCounter: 2 ** 32 })).rejects.toThrow(/security counter must be an integer/);
      await expect(s.addFirmware(PK, '1.1', testBytes(100, 7))).rejects.toThrow(/already has firmware 1\.1/);
      expect(await s.firmwareVersions(PK)).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    });

    it('a version must fit the signed header: at most 32 printable ASCII characters', async () => {
      const s = await store();
      const long = `1.0.0-${'a'.repeat(27)}`; // 33 characters, a valid version otherwise
      await expect(s.addFirmware(PK, long, testBytes(10, 1))).rejects.toThrow(CloudStoreError);
      await expect(s.addFirmware(PK, long, testBytes(10, 1))).rejects.toThrow(/at most 32 printable ASCII characters/);
      expect((await s.addFirmware(PK, long.slice(0, 32), testBytes(10, 1))).size).toBe(10);
    });

    it('images are content-addressed objects, read back checked against their address', async () => {
      const s = await store();
      const r = await s.addFirmware(PK, '1.0.0', pair.old);
      expect(r.path).toBe(`/objects/${r.sha256.slice(0, 2)}/${r.sha256}`);
      expect(existsSync(join(ctx.dataDir, 'files', r.path))).toBe(true);
      expect(Buffer.compare((await s.firmware(PK, '1.0'))!.bytes, pair.old)).toBe(0);
      await writeFile(join(ctx.dataDir, 'files', r.path), testBytes(pair.old.length, 9));
      await expect(s.firmware(PK, '1.0.0')).rejects.toThrow(/damaged/);
    });
  });

  describe('packages the store makes', () => {
    it('diffs are signed with the store key and carry the target release; made once', async () => {
      const s = await store({ signingKey: keys.privateKey });
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu, { securityCounter: 4 });
      const pkg = (await s.diffPackage(PK, '1.0.0', '2.0'))!;
      expect(pkg.header).toMatchObject({ mode: 'inplace', firmwareVersion: '2.0.0', securityCounter: 4, allowDowngrade: false, signatureType: SignatureType.ed25519 });
      trusted(pkg.bytes, pkg.header!, 4);
      expect(() => trusted(pkg.bytes, pkg.header!, 5)).toThrow(/security counter 4 is below the 5/);
      // Made once: another store on the same database finds the same package (a signature made again would differ).
      const other = await ctx.open({ signingKey: keys.privateKey });
      expect((await other.diffPackage(PK, '1.0.0', '2.0.0'))!.sha256).toBe(pkg.sha256);
      const meta = await other.packageMeta(PK, '1.0.0', '2.0.0');
      expect(meta).toMatchObject({ isDiff: true, meta: { sha256: pkg.sha256, size: pkg.size, splitSize: 16 * 1024 } });
      // A device on a version the store lacks gets the full image.
      expect(await other.packageMeta(PK, '0.9.0', '2.0.0')).toMatchObject({ isDiff: false });
    });

    it('full images are raw (OTA_RAW) packages; made packages follow a change of key', async () => {
      const signedStore = await store({ signingKey: keys.privateKey }, 'full');
      await signedStore.addFirmware(PK, '2.0.0', pair.neu, { securityCounter: 2 });
      expect(await signedStore.diffPackage(PK, '1.0.0', '2.0.0')).toBeUndefined();
      const raw = (await signedStore.rawPackage(PK, '2.0.0'))!;
      expect(raw.header).toMatchObject({ mode: 'raw', oldSize: 0, newSize: pair.neu.length, firmwareVersion: '2.0.0', securityCounter: 2, signatureType: SignatureType.ed25519 });
      trusted(raw.bytes, raw.header!);
      expect(Buffer.compare(raw.bytes.subarray(recordsOffset(raw.header!)), pair.neu)).toBe(0);
      const unsignedStore = await ctx.open();
      const plain = (await unsignedStore.rawPackage(PK, '2.0.0'))!;
      expect(plain.path).not.toBe(raw.path);
      expect(plain.header).toMatchObject({ signatureType: SignatureType.none, securityCounter: 2 });
      expect(() => trusted(plain.bytes, plain.header!)).toThrow(/not signed/);
      expect(existsSync(join(ctx.dataDir, 'files', raw.path))).toBe(true);
      expect(await unsignedStore.rawPackage(PK, '9.9.9')).toBeUndefined();
    });
  });

  describe('devices and jobs', () => {
    it('refuses bad and duplicate products and devices, with the reason', async () => {
      const s = await store();
      await expect(s.addProduct(PK)).rejects.toThrow(/product a1Store exists/);
      await expect(s.addProduct('no spaces')).rejects.toThrow(/invalid productKey/);
      await s.addDevice(PK, 'dev-0001');
      await expect(s.addDevice(PK, 'dev-0001')).rejects.toThrow(/device a1Store\/dev-0001 exists/);
      await expect(s.addDevice('a1Nope', 'dev-0002')).rejects.toThrow(/unknown product/);
      await expect(s.addDevice(PK, 'dev-0003', 'short')).rejects.toThrow(/8\.\.128 printable/);
      expect(await s.deviceCount()).toBe(1);
    });

    it('concurrent registrations from several connections all land, each with its own secret', async () => {
      const stores = [await store(), await ctx.open(), await ctx.open(), await ctx.open()];
      const made = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length].addDevice(PK, `dev-${String(i).padStart(4, '0')}`)));
      expect(new Set(made.map((m) => m.deviceSecret)).size).toBe(40);
      for (const m of made) expect(await stores[0].deviceSecret(PK, m.deviceName)).toBe(m.deviceSecret);
      expect(await stores[1].deviceCount(PK)).toBe(40);
    });

    it('a job queues the devices known to be older, waits for the unknown, skips the current; later devices join it', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      for (const n of ['old-1', 'new-1', 'unk-1']) await s.addDevice(PK, n);
      await recordInform(s, d('old-1'), '1.0.0');
      await recordInform(s, d('new-1'), '2.0');
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      expect(job).toMatchObject({ productKey: PK, version: '2.0.0', devices: 'all' });
      await s.addDevice(PK, 'late-1');
      const st = Object.fromEntries((await s.status()).devices.map((x) => [x.deviceName, x]));
      expect(st['old-1']).toMatchObject({ version: '1.0.0', state: 'queued', job: { id: job.id, version: '2.0.0', state: 'queued', pushes: 0 } });
      expect(st['new-1'].state).toBe('skipped');
      expect(st['unk-1']).toMatchObject({ state: 'waiting' });
      expect(st['unk-1'].version).toBeUndefined();
      expect(st['late-1'].state).toBe('waiting');
      expect(await s.jobCounts(job.id)).toEqual({ queued: 1, skipped: 1, waiting: 2 });
      // The unknown device reports in: queued now, with the version its diff starts from.
      expect(await recordInform(s, d('unk-1'), '1.0.0')).toEqual({ kind: 'queued', jobId: job.id, again: false });
      await expect(s.createJob({ productKey: PK, version: '3.0.0' })).rejects.toThrow(/has no firmware 3\.0\.0/);
      await expect(s.createJob({ productKey: PK, version: '2.0.0', devices: ['old-1', 'ghost'] })).rejects.toThrow(/unknown device a1Store\/ghost/);
    });

    it('a newer job supersedes an unfinished one; a listed job touches only its devices', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      await s.addFirmware(PK, '2.1.0', testBytes(1000, 3));
      for (const n of ['a', 'b']) {
        await s.addDevice(PK, `dev-${n}`);
        await recordInform(s, d(`dev-${n}`), '1.0.0');
      }
      const j1 = await s.createJob({ productKey: PK, version: '2.0.0' });
      const j2 = await s.createJob({ productKey: PK, version: '2.1.0', devices: ['dev-a'] });
      expect((await s.jobs()).map((j) => [j.id, j.devices])).toEqual([
        [j1.id, 'all'],
        [j2.id, ['dev-a']],
      ]);
      const st = Object.fromEntries((await s.status()).devices.map((x) => [x.deviceName, x]));
      expect(st['dev-a'].job).toMatchObject({ id: j2.id, version: '2.1.0', state: 'queued' });
      expect(st['dev-b'].job).toMatchObject({ id: j1.id, state: 'queued' });
      expect(await s.jobCounts(j1.id)).toEqual({ superseded: 1, queued: 1 });
    });

    it('informs and progress move a job forward only, whatever order they are handled in', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      await s.addDevice(PK, 'dev-1');
      await recordInform(s, d('dev-1'), '1.0.0');
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      const [c] = await claimPushes(s, 'w1', 10);
      expect(c).toMatchObject({ jobId: job.id, deviceName: 'dev-1', fromVersion: '1.0.0' });
      expect(await recordProgress(s, d('dev-1'), 100, 'verified')).toEqual({ kind: 'progress', jobId: job.id, state: 'downloaded' });
      expect(await recordProgress(s, d('dev-1'), 40, 'late')).toEqual({ kind: 'ignored' }); // a late report
      expect((await s.status()).devices[0].job).toMatchObject({ state: 'downloaded', step: 100, desc: 'verified', pushes: 1 });
      expect(await recordInform(s, d('dev-1'), '2.0.0')).toEqual({ kind: 'succeeded', jobId: job.id });
      expect(await recordInform(s, d('dev-1'), '2.0.0')).toEqual({ kind: 'recorded' }); // again: no change
      expect(await recordProgress(s, d('dev-1'), -1, 'a stray failure')).toEqual({ kind: 'ignored' });
      expect((await s.status()).devices[0]).toMatchObject({ version: '2.0.0', state: 'succeeded' });
      expect(await recordInform(s, d('ghost'), '1.0.0')).toEqual({ kind: 'unknown-device' });
    });

    it('a progress report for a job the device was never told of is a late one of its earlier job: ignored', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      await s.addDevice(PK, 'dev-1');
      await recordInform(s, d('dev-1'), '1.0.0');
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      // Queued, no notice out yet: the device's report still belongs to a download it was told to stop.
      expect(await recordProgress(s, d('dev-1'), 59, 'downloading')).toEqual({ kind: 'ignored' });
      expect((await s.status()).devices[0].job).toMatchObject({ id: job.id, state: 'queued', pushes: 0 });
      expect(await claimPushes(s, 'w1', 10)).toHaveLength(1); // so it is still pushed
      expect(await recordProgress(s, d('dev-1'), 10, 'downloading')).toEqual({ kind: 'progress', jobId: job.id, state: 'downloading' });
    });

    it('a failure is final; a reboot mid-download queues the device again', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      for (const n of ['f', 'r']) {
        await s.addDevice(PK, `dev-${n}`);
        await recordInform(s, d(`dev-${n}`), '1.0.0');
      }
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      expect(await claimPushes(s, 'w1', 10)).toHaveLength(2);
      expect(await recordProgress(s, d('dev-f'), -2, 'download failed')).toMatchObject({ state: 'failed' });
      expect(await recordInform(s, d('dev-f'), '1.0.0')).toEqual({ kind: 'recorded' });
      await recordProgress(s, d('dev-r'), 30, 'downloading');
      expect(await recordInform(s, d('dev-r'), '1.0.0')).toEqual({ kind: 'queued', jobId: job.id, again: true });
      const again = await claimPushes(s, 'w1', 10);
      expect(again.map((x) => x.deviceName)).toEqual(['dev-r']);
      expect(await s.jobCounts(job.id)).toEqual({ failed: 1, notified: 1 });
    });
  });

  describe('the push queue', () => {
    it('connections claiming at once never share a device, and the queue drains oldest first', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      const n = 300;
      await s.addDevices(PK, Array.from({ length: n }, (_, i) => ({ deviceName: `q-${String(i).padStart(5, '0')}` })));
      for (let i = 0; i < n; i++) await recordInform(s, d(`q-${String(i).padStart(5, '0')}`), '1.0.0');
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      const workers = [s, await ctx.open(), await ctx.open()];
      const got: string[][] = [[], [], []];
      await Promise.all(
        workers.map(async (w, i) => {
          for (;;) {
            const c = await claimPushes(w, `w${i}`, 7);
            if (c.length === 0) return;
            got[i].push(...c.map((x) => x.deviceName));
          }
        }),
      );
      const all = got.flat();
      expect(all).toHaveLength(n);
      expect(new Set(all).size).toBe(n);
      expect(await s.jobCounts(job.id)).toEqual({ notified: n });
      const pushes = await s.db.selectFrom('device_jobs').select('pushes').where('job_id', '=', job.id).execute();
      expect(pushes.every((p) => Number(p.pushes) === 1)).toBe(true);
    });

    it('unanswered notices go back to the queue, and fail after the last try', async () => {
      const s = await store();
      await s.addFirmware(PK, '1.0.0', pair.old);
      await s.addFirmware(PK, '2.0.0', pair.neu);
      await s.addDevice(PK, 'quiet');
      await s.addDevice(PK, 'talks');
      await recordInform(s, d('quiet'), '1.0.0');
      await recordInform(s, d('talks'), '1.0.0');
      const job = await s.createJob({ productKey: PK, version: '2.0.0' });
      // Queued but never sent a notice: it holds no URL of this job.
      expect(await s.downloadAllowed(job.id, PK, 'quiet')).toBe(false);
      const t0 = Date.now();
      await claimPushes(s, 'w', 10, t0);
      await recordProgress(s, d('talks'), 10, 'downloading');
      expect(await expireNotices(s, 1000, 2, t0 + 500)).toEqual({ requeued: 0, failed: 0 });
      expect(await expireNotices(s, 1000, 2, t0 + 1500)).toEqual({ requeued: 1, failed: 0 });
      // Queued again after a notice: the device may be downloading with the URL it was sent.
      expect(await s.downloadAllowed(job.id, PK, 'quiet')).toBe(true);
      expect(await s.downloadAllowed(job.id, PK, 'talks')).toBe(true);
      expect(await s.downloadAllowed(job.id, PK, 'nobody')).toBe(false);
      expect((await claimPushes(s, 'w', 10, t0 + 1600)).map((c) => c.deviceName)).toEqual(['quiet']);
      expect(await expireNotices(s, 1000, 2, t0 + 3000)).toEqual({ requeued: 0, failed: 1 });
      expect(await s.jobCounts(job.id)).toEqual({ failed: 1, downloading: 1 });
    });
  });

  describe('the database', () => {
    it('is migrated once; reopening applies nothing, a newer schema is refused', async () => {
      const s = await store();
      const rows = await s.db.selectFrom('schema_migrations').selectAll().execute();
      expect(rows.map((r) => Number(r.version)).sort((a, b) => a - b)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      const again = await ctx.open();
      expect((await again.db.selectFrom('schema_migrations').selectAll().execute()).length).toBe(SCHEMA_VERSION);
      await s.db.insertInto('schema_migrations').values({ version: SCHEMA_VERSION + 1, name: 'from the future', applied_at: Date.now() }).execute();
      await expect(ctx.open()).rejects.toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1}, this otadiff knows up to ${SCHEMA_VERSION}`));
    });

    it('keeps the URL key and the broker credential across opens', async () => {
      const a = await store();
      const b = await ctx.open();
      expect(b.urlSecret).toBe(a.urlSecret);
      expect(b.serviceCredential).toEqual(a.serviceCredential);
      expect(a.urlSecret.length).toBeGreaterThanOrEqual(32);
    });

    it('workers beat their hearts; a silent one is claimed by one live worker only', async () => {
      const s = await store();
      const t0 = Date.now();
      const a = await registerWorker(s, 'wa', t0);
      await registerWorker(s, 'wb', t0);
      expect(await heartbeat(s, 'wb', t0 + 6000)).toBe(true);
      expect((await deadWorkers(s, 'wb', 5000, t0 + 6000)).map((w) => w.id)).toEqual(['wa']);
      expect(a.clientId).toBe('otadiff-cloud-wa');
      const [x, y] = await Promise.all([claimDead(s, 'wb', 'wa'), claimDead(s, 'wc', 'wa')]);
      expect([x, y].filter(Boolean)).toHaveLength(1);
      expect(await heartbeat(s, 'wa')).toBe(false); // it learns it was taken over
    });
  });

  describe('a JSON data directory from before the database', () => {
    it('is imported on first open: products, devices and secrets, firmware and releases, jobs, status', async () => {
      const dir = ctx.dataDir;
      await mkdir(join(dir, 'files', 'fw', PK), { recursive: true });
      await mkdir(join(dir, 'jobs'), { recursive: true });
      const reg = {
        format: 'otadiff-device-registry',
        version: 1,
        products: [{ productKey: PK, productSecret: 'prodsecret1' }],
        devices: ['dev-1', 'dev-2', 'dev-3'].map((n, i) => ({ productKey: PK, deviceName: n, deviceSecret: `devsecret${i}xx` })),
      };
      await writeFile(join(dir, 'registry.json'), JSON.stringify(reg));
      await writeFile(join(dir, 'cloud.json'), JSON.stringify({ urlSecret: 'u'.repeat(48), service: { username: 'otadiff-cloud', password: 'p'.repeat(40) } }));
      await writeFile(join(dir, 'products.json'), JSON.stringify({ [PK]: { productKey: PK, mode: 'ab', splitSize: 16384, dictSize: 8192 } }));
      await writeFile(join(dir, 'files', 'fw', PK, '1.0.0.bin'), pair.old);
      await writeFile(join(dir, 'files', 'fw', PK, '2.0.0.bin'), pair.neu);
      await writeFile(join(dir, 'files', 'fw', PK, '2.0.0.json'), JSON.stringify({ securityCounter: 5, allowDowngrade: false }));
      const job = { id: '1700000000000-0a0b0c0d', productKey: PK, version: '2.0.0', devices: 'all', createdAt: 1700000000000 };
      await writeFile(join(dir, 'jobs', `${job.id}.json`), JSON.stringify(job));
      const status = {
        devices: [
          { productKey: PK, deviceName: 'dev-1', version: '2.0.0', lastSeen: 1700000001000, job: { id: job.id, version: '2.0.0', state: 'succeeded', updatedAt: 1700000001000 } },
          { productKey: PK, deviceName: 'dev-2', version: '1.0.0', lastSeen: 1700000001000, job: { id: job.id, version: '2.0.0', state: 'downloading', step: 40, updatedAt: 1700000001000 } },
        ],
      };
      await writeFile(join(dir, 'status.json'), JSON.stringify(status));
      const lines: string[] = [];
      const s = await ctx.open({ log: (l) => lines.push(l) });
      expect(lines.join('\n')).toMatch(/imported the JSON data directory .*1 product\(s\), 3 device\(s\), 2 firmware version\(s\), 1 job\(s\)/);
      expect(await s.product(PK)).toEqual({ productKey: PK, mode: 'ab', splitSize: 16384, dictSize: 8192 });
      expect(await s.deviceSecret(PK, 'dev-2')).toBe('devsecret1xx');
      expect(s.urlSecret).toBe('u'.repeat(48));
      expect(await s.firmwareReleases(PK)).toEqual([
        { version: '1.0.0', securityCounter: 0, allowDowngrade: false },
        { version: '2.0.0', securityCounter: 5, allowDowngrade: false },
      ]);
      expect(Buffer.compare((await s.firmware(PK, '2.0.0'))!.bytes, pair.neu)).toBe(0);
      const st = Object.fromEntries((await s.status()).devices.map((x) => [x.deviceName, x]));
      expect(st['dev-1']).toMatchObject({ version: '2.0.0', state: 'succeeded', job: { id: job.id } });
      // Told, not finished: told again (its download resumes).
      expect(st['dev-2']).toMatchObject({ version: '1.0.0', state: 'queued' });
      expect(st['dev-3']).toMatchObject({ state: 'waiting' });
      // Once only: a second open imports nothing.
      const lines2: string[] = [];
      await ctx.open({ log: (l) => lines2.push(l) });
      expect(lines2).toEqual([]);
    });

    it('a bad file stops the import before anything is written', async () => {
      const dir = ctx.dataDir;
      await mkdir(join(dir, 'jobs'), { recursive: true });
      await writeFile(join(dir, 'registry.json'), JSON.stringify({ format: 'otadiff-device-registry', version: 1, products: [{ productKey: PK, productSecret: 'prodsecret1' }], devices: [] }));
      await writeFile(join(dir, 'jobs', 'x.json'), JSON.stringify({ id: 'nope' }));
      await expect(ctx.open()).rejects.toThrow(/job x\.json: bad id/);
      const s = await ctx.open({ importJson: false });
      expect(await s.productList()).toEqual([]);
    });
  });
});

describe('trusted keys', () => {
  it('reads PEM text (several keys in one), PEM files and DER; names what it cannot read', async () => {
    const ctx = await engineContext('sqlite');
    try {
      const dir = ctx.dir;
      const other = packageKeys('ecdsa-p256');
      await writeFile(join(dir, 'both.pub'), keys.publicKey + other.publicKey);
      const der = new Uint8Array(createPublicKey(other.publicKey).export({ type: 'spki', format: 'der' }));
      const got = resolveTrustedKeys(['both.pub', keys.publicKey, der], dir);
      expect(got.map((k) => k.algorithm)).toEqual(['ed25519', 'ecdsaP256', 'ed25519', 'ecdsaP256']);
      expect(() => resolveTrustedKeys(['nope.pub'], dir)).toThrow(TrustedKeyError);
      expect(() => resolveTrustedKeys(['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'])).toThrow(/no "BEGIN PUBLIC KEY" block/);
    } finally {
      await ctx.close();
    }
  });

  it('the device config names keys relative to itself', () => {
    const cfg = parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: ['keys/fw.pub', '/abs/fw.pub', keys.publicKey] }), '/etc/otadiff');
    expect(cfg.trustedKeys).toEqual(['/etc/otadiff/keys/fw.pub', '/abs/fw.pub', keys.publicKey]);
    expect(() => parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: [] }))).toThrow(DeviceConfigError);
    expect(() => parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: 'fw.pub' }))).toThrow(/trustedKeys must be a list/);
  });
});
