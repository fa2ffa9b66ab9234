// The `otadiff serve` administration commands through the real CLI (argument parsing, exit codes,
// `error:` lines, --json): tags, rollouts and their actions, history, operators, the audit log, and a
// running `serve --api-port` answering the management API with the tokens add-operator printed.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/main.js';
import { serveCommand } from '../src/commands/serve.js';

let dir = '';
afterEach(async () => {
  vi.restoreAllMocks();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(['node', 'otadiff', ...args]), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

async function json<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  const r = await run(...args, '--json');
  expect(r.err, args.join(' ')).toBe('');
  expect(r.code, args.join(' ')).toBe(0);
  return JSON.parse(r.out) as T;
}

function image(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const PK = 'a1Admin';

async function fleet(): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-admin-'));
  const data = join(dir, 'data');
  const v1 = image(40_000, 1);
  const v2 = v1.slice();
  v2.set(image(2000, 2), 10_000);
  await writeFile(join(dir, 'v1.bin'), v1);
  await writeFile(join(dir, 'v2.bin'), v2);
  await json('serve', 'add-product', '--data', data, '--product-key', PK, '--mode', 'inplace', '--split-size', '16K');
  await json('serve', 'add-firmware', join(dir, 'v1.bin'), '--data', data, '--product-key', PK, '--version', '1.0.0', '--allow-downgrade');
  await json('serve', 'add-firmware', join(dir, 'v2.bin'), '--data', data, '--product-key', PK, '--version', '2.0.0');
  for (let i = 0; i < 4; i++) await json('serve', 'add-device', '--data', data, '--product-key', PK, '--device-name', `adm-dev-${i}`, ...(i < 2 ? ['--tag', 'canary'] : []));
  return data;
}

interface Rollout {
  id: string;
  state: string;
  groups: string[] | null;
  devices: number;
  reason: string | null;
  rollback: boolean;
  policyText: { waves: string; successThreshold: string; maxFailures: string; timeout: string; retries: number };
  waves: { index: number; target: number }[];
}

describe('otadiff serve: rollouts, tags, operators and the audit log', () => {
  it('creates, lists, shows, pauses, resumes and cancels a rollout; tags target it; every change is audited', async () => {
    const data = await fleet();
    const tagged = await json<{ tags: string[] }>('serve', 'device', 'tag', '--data', data, '--product-key', PK, '--device-name', 'adm-dev-3', '--add', 'canary', '--add', 'eu');
    expect(tagged.tags.sort()).toEqual(['canary', 'eu']);
    const untagged = await json<{ tags: string[] }>('serve', 'device', 'tag', '--data', data, '--product-key', PK, '--device-name', 'adm-dev-3', '--remove', 'eu');
    expect(untagged.tags).toEqual(['canary']);

    const r = await json<Rollout>('serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--groups', 'canary', '--waves', '1,100%', '--success-threshold', '90%', '--max-failures', '1', '--timeout', '30m', '--retries', '2');
    expect(r).toMatchObject({ state: 'running', groups: ['canary'], devices: 3, rollback: false });
    expect(r.policyText).toMatchObject({ waves: '1,100%', successThreshold: '90%', timeout: '30m', retries: 2 });
    expect(r.waves.map((w) => w.target)).toEqual([1, 3]);

    // --data given to `serve` rather than to the subcommand works too.
    const listed = await json<{ rollouts: Rollout[] }>('serve', '--data', data, 'rollout', 'list');
    expect(listed.rollouts.map((x) => x.id)).toEqual([r.id]);
    const text = await run('serve', 'rollout', 'show', r.id, '--data', data);
    expect(text.code).toBe(0);
    expect(text.out).toContain(`rollout ${r.id}: ${PK} -> 2.0.0 for devices tagged canary (3): running`);
    expect(text.out).toMatch(/wave 1 \(up to 1\): \w+, 1 device\(s\)/);

    expect((await json<Rollout>('serve', 'rollout', 'pause', r.id, '--data', data, '--reason', 'field reports')).state).toBe('paused');
    expect((await json<Rollout>('serve', 'rollout', 'show', r.id, '--data', data)).reason).toContain('field reports');
    expect((await json<Rollout>('serve', 'rollout', 'resume', r.id, '--data', data)).state).toBe('running');
    expect((await json<Rollout>('serve', 'rollout', 'cancel', r.id, '--data', data)).state).toBe('cancelled');
    const again = await run('serve', 'rollout', 'resume', r.id, '--data', data);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^error: .*cancelled/);

    // The rollback target: 1.0.0 was added with --allow-downgrade.
    const back = await json<Rollout>('serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '1.0.0');
    expect(back.rollback).toBe(true);

    const history = await json<{ history: { rolloutId: string | null; version: string; state: string }[] }>('serve', 'device', 'history', '--data', data, '--product-key', PK, '--device-name', 'adm-dev-0');
    expect(history.history.some((h) => h.rolloutId === r.id && h.version === '2.0.0')).toBe(true);

    const audit = await json<{ entries: { actor: string; action: string; target: string }[] }>('serve', 'audit', '--data', data, '--target', r.id);
    expect(audit.entries.map((e) => e.action).reverse()).toEqual(['rollout.create', 'rollout.pause', 'rollout.resume', 'rollout.cancel']);
    expect(new Set(audit.entries.map((e) => e.actor)).size).toBe(1);
  }, 60_000);

  it('rollout list pages with --before, as its "(more: --before ID)" hint says', async () => {
    const data = await fleet();
    const made: string[] = [];
    for (const version of ['2.0.0', '1.0.0', '2.0.0', '1.0.0']) {
      const r = await json<Rollout>('serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', version);
      made.push(r.id);
      await json('serve', 'rollout', 'cancel', r.id, '--data', data);
    }
    const newestFirst = [...made].reverse();
    // Text: follow the hint page by page.
    const seen: string[] = [];
    let before: string[] = [];
    for (let page = 0; page < 10; page++) {
      const r = await run('serve', 'rollout', 'list', '--data', data, '--limit', '3', ...before);
      expect(r.code, r.err).toBe(0);
      seen.push(...[...r.out.matchAll(/^(\S+)  a1Admin -> /gm)].map((m) => m[1]));
      const hint = /^\(more: --before (\S+)\)$/m.exec(r.out);
      if (hint === null) break;
      before = ['--before', hint[1]];
    }
    expect(seen).toEqual(newestFirst);
    // JSON: `next` is the same cursor.
    const first = await json<{ rollouts: Rollout[]; next?: string }>('serve', 'rollout', 'list', '--data', data, '--limit', '2');
    expect(first.rollouts.map((x) => x.id)).toEqual(newestFirst.slice(0, 2));
    expect(first.next).toBe(newestFirst[1]);
    const second = await json<{ rollouts: Rollout[]; next?: string }>('serve', '--data', data, 'rollout', 'list', '--limit', '2', '--before', first.next!);
    expect(second.rollouts.map((x) => x.id)).toEqual(newestFirst.slice(2));
    expect(second.next).toBeUndefined();
    // Bad cursors: one error line, exit 1.
    for (const [bad, err] of [
      ['', /^error: --before must be a rollout id/],
      ['r 1', /^error: --before must be a rollout id/],
      ['../r1', /^error: --before must be a rollout id/],
      ['r'.repeat(41), /^error: --before must be a rollout id/],
      ['rnosuchrollout', /^error: unknown rollout rnosuchrollout/],
    ] as const) {
      const r = await run('serve', 'rollout', 'list', '--data', data, '--before', bad);
      expect(r.code, bad).toBe(1);
      expect(r.err, bad).toMatch(err);
      expect(r.err, bad).not.toMatch(/\n\s+at /);
      expect(r.out, bad).toBe('');
    }
  }, 60_000);

  it('rollout create --retries takes 0 to 10, as its error and the service say', async () => {
    const data = await fleet();
    for (const n of ['0', '10']) {
      const r = await json<Rollout>('serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--retries', n);
      expect(r.policyText.retries).toBe(Number(n));
      await json('serve', 'rollout', 'cancel', r.id, '--data', data);
    }
    for (const bad of ['11', '99', '-1', '1e1', '010', '2.5', ' 3', '']) {
      const r = await run('serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--retries', bad);
      expect(r.code, bad).toBe(1);
      expect(r.err, bad).toBe(`error: --retries must be an integer from 0 to 10, not "${bad}"\n`);
    }
    expect((await json<{ rollouts: unknown[] }>('serve', 'rollout', 'list', '--data', data)).rollouts).toHaveLength(2);
  }, 60_000);

  it('refuses bad input with one error line and exit 1, writing nothing', async () => {
    const data = await fleet();
    const bad: [string[], RegExp][] = [
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--waves', '10%,5%'], /^error: .*wave/m],
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--waves', 'lots'], /^error: .*wave/m],
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--success-threshold', '150%'], /^error: .*threshold/m],
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--timeout', 'soon'], /^error: .*timeout/m],
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '2.0.0', '--retries', 'x'], /^error: --retries/m],
      [['serve', 'rollout', 'create', '--data', data, '--product-key', PK, '--version', '9.9.9'], /^error: .*9\.9\.9/m],
      [['serve', 'rollout', 'show', 'no-such-rollout', '--data', data], /^error: /m],
      [['serve', 'add-operator', '--data', data, '--name', 'x', '--role', 'root'], /^error: .*root/m],
      [['serve', 'device', 'tag', '--data', data, '--product-key', PK, '--device-name', 'adm-dev-0'], /^error: give --add/m],
    ];
    for (const [args, err] of bad) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err, args.join(' ')).toMatch(err);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
    expect((await json<{ rollouts: unknown[] }>('serve', 'rollout', 'list', '--data', data)).rollouts).toEqual([]);
    expect((await json<{ entries: { action: string }[] }>('serve', 'audit', '--data', data)).entries.some((e) => e.action.startsWith('rollout.'))).toBe(false);
  }, 60_000);

  it('serve --api-port answers the API with the tokens add-operator printed once', async () => {
    const data = await fleet();
    const viewer = await json<{ name: string; role: string; token: string }>('serve', 'add-operator', '--data', data, '--name', 'vera', '--role', 'viewer');
    const op = await json<{ name: string; role: string; token: string }>('serve', 'add-operator', '--data', data, '--name', 'otto', '--role', 'operator');
    expect(Object.keys(viewer).sort()).toEqual(['name', 'role', 'token']);
    expect(viewer.token).not.toBe(op.token);
    // Only a hash is kept: the list never shows a token.
    const ops = await run('serve', 'operators', '--data', data, '--json');
    expect(ops.out).toContain('vera');
    expect(ops.out).not.toContain(viewer.token);

    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const lines: string[] = [];
    const stop = new AbortController();
    const server = serveCommand({ data, port: '0', httpPort: '0', coapPort: '0', apiPort: '0' }, { signal: stop.signal, out: (l) => lines.push(l) });
    try {
      const deadline = Date.now() + 20_000;
      let api: string | undefined;
      while ((api = /API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(lines.join('\n'))?.[1]) === undefined) {
        if (Date.now() > deadline) throw new Error(`no API line in: ${lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const get = (path: string, token?: string) => fetch(api + path, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      const post = (path: string, body: unknown, token: string) =>
        fetch(api + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await get('/api/v1/devices')).status).toBe(401);
      expect((await get('/api/v1/devices', 'not-a-token')).status).toBe(401);
      const devices = await get('/api/v1/devices', viewer.token);
      expect(devices.status).toBe(200);
      expect(((await devices.json()) as { devices: unknown[] }).devices).toHaveLength(4);
      expect((await post('/api/v1/rollouts', { productKey: PK, version: '2.0.0' }, viewer.token)).status).toBe(403);
      const created = await post('/api/v1/rollouts', { productKey: PK, version: '2.0.0', waves: '50%,100%' }, op.token);
      expect(created.status).toBe(201);
      const id = ((await created.json()) as { id: string }).id;
      // The CLI and the API are one code path: the CLI sees the API's rollout, and who made it.
      const shown = await json<Rollout & { createdBy: string }>('serve', 'rollout', 'show', id, '--data', data);
      expect(shown.createdBy).toBe('otto');
      const page = await get('/', undefined);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<html/i);
    } finally {
      stop.abort();
      await server;
    }
  }, 60_000);
});
