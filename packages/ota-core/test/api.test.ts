// The management API over real HTTP: bearer tokens (none or a bad one: 401), roles (a viewer’s
// change: 403), both checked before the body is read; the same operations as the CLI with their
// audit rows, a bad body answered 400 with the field named, cursor pages of devices, a firmware
// upload, body limits (64 MiB on the upload, 1 MiB elsewhere: 413), and fuzzed bodies (fast-check)
// on every route that takes one: never a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CloudStore } from '../src/cloud/cloud-store.js';
import { startApiServer, type ApiServerHandle } from '../src/cloud/api/server.js';
import { addOperator } from '../src/cloud/admin/operators.js';
import { recordInform } from '../src/cloud/device-status.js';
import { engineContext, type EngineContext } from './helpers/engines.js';
import { testBytes } from './helpers/http.js';

const PK = 'a1Api';
const root = { name: 'cli:test', role: 'admin' } as const;

let ctx: EngineContext;
let store: CloudStore;
let api: ApiServerHandle;
const tokens: Record<'viewer' | 'operator' | 'admin', string> = { viewer: '', operator: '', admin: '' };
const revoked: string[] = [];

async function call(method: string, path: string, o: { token?: string; body?: unknown; raw?: string | Buffer; type?: string } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  let body: string | Buffer | undefined;
  if (o.raw !== undefined) {
    body = o.raw;
    headers['content-type'] = o.type ?? 'application/json';
  } else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${api.url}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}

beforeAll(async () => {
  ctx = await engineContext('sqlite');
  store = await ctx.open();
  api = await startApiServer({ store, onRevoked: (d) => revoked.push(`${d.productKey}/${d.deviceName}`) });
  for (const role of ['viewer', 'operator', 'admin'] as const) tokens[role] = (await addOperator(store, { name: `${role}-1`, role }, root)).token;
  await store.addProduct(PK);
  await store.addFirmware(PK, '1.0.0', testBytes(3000, 1));
  await store.addFirmware(PK, '2.0.0', testBytes(3000, 2));
  await store.addDevices(PK, Array.from({ length: 25 }, (_, i) => ({ deviceName: `api-${String(i).padStart(3, '0')}`, tags: i % 5 === 0 ? ['canary'] : [] })));
  for (let i = 0; i < 25; i++) await recordInform(store, { productKey: PK, deviceName: `api-${String(i).padStart(3, '0')}` }, '1.0.0');
});

afterAll(async () => {
  await api?.close();
  await ctx?.close();
});

