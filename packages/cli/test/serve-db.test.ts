// `otadiff serve` subcommands as separate processes on one database (the built CLI): 20 concurrent
// add-device runs all land with 20 working secrets, two concurrent add-firmware runs of one version
// leave one winner whose image and release belong together, and migrate-from imports a JSON data
// directory. SQLite always; PostgreSQL when a server answers (helpers/engines.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudStore, connectOtaDevice, startOtaCloud } from '@otadiff/ota-core';
import { ENGINES, engineContext, type EngineContext } from '../../ota-core/test/helpers/engines.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', 'bin', 'otadiff.js');
const PK = 'a1Conc';

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
}

describe.each(ENGINES)('serve subcommands in parallel processes on %s', (engine) => {
  let ctx: EngineContext;
  let where: string[];
  const otadiff = (...args: string[]) => run(process.execPath, [bin, 'serve', ...args, ...where], { encoding: 'utf8' });
  beforeEach(async () => {
    ctx = await engineContext(engine);
    where = ['--data', ctx.dataDir, ...(ctx.db === undefined ? [] : ['--db', ctx.db])];
  });
  afterEach(async () => {
    await ctx.close();
  });

  it('20 concurrent add-device: 20 devices, 20 secrets that sign in', async () => {
    await otadiff('add-product', '--product-key', PK);
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => otadiff('add-device', '--product-key', PK, '--device-name', `conc-${String(i).padStart(2, '0')}`, '--json')));
    const made = outs.map((o) => JSON.parse(o.stdout) as { productKey: string; deviceName: string; deviceSecret: string });
    expect(made.map((m) => Object.keys(m).sort())).toEqual(Array(20).fill(['deviceName', 'deviceSecret', 'productKey']));
    expect(new Set(made.map((m) => m.deviceSecret)).size).toBe(20);
    const status = JSON.parse((await otadiff('status', '--json')).stdout) as { devices: Array<{ deviceName: string; state: string; version?: string }> };
    expect(status.devices.map((d) => d.deviceName).sort()).toEqual(made.map((m) => m.deviceName).sort());
    expect(status.devices.every((d) => d.state === 'never-seen')).toBe(true);
    // Each printed secret signs in at the cloud's broker; a wrong one does not.
    const cloud = await startOtaCloud({ dataDir: ctx.dataDir, db: ctx.db, pollMs: 0 });
    try {
      for (const m of made) {
        const c = await connectOtaDevice(cloud.brokerUrl, m);
        await c.close();
      }
      await expect(connectOtaDevice(cloud.brokerUrl, { ...made[0], deviceSecret: made[1].deviceSecret })).rejects.toThrow();
    } finally {
      await cloud.close();
    }
  });

  it('two add-firmware of one version at once: one wins, with its own image and release', async () => {
    await otadiff('add-product', '--product-key', PK);
    const a = bytes(30_000, 1);
    const b = bytes(30_000, 2);
    await writeFile(join(ctx.dir, 'a.bin'), a);
    await writeFile(join(ctx.dir, 'b.bin'), b);
    const results = await Promise.allSettled([
      otadiff('add-firmware', '--product-key', PK, '--version', '1.0.0', '--security-counter', '1', join(ctx.dir, 'a.bin'), '--json'),
      otadiff('add-firmware', '--product-key', PK, '--version', '1.0.0', '--security-counter', '2', join(ctx.dir, 'b.bin'), '--json'),
    ]);
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [JSON.parse(r.value.stdout) as { sha256: string; securityCounter: number }] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as { stderr?: string }).stderr)] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/^error: a1Conc already has firmware 1\.0\.0\n$/);
    const s = await CloudStore.open(ctx.dataDir, { db: ctx.db });
    try {
      const fw = (await s.firmware(PK, '1.0.0'))!;
      const release = (await s.firmwareRelease(PK, '1.0.0'))!;
      const winner = won[0].securityCounter === 1 ? a : b;
      expect(Buffer.compare(fw.bytes, winner)).toBe(0);
      expect(release.securityCounter).toBe(won[0].securityCounter);
    } finally {
      await s.close();
    }
  });

  it('migrate-from imports a JSON data directory into an empty database, once', async () => {
    const old = join(ctx.dir, 'json-data');
    await mkdir(join(old, 'files', 'fw', PK), { recursive: true });
    await writeFile(
      join(old, 'registry.json'),
      JSON.stringify({ format: 'otadiff-device-registry', version: 1, products: [{ productKey: PK, productSecret: 'prodsecret1' }], devices: [{ productKey: PK, deviceName: 'old-dev-1', deviceSecret: 'old-secret-1' }] }),
    );
    await writeFile(join(old, 'products.json'), JSON.stringify({ [PK]: { productKey: PK, mode: 'full', splitSize: 65536, dictSize: 16384 } }));
    await writeFile(join(old, 'files', 'fw', PK, '1.0.0.bin'), bytes(1000, 3));
    const out = JSON.parse((await otadiff('migrate-from', old, '--json')).stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ products: 1, devices: 1, firmware: 1, jobs: 0 });
    const status = JSON.parse((await otadiff('status', '--json')).stdout) as { products: unknown[]; devices: unknown[]; firmware: Record<string, unknown[]> };
    expect(status.products).toEqual([{ productKey: PK, mode: 'full', splitSize: 65536, dictSize: 16384 }]);
    expect(status.firmware[PK]).toEqual([{ version: '1.0.0', securityCounter: 0, allowDowngrade: false }]);
    await expect(otadiff('migrate-from', old)).rejects.toMatchObject({ stderr: 'error: the target database holds products already: import into an empty one\n' });
    await expect(otadiff('migrate-from', join(ctx.dir, 'nowhere'))).rejects.toMatchObject({ stderr: expect.stringMatching(/^error: .*nowhere does not exist\n$/) });
  });
});
