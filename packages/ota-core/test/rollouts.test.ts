// Rollouts over the job queue, the same suite on both engines (SQLite always, PostgreSQL when a
// server answers): waves released in order, a wave's failures pausing the rollout with the reason,
// the success threshold, timeouts and retries, pause/resume/cancel (cancel notices for devices
// downloading, a device mid-restore finishing), targeting by tags, devices added later, rollbacks to
// an allow-downgrade release bounded by the devices' recorded security counters, each device's
// history of state changes, and the migration of a schema-1 database. Devices are driven through the
// cloud's own message handlers (recordInform, recordProgress) and push queue (claimPushes).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { CloudStore } from '../src/cloud/cloud-store.js';
import { recordInform, recordProgress } from '../src/cloud/device-status.js';
import { claimPushes } from '../src/cloud/push-queue.js';
import { cancelRollout, createRollout, getRollout, pauseRollout, resumeRollout } from '../src/cloud/rollouts.js';
import { claimCancels, tickRollouts } from '../src/cloud/rollout-tick.js';
import { deviceHistory, rolloutTimeline } from '../src/cloud/admin/fleet-view.js';
import { listAudit } from '../src/cloud/audit.js';
import { openDatabaseEngine } from '../src/cloud/db/engine.js';
import { migrate, SCHEMA_VERSION } from '../src/cloud/db/migrations.js';
import { parsePolicy, parseWaves, waveTargets, PolicyError } from '../src/cloud/rollout-policy.js';
import { ENGINES, engineContext, freshPgDatabase, type EngineContext } from './helpers/engines.js';
import { testBytes } from './helpers/http.js';

const PK = 'a1Roll';
const ops = { name: 'alice', role: 'operator' } as const;
const names = (n: number, prefix = 'dev') => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
const d = (deviceName: string) => ({ productKey: PK, deviceName });

describe('rollout policies', () => {
  it('parses waves, thresholds and limits as an operator writes them', () => {
    expect(parseWaves('1%,10%,100%')).toEqual([{ percent: 1 }, { percent: 10 }, { percent: 100 }]);
    expect(parseWaves('10,100,1000')).toEqual([{ count: 10 }, { count: 100 }, { count: 1000 }, { percent: 100 }]);
    expect(parseWaves(['5%', '50%'])).toEqual([{ percent: 5 }, { percent: 50 }, { percent: 100 }]);
    expect(() => parseWaves('10%,5%')).toThrow(/cumulative/);
    expect(() => parseWaves('10%,50')).toThrow(/all percentages or all counts/);
    expect(() => parseWaves('0%')).toThrow(/above 0/);
    expect(() => parseWaves('101%')).toThrow(PolicyError);
    const p = parsePolicy({ waves: '1%,10%,100%', successThreshold: '90%', timeout: '30m', retries: 2 });
    expect(p).toMatchObject({ successThreshold: 90, maxFailures: { percent: 10 }, timeoutMs: 1_800_000, retries: 2 });
    expect(parsePolicy({ maxFailures: '3' }).maxFailures).toEqual({ count: 3 });
    expect(() => parsePolicy({ timeout: '30 minutes' })).toThrow(/duration/);
    expect(() => parsePolicy({ retries: 11 })).toThrow(/retries/);
  });

  it('cumulative wave targets never pass the fleet and end with all of it', () => {
    expect(waveTargets(parseWaves('1%,10%,100%'), 1000)).toEqual([10, 100, 1000]);
    expect(waveTargets(parseWaves('1%,10%,100%'), 7)).toEqual([1, 1, 7]);
    expect(waveTargets(parseWaves('10,100,1000'), 50)).toEqual([10, 50, 50, 50]);
    // Fractional percentages whose product is not exact in floating point release no extra device.
    expect(waveTargets(parseWaves('64.4%,100%'), 250)).toEqual([161, 250]);
    expect(waveTargets(parseWaves('8.8%,17.6%,100%'), 375)).toEqual([33, 66, 375]);
    expect(waveTargets(parseWaves('0.1%,100%'), 1000)).toEqual([1, 1000]);
    expect(waveTargets(parseWaves('0.101%,100%'), 1000)).toEqual([2, 1000]);
  });
});