describe('the management API', () => {
  it('refuses a request without a token or with a bad one (401), and a viewer’s change (403)', async () => {
    expect((await call('GET', '/api/v1/devices')).status).toBe(401);
    expect((await call('GET', '/api/v1/devices', { token: 'otd_not-a-token' })).status).toBe(401);
    const r = await call('POST', '/api/v1/rollouts', { body: { productKey: PK, version: '2.0.0' } });
    expect(r.status).toBe(401);
    expect(r.body.error).toMatch(/bearer token is required/);
    const v = await call('POST', '/api/v1/rollouts', { token: tokens.viewer, body: { productKey: PK, version: '2.0.0' } });
    expect(v).toMatchObject({ status: 403, body: { error: expect.stringMatching(/rollout.create needs the operator role; viewer-1 is viewer/) } });
    expect((await call('POST', '/api/v1/devices', { token: tokens.operator, body: { productKey: PK, deviceName: 'op-made' } })).status).toBe(403);
    expect((await call('GET', '/api/v1/operators', { token: tokens.operator })).status).toBe(403);
    expect((await call('GET', '/api/v1/whoami', { token: tokens.viewer })).body).toEqual({ name: 'viewer-1', role: 'viewer' });
  });

  it('checks the token and the role before it reads the body: 401 and 403 whatever the body', async () => {
    // Bodies each of which alone is a 400 (schema, JSON) or a 415 (content type) once signed in.
    const bodies: Array<{ body?: unknown; raw?: string; type?: string }> = [
      { body: { colour: 'red' } },
      { body: { productKey: 5, version: '2.0.0' } },
      { raw: '{"productKey":' },
      { raw: '<x/>', type: 'application/xml' },
    ];
    for (const b of bodies) {
      const what = JSON.stringify(b);
      const none = await call('POST', '/api/v1/rollouts', b);
      expect(none.status, what).toBe(401);
      expect(none.body.error, what).toMatch(/bearer token is required/);
      expect((await call('POST', '/api/v1/rollouts', { ...b, token: 'otd_not-a-token' })).status, what).toBe(401);
      const viewer = await call('POST', '/api/v1/rollouts', { ...b, token: tokens.viewer });
      expect(viewer.status, what).toBe(403);
      expect(viewer.body.error, what).toMatch(/rollout.create needs the operator role; viewer-1 is viewer/);
      expect((await call('POST', '/api/v1/operators', { ...b, token: tokens.operator })).status, what).toBe(403);
      // A bad query or path is no different: a viewer learns nothing about the schema of a change.
      expect((await call('PUT', '/api/v1/products/bad!key/firmware/1.0?colour=red', { ...b, token: tokens.operator })).status, what).toBe(403);
    }
    // The firmware upload too: an anonymous image is refused before it is read.
    const up = await fetch(`${api.url}/api/v1/products/${PK}/firmware/3.0.0?colour=red`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(testBytes(5000, 3)) });
    expect(up.status).toBe(401);
    expect(await store.firmwareReleases(PK)).not.toContainEqual(expect.objectContaining({ version: '3.0.0' }));
    // Once the role is enough, the same bodies get the schema's answer.
    expect((await call('POST', '/api/v1/rollouts', { token: tokens.operator, body: { colour: 'red' } })).status).toBe(400);
    expect((await call('POST', '/api/v1/rollouts', { token: tokens.operator, raw: '<x/>', type: 'application/xml' })).status).toBe(415);
  });

  it('pages the fleet with a cursor: every device once, filtered by product and tag', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const r = await call('GET', `/api/v1/devices?productKey=${PK}&limit=7${cursor ? `&cursor=${cursor}` : ''}`, { token: tokens.viewer });
      expect(r.status).toBe(200);
      seen.push(...(r.body.devices as Array<{ deviceName: string }>).map((d) => d.deviceName));
      cursor = r.body.nextCursor as string | undefined;
      if (cursor === undefined) break;
    }
    expect(seen.length).toBe(25);
    expect(new Set(seen).size).toBe(25);
    const canary = await call('GET', '/api/v1/devices?tag=canary', { token: tokens.viewer });
    expect((canary.body.devices as Array<{ deviceName: string; tags: string[] }>).map((d) => d.deviceName)).toEqual(['api-000', 'api-005', 'api-010', 'api-015', 'api-020']);
    expect((await call('GET', '/api/v1/devices?cursor=Zm9v', { token: tokens.viewer })).status).toBe(400);
    expect((await call('GET', '/api/v1/devices?limit=0', { token: tokens.viewer })).status).toBe(400);
  });

  it('runs rollouts for operators, with the same checks and audit as the CLI', async () => {
    const c = await call('POST', '/api/v1/rollouts', { token: tokens.operator, body: { productKey: PK, version: '2.0.0', groups: ['canary'], waves: '40%,100%', maxFailures: 1, timeout: '10m', retries: 1 } });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ productKey: PK, version: '2.0.0', state: 'running', devices: 5, groups: ['canary'], policyText: { waves: '40%,100%', maxFailures: '1', timeout: '10m', retries: 1 } });
    const id = c.body.id as string;
    expect((await call('POST', `/api/v1/rollouts/${id}/pause`, { token: tokens.viewer, body: {} })).status).toBe(403);
    expect((await call('POST', `/api/v1/rollouts/${id}/pause`, { token: tokens.operator, body: { reason: 'a look' } })).body).toMatchObject({ state: 'paused', reason: 'paused by operator-1: a look' });
    expect((await call('POST', `/api/v1/rollouts/${id}/pause`, { token: tokens.operator, body: {} })).status).toBe(409);
    expect((await call('POST', `/api/v1/rollouts/${id}/resume`, { token: tokens.operator })).body).toMatchObject({ state: 'running' });
    expect((await call('GET', `/api/v1/rollouts/${id}`, { token: tokens.viewer })).body).toMatchObject({ id, waves: [{ target: 2 }, { target: 5 }] });
    expect((await call('GET', `/api/v1/rollouts/${id}/timeline`, { token: tokens.viewer })).body).toMatchObject({ id, points: [{ updated: 0 }] });
    expect((await call('POST', `/api/v1/rollouts/${id}/cancel`, { token: tokens.operator, body: {} })).body).toMatchObject({ state: 'cancelled' });
    expect((await call('GET', '/api/v1/rollouts/nope', { token: tokens.viewer })).status).toBe(404);
    const audit = await call('GET', `/api/v1/audit?limit=10`, { token: tokens.viewer });
    const mine = (audit.body.entries as Array<{ actor: string; action: string; target: string }>).filter((e) => e.target === id);
    expect(mine.map((e) => `${e.actor} ${e.action}`)).toEqual(['operator-1 rollout.cancel', 'operator-1 rollout.resume', 'operator-1 rollout.pause', 'operator-1 rollout.create']);
    const job = await call('POST', '/api/v1/jobs', { token: tokens.operator, body: { productKey: PK, version: '2.0.0', devices: ['api-001'] } });
    expect(job).toMatchObject({ status: 201, body: { devices: ['api-001'] } });
  });

  it('lets admins manage products, firmware, devices (tags, secrets, removal) and operators', async () => {
    expect((await call('POST', '/api/v1/products', { token: tokens.admin, body: { productKey: 'a1Other', mode: 'ab' } })).body).toMatchObject({ productKey: 'a1Other', mode: 'ab' });
    expect((await call('POST', '/api/v1/products', { token: tokens.admin, body: { productKey: 'a1Other' } })).status).toBe(409);
    const up = await fetch(`${api.url}/api/v1/products/a1Other/firmware/1.2.0?securityCounter=3&allowDowngrade=true`, { method: 'PUT', headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/octet-stream' }, body: Buffer.from(testBytes(5000, 9)) });
    expect(up.status).toBe(201);
    expect(await up.json()).toMatchObject({ version: '1.2.0', size: 5000, securityCounter: 3, allowDowngrade: true });
    expect((await call('GET', '/api/v1/products/a1Other/firmware', { token: tokens.viewer })).body).toEqual({ firmware: [{ version: '1.2.0', securityCounter: 3, allowDowngrade: true }] });
    const add = await call('POST', '/api/v1/devices', { token: tokens.admin, body: { productKey: PK, deviceName: 'api-new', tags: ['lab'] } });
    expect(add).toMatchObject({ status: 201, body: { deviceName: 'api-new', tags: ['lab'], deviceSecret: expect.stringMatching(/^[A-Za-z0-9]{32}$/) } });
    expect((await call('POST', `/api/v1/devices/${PK}/api-new/tags`, { token: tokens.admin, body: { add: ['b'], remove: ['lab'] } })).body).toMatchObject({ tags: ['b'] });
    const rot = await call('POST', `/api/v1/devices/${PK}/api-new/rotate-secret`, { token: tokens.admin, body: {} });
    expect(rot.body.deviceSecret).not.toBe(add.body.deviceSecret);
    expect(await store.deviceSecret(PK, 'api-new')).toBe(rot.body.deviceSecret);
    expect((await call('DELETE', `/api/v1/devices/${PK}/api-new`, { token: tokens.admin })).body).toMatchObject({ removed: true });
    expect((await call('DELETE', `/api/v1/devices/${PK}/api-new`, { token: tokens.admin })).status).toBe(404);
    expect(revoked).toEqual([`${PK}/api-new`, `${PK}/api-new`]);
    const op = await call('POST', '/api/v1/operators', { token: tokens.admin, body: { name: 'temp', role: 'viewer' } });
    expect(op.body).toMatchObject({ name: 'temp', role: 'viewer', token: expect.stringMatching(/^otd_/) });
    expect((await call('GET', '/api/v1/whoami', { token: op.body.token as string })).status).toBe(200);
    expect((await call('DELETE', '/api/v1/operators/temp', { token: tokens.admin })).status).toBe(200);
    expect((await call('GET', '/api/v1/whoami', { token: op.body.token as string })).status).toBe(401);
    const stored = await store.db.selectFrom('operators').select('token_hash').execute();
    expect(stored.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash) && !Object.values(tokens).some((t) => t.includes(r.token_hash)))).toBe(true);
    const h = await call('GET', `/api/v1/devices/${PK}/api-001/history`, { token: tokens.viewer });
    expect(h.body.history, JSON.stringify(h.body)).toMatchObject([{ version: '2.0.0', state: 'queued', events: [{ state: 'queued' }] }]);
  });

  it('answers a bad body with a 400 naming the field', async () => {
    const bad = async (body: unknown, field: RegExp, status = 400) => {
      const r = await call('POST', '/api/v1/rollouts', { token: tokens.operator, body });
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.error).toMatch(field);
    };
    await bad({ version: '2.0.0' }, /body.productKey is required/);
    await bad({ productKey: 5, version: '2.0.0' }, /body.productKey must be product key/);
    await bad({ productKey: PK, version: '2.0.0', colour: 'red' }, /body.colour is not a known field/);
    await bad({ productKey: PK, version: '2.0.0', retries: 99 }, /body.retries/);
    await bad({ productKey: PK, version: '2.0.0', waves: '10%,5%' }, /cumulative/);
    await bad({ productKey: PK, version: '9.9.9' }, /has no firmware 9\.9\.9/, 404);
    expect((await call('POST', '/api/v1/rollouts', { token: tokens.operator, raw: '{"productKey":' })).status).toBe(400);
    expect((await call('POST', '/api/v1/rollouts', { token: tokens.operator, raw: 'x', type: 'text/plain' })).status).toBe(400);
    expect((await call('POST', '/api/v1/rollouts', { token: tokens.operator, raw: '<x/>', type: 'application/xml' })).status).toBe(415);
  });

  it('takes 64 MiB on the firmware upload only: every other route answers 413 above 1 MiB', async () => {
    const MiB = 1024 * 1024;
    const octets = (n: number) => ({ token: tokens.admin, raw: Buffer.alloc(n, 0x41), type: 'application/octet-stream' });
    // Other routes, whatever the content type (the upload's octet-stream parser included).
    for (const type of ['application/octet-stream', 'application/json']) {
      for (const [method, path] of [['POST', '/api/v1/devices'], ['POST', '/api/v1/rollouts/rnope/pause'], ['POST', '/api/v1/operators']]) {
        const over = await call(method, path, { ...octets(MiB + 1), type });
        expect(over.status, `${method} ${path} ${type}`).toBe(413);
        expect(over.body.error, `${method} ${path} ${type}`).toBe('the body is larger than 1 MiB, the most this route takes');
      }
    }
    // At the limit the body is read, and refused for what it is (not an object), not for its size.
    const at = await call('POST', '/api/v1/devices', octets(MiB));
    expect(at.status).toBe(400);
    // The upload takes more than 1 MiB.
    await store.addProduct('a1Big');
    const image = Buffer.from(testBytes(2 * MiB + 5, 7));
    const put = (url: string, body: Buffer) => fetch(url, { method: 'PUT', headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/octet-stream' }, body });
    const big = await put(`${api.url}/api/v1/products/a1Big/firmware/2.5.0`, image);
    expect(big.status).toBe(201);
    expect(await big.json()).toMatchObject({ version: '2.5.0', size: image.length });
    // And no more than maxFirmwareBytes (a server with a 3 MiB limit, so the test sends little).
    const small = await startApiServer({ store, maxFirmwareBytes: 3 * MiB });
    try {
      expect((await put(`${small.url}/api/v1/products/a1Big/firmware/2.6.0`, image)).status).toBe(201);
      const tooBig = await put(`${small.url}/api/v1/products/a1Big/firmware/2.7.0`, Buffer.alloc(3 * MiB + 1, 1));
      expect(tooBig.status).toBe(413);
      expect(await tooBig.json()).toEqual({ error: 'the body is larger than 3 MiB, the most this route takes' });
      expect((await store.firmwareReleases('a1Big')).map((f) => f.version)).toEqual(['2.5.0', '2.6.0']);
    } finally {
      await small.close();
    }
  });

  it('never answers a fuzzed body with a 500', async () => {
    const routes: Array<[string, string]> = [
      ['POST', '/api/v1/rollouts'],
      ['POST', '/api/v1/devices'],
      ['POST', '/api/v1/products'],
      ['POST', '/api/v1/jobs'],
      ['POST', '/api/v1/operators'],
      ['POST', `/api/v1/devices/${PK}/api-003/tags`],
      ['POST', `/api/v1/devices/${PK}/api-004/rotate-secret`],
      ['POST', '/api/v1/rollouts/rnope/pause'],
    ];
    const field = fc.constantFrom('productKey', 'version', 'deviceName', 'groups', 'waves', 'successThreshold', 'maxFailures', 'timeout', 'retries', 'tags', 'add', 'remove', 'name', 'role', 'devices', 'mode', 'splitSize', 'reason', '__proto__', 'constructor');
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.constantFrom(PK, '2.0.0', '1.0.0', 'api-001', 'canary', '1%,10%,100%', '5%', '30m', 'viewer', 'admin', 'inplace', -1, 1e308, 0, '', '%', ' 5 %', '0%', '100%'),
      fc.array(fc.constantFrom('canary', '10%', 5, 'a'.repeat(70), ''), { maxLength: 5 }),
    );
    const body = fc.oneof(fc.dictionary(field, value, { maxKeys: 6 }), fc.jsonValue({ maxDepth: 4 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), body, fc.constantFrom<keyof typeof tokens>('viewer', 'operator', 'admin'), async ([method, path], b, role) => {
        const r = await call(method, path, { token: tokens[role], raw: JSON.stringify(b) });
        expect(r.status, `${method} ${path} ${JSON.stringify(b)} -> ${JSON.stringify(r.body)}`).toBeLessThan(500);
        if (r.status === 400) expect(typeof r.body.error).toBe('string');
      }),
      { numRuns: Number(process.env.OTADIFF_FUZZ_RUNS ?? 300), seed: 1414 },
    );
    // Raw bytes that are not JSON at all.
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (raw) => {
        const r = await call('POST', '/api/v1/rollouts', { token: tokens.operator, raw });
        expect(r.status).toBeLessThan(500);
      }),
      { numRuns: 100, seed: 1415 },
    );
  }, 120_000);
});