describe.each(ENGINES)('rollouts on %s', (engine) => {
  let ctx: EngineContext;
  let s: CloudStore;
  beforeEach(async () => {
    ctx = await engineContext(engine);
    s = await ctx.open();
    await s.addProduct(PK, { splitSize: 16 * 1024 });
    await s.addFirmware(PK, '1.0.0', testBytes(4000, 1), { allowDowngrade: true });
    await s.addFirmware(PK, '2.0.0', testBytes(4000, 2));
  });
  afterEach(async () => {
    await ctx.close();
  });

  async function fleet(n: number, version = '1.0.0', prefix = 'dev', tags: string[] = []): Promise<string[]> {
    const list = names(n, prefix);
    await s.addDevices(PK, list.map((deviceName) => ({ deviceName, tags })));
    for (const dn of list) await recordInform(s, d(dn), version);
    return list;
  }

  /** Every queued device gets its notice; `fail` ones fail, the rest update to `to`. */
  async function runDevices(fail: Set<string>, to = '2.0.0'): Promise<string[]> {
    const claims = await claimPushes(s, 'w1', 100_000);
    for (const c of claims) {
      await recordProgress(s, d(c.deviceName), 0, 'downloading');
      if (fail.has(c.deviceName)) await recordProgress(s, d(c.deviceName), -4, 'burn failed');
      else {
        await recordProgress(s, d(c.deviceName), 100, 'verified');
        await recordInform(s, d(c.deviceName), to);
      }
    }
    return claims.map((c) => c.deviceName);
  }

  it('a claim of n notices takes at most n (PostgreSQL ran the candidates query once per row)', async () => {
    await fleet(30);
    await s.createJob({ productKey: PK, version: '2.0.0' });
    expect((await claimPushes(s, 'w1', 3)).length).toBe(3);
    expect((await claimPushes(s, 'w1', 10)).length).toBe(10);
    expect((await claimPushes(s, 'w1', 100)).length).toBe(17);
  });

  it('releases its waves in order as each reaches the success threshold, then completes; each device keeps its history', async () => {
    const devs = await fleet(100);
    const r = await createRollout(s, { productKey: PK, version: '2.0.0', waves: '10%,50%,100%' }, ops);
    expect(r.waves.map((w) => [w.target, w.devices, w.state])).toEqual([
      [10, 10, 'running'],
      [50, 0, 'pending'],
      [100, 0, 'pending'],
    ]);
    expect(r.counts).toEqual({ queued: 10, held: 90 });
    const told: string[][] = [];
    for (let i = 0; i < 5 && (await getRollout(s, r.id))!.state === 'running'; i++) {
      told.push(await runDevices(new Set()));
      await tickRollouts(s, [r.id]);
    }
    expect(told.map((t) => t.length)).toEqual([10, 40, 50]);
    expect(new Set(told.flat()).size).toBe(100);
    const done = (await getRollout(s, r.id))!;
    expect(done).toMatchObject({ state: 'completed', counts: { succeeded: 100 } });
    // The whole rollout's count (the last wave alone is 50).
    expect(done.reason).toBe('100 of 100 device(s) updated or already on 2.0.0');
    expect(done.waves.map((w) => w.succeeded)).toEqual([10, 40, 50]);
    const h = await deviceHistory(s, PK, told[1][0]);
    expect(h[0]).toMatchObject({ rolloutId: r.id, version: '2.0.0', state: 'succeeded', wave: 1, pushes: 1 });
    expect(h[0].events.map((e) => e.state)).toEqual(['held', 'queued', 'notified', 'downloading', 'downloaded', 'succeeded']);
    expect(h[0].events.every((e, i, a) => i === 0 || e.at >= a[i - 1].at)).toBe(true);
    const tl = await rolloutTimeline(s, r.jobId, r.createdAt);
    expect(tl[tl.length - 1]).toMatchObject({ updated: 100, failed: 0, notified: 100 });
    expect(devs.length).toBe(100);
    const audit = await listAudit(s.db, { limit: 10, target: r.id });
    expect(audit.entries.map((e) => `${e.actor}:${e.action}`)).toEqual(['rollout-controller:rollout.complete', 'alice:rollout.create']);
    expect(audit.entries[0].detail).toEqual({ succeeded: 100, failed: 0 });
  });

  it('pauses itself when a wave fails past the limit, says why, and sends nothing more; resume accepts those failures', async () => {
    const devs = await fleet(200);
    const r = await createRollout(s, { productKey: PK, version: '2.0.0', waves: '5%,50%,100%', maxFailures: '10%' }, ops);
    // Wave 1 is 10 devices: 2 failures are above 10% of 10 (1).
    const first = await runDevices(new Set());
    expect(first.length).toBe(10);
    await tickRollouts(s, [r.id]);
    const w2 = await runDevices(new Set(devs));
    expect(w2.length).toBe(90);
    const t = await tickRollouts(s, [r.id]);
    expect(t[0].events.join()).toMatch(/paused: wave 2: 90 of 90 device\(s\) failed, above the limit of 9/);
    const p = (await getRollout(s, r.id))!;
    expect(p).toMatchObject({ state: 'paused', wave: 1 });
    expect(p.reason).toMatch(/wave 2: 90 of 90 device\(s\) failed, above the limit of 9 \(max failures 10%\)/);
    expect(await claimPushes(s, 'w1', 1000)).toEqual([]);
    expect(p.counts.held).toBe(100);
    // Resumed, the wave stays below its success threshold when it ends: the operator's word goes.
    await resumeRollout(s, r.id, ops);
    await tickRollouts(s, [r.id]);
    const after = (await getRollout(s, r.id))!;
    expect(after).toMatchObject({ state: 'running', wave: 2 });
    expect(after.waves[2].devices).toBe(100);
    expect((await listAudit(s.db, { limit: 10, target: r.id })).entries.map((e) => e.action)).toEqual(['rollout.resume', 'rollout.pause', 'rollout.create']);
  });

  it('a wave that finishes below its success threshold pauses; a timed-out device counts as failed; retries come first', async () => {
    await fleet(20);
    const r = await createRollout(s, { productKey: PK, version: '2.0.0', waves: '50%,100%', successThreshold: '100%', maxFailures: '5', timeout: '60s', retries: 1 }, ops);
    const t0 = Date.now();
    const told = await claimPushes(s, 'w1', 1000);
    expect(told.length).toBe(10);
    // 9 update, 1 fails: it is tried again (a retry), and fails again.
    for (const c of told.slice(0, 9)) await recordInform(s, d(c.deviceName), '2.0.0');
    await recordProgress(s, d(told[9].deviceName), -2, 'download failed');
    const t = await tickRollouts(s, [r.id], t0 + 1000);
    expect(t[0].events).toContain('1 failed device(s) tried again');
    const again = await claimPushes(s, 'w1', 1000);
    expect(again.map((c) => c.deviceName)).toEqual([told[9].deviceName]);
    // No answer at all this time: the timeout fails it, and no retry is left.
    const t2 = await tickRollouts(s, [r.id], t0 + 62_000);
    expect(t2[0].events.join()).toMatch(/1 device\(s\) timed out.*paused: wave 1 finished with 9 of 10 device\(s\) succeeded, below the success threshold of 100%/);
    const h = await deviceHistory(s, PK, told[9].deviceName);
    expect(h[0]).toMatchObject({ state: 'failed', attempts: 1, pushes: 2 });
    expect(h[0].events.map((e) => e.state)).toEqual(['held', 'queued', 'notified', 'failed', 'queued', 'notified', 'failed']);
    expect(h[0].events[h[0].events.length - 1].detail).toMatch(/timed out/);
  });

  it('targets devices by tag; devices added later join a rollout of all devices and are released by its waves', async () => {
    await fleet(6, '1.0.0', 'a', ['site-a']);
    await fleet(4, '1.0.0', 'b', ['site-b']);
    await expect(createRollout(s, { productKey: PK, version: '2.0.0', groups: ['nowhere'] }, ops)).rejects.toThrow(/no device of a1Roll carries the tag nowhere/);
    const tagged = await createRollout(s, { productKey: PK, version: '2.0.0', groups: ['site-b'] }, ops);
    expect(tagged.devices).toBe(4);
    expect((await claimPushes(s, 'w', 100)).map((c) => c.deviceName).sort()).toEqual(names(4, 'b'));
    const all = await createRollout(s, { productKey: PK, version: '2.0.0', waves: '50%,100%' }, ops);
    expect(all.devices).toBe(10);
    await s.addDevice(PK, 'late-0001');
    await recordInform(s, d('late-0001'), '1.0.0');
    const v = (await getRollout(s, all.id))!;
    expect(v.devices).toBe(11);
    expect(v.counts).toEqual({ queued: 5, held: 6 });
    // The first wave grows with the fleet (half of 11 is 6); the late device goes out with a wave.
    const told: string[] = [];
    for (let i = 0; i < 6 && (await getRollout(s, all.id))!.state === 'running'; i++) {
      told.push(...(await runDevices(new Set())));
      await tickRollouts(s, [all.id]);
    }
    expect((await getRollout(s, all.id))!.state).toBe('completed');
    expect(told.sort()).toEqual([...names(6, 'a'), ...names(4, 'b'), 'late-0001'].sort());
    expect((await deviceHistory(s, PK, 'late-0001'))[0]).toMatchObject({ rolloutId: all.id, state: 'succeeded' });
  });

  it('pause holds back the devices not yet told; cancel stops everything: downloading devices get a cancel notice, one mid-restore finishes', async () => {
    await fleet(10);
    const r = await createRollout(s, { productKey: PK, version: '2.0.0', waves: '60%,100%' }, ops);
    const told = await claimPushes(s, 'w1', 3);
    expect(told.length).toBe(3);
    const paused = await pauseRollout(s, r.id, ops, 'looking at the logs');
    expect(paused).toMatchObject({ state: 'paused', reason: 'paused by alice: looking at the logs' });
    expect(await claimPushes(s, 'w1', 100)).toEqual([]);
    await resumeRollout(s, r.id, ops);
    expect((await getRollout(s, r.id))!.counts).toEqual({ notified: 3, queued: 3, held: 4 });
    expect((await claimPushes(s, 'w1', 100)).length).toBe(3);
    const [downloading, restoring, silent] = told;
    await recordProgress(s, d(downloading.deviceName), 30, 'downloading');
    await recordProgress(s, d(restoring.deviceName), 100, 'verified; rebooting into the restore');
    const c = await cancelRollout(s, r.id, { name: 'bob', role: 'operator' });
    expect(c).toMatchObject({ state: 'cancelled', reason: 'cancelled by bob' });
    expect(c.counts).toMatchObject({ cancelled: 4, cancelling: 5, downloaded: 1 });
    expect(await claimPushes(s, 'w1', 100)).toEqual([]);
    const cancels = await claimCancels(s, 100);
    expect(cancels.map((x) => x.deviceName).sort()).toEqual(expect.arrayContaining([downloading.deviceName, silent.deviceName]));
    expect(cancels.length).toBe(5);
    expect(await claimCancels(s, 100)).toEqual([]);
    // A late progress report of a cancelled device changes nothing; the one mid-restore finishes.
    await recordProgress(s, d(downloading.deviceName), 60, 'downloading');
    await recordInform(s, d(restoring.deviceName), '2.0.0');
    const end = (await getRollout(s, r.id))!;
    expect(end.counts).toEqual({ cancelled: 9, succeeded: 1 });
    await expect(resumeRollout(s, r.id, ops)).rejects.toThrow(/cancelled, not paused/);
    await expect(cancelRollout(s, r.id, ops)).rejects.toThrow(/cancelled already/);
    expect((await tickRollouts(s, [r.id]))[0].events).toEqual([]);
  });

  it('a rollback to an allow-downgrade release brings newer devices back, unless they recorded a higher security counter', async () => {
    await s.addFirmware(PK, '3.0.0', testBytes(4000, 3), { securityCounter: 2 });
    await s.addFirmware(PK, '2.1.0', testBytes(4000, 4), { securityCounter: 2, allowDowngrade: true });
    await fleet(3, '2.0.0', 'on2');
    await fleet(2, '3.0.0', 'on3'); // recorded counter 2
    await fleet(1, '1.0.0', 'on1');
    // 1.0.0 (counter 0, allow-downgrade): the devices on 2.0.0 come back; those that recorded 2 do not.
    const back = await createRollout(s, { productKey: PK, version: '1.0.0' }, ops);
    expect(back.rollback).toBe(true);
    expect(back.counts).toEqual({ queued: 3, skipped: 3 });
    const h = await deviceHistory(s, PK, 'on3-0000');
    expect(h[0].events[h[0].events.length - 1].detail).toMatch(/recorded security counter 2 is above 1\.0\.0's 0/);
    expect((await deviceHistory(s, PK, 'on1-0000'))[0].events.at(-1)!.detail).toMatch(/already runs 1\.0\.0/);
    expect((await runDevices(new Set(), '1.0.0')).sort()).toEqual(names(3, 'on2'));
    await tickRollouts(s, [back.id]);
    expect((await getRollout(s, back.id))!).toMatchObject({ state: 'completed', counts: { succeeded: 3, skipped: 3 } });
    // 2.0.0 was not added with --allow-downgrade: the devices on 3.0.0 are skipped, not downgraded.
    const up = await createRollout(s, { productKey: PK, version: '2.0.0' }, ops);
    expect(up.rollback).toBe(false);
    expect((await deviceHistory(s, PK, 'on3-0001'))[0].events.at(-1)!.detail).toMatch(/newer than 2\.0\.0 \(not added with --allow-downgrade\)/);
    // 2.1.0 allows a downgrade at counter 2: the devices on 3.0.0 may go back to it.
    const to21 = await createRollout(s, { productKey: PK, version: '2.1.0' }, ops);
    const claims = await claimPushes(s, 'w', 100);
    expect(claims.filter((c) => c.deviceName.startsWith('on3')).map((c) => c.fromVersion)).toEqual(['3.0.0', '3.0.0']);
    expect(to21.counts.queued).toBe(6);
  });

  it('migrates a schema-1 database (issue 13) with its devices and jobs', async () => {
    const dir = join(ctx.dir, 'v1');
    const pg = engine === 'postgres' ? await freshPgDatabase() : undefined;
    const location = pg?.url ?? join(dir, 'otadiff.db');
    const h = await openDatabaseEngine({ location });
    expect(await migrate(h, 1)).toEqual([1]);
    const now = Date.now();
    await h.db.insertInto('products').values({ product_key: PK, product_secret: 'secret-secret', mode: 'inplace', split_size: 65536, dict_size: 16384, created_at: now }).execute();
    await h.db.insertInto('devices').values({ product_key: PK, device_name: 'old-0001', device_secret: 'secret-secret', created_at: now, version: '1.0.0', last_seen: now, current_job: null } as never).execute();
    await h.close();
    const s2 = await CloudStore.open(dir, { db: pg?.url });
    try {
      const rows = await s2.db.selectFrom('schema_migrations').select('version').execute();
      expect(rows.map((r) => Number(r.version)).sort()).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      const dev = await s2.db.selectFrom('devices').selectAll().executeTakeFirstOrThrow();
      expect(dev).toMatchObject({ device_name: 'old-0001', version: '1.0.0' });
      expect(Number(dev.recorded_counter)).toBe(0);
      expect(await s2.tagDevice(PK, 'old-0001', { add: ['kept'] })).toEqual(['kept']);
    } finally {
      await s2.close();
      await pg?.drop();
    }
  });
});
