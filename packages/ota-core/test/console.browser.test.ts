// The operators' console in a real browser: Debian's chromium, driven by playwright-core, against a
// real cloud (embedded broker, HTTP downloads, signed packages, the API port) and four devices on
// simulated flash. An operator signs in (a bad token is refused on the page; the token stays in the
// tab's sessionStorage; a removed operator's page goes back to the sign-in form), reads the fleet
// and filters it by tag (a malformed tag is an error on the page), watches a rollout appear and
// progress wave by wave on the page and its chart, pauses it (the database says paused, the audit
// log shows who) and resumes it to the end; a viewer watching the same rollout has no buttons.
//
// The devices' flash writes wait on a valve the test opens, so the pause lands while the first
// wave (one device, picked at random) is under way however loaded the machine is; every other wait
// is on a condition.
// Without /usr/bin/chromium the test is skipped, unless OTADIFF_REQUIRE_BROWSER=1 (.ci/run) asks
// for it: then it fails.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startOtaCloud, type OtaCloud } from '../src/cloud/cloud.js';
import { getRollout } from '../src/cloud/rollouts.js';
import { addOperator, removeOperator } from '../src/cloud/admin/operators.js';
import { createDeviceFlashDir, createFlashDirPort, type FlashDirPort } from '../src/device/flash-port.js';
import { createOtaService } from '../src/device/ota-service.js';
import type { OtaService } from '../src/device/service-types.js';
import { resolveTrustedKeys } from '../src/device/trusted-keys.js';
import { firmwarePair, packageKeys } from './helpers/ota-rig.js';

const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = process.env.OTADIFF_REQUIRE_BROWSER === '1';
const HAVE = existsSync(CHROMIUM);
if (!HAVE && !REQUIRED) console.warn(`${CHROMIUM} is missing: the console's browser test is SKIPPED (apt-get install chromium, or run .ci/run)`);

const PK = 'a1Console';
const SPLIT = 16 * 1024;
const TAGS: string[][] = [['canary'], ['east'], ['east', 'lab'], ['west']];
const keys = packageKeys();
const root = { name: 'cli:test', role: 'admin' } as const;

let dir: string;
let cloud: OtaCloud;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];
const devices: Array<{ name: string; port: FlashDirPort; svc: OtaService }> = [];
const tokens = { operator: '', viewer: '' };
// Uncaught exceptions and console errors of every page (a CSP refusal is one); failed requests the
// test makes on purpose (a bad token, a bad tag) are logged by Chromium as "Failed to load resource".
const pageErrors: string[] = [];

/** The devices' flash writes wait while the valve is shut. */
let valve: { shut: Promise<void>; open(): void } | undefined;

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : ` (last: ${(last as Error).message})`}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function openPage(): Promise<Page> {
  const ctx = await browser!.newContext();
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`console: ${m.text()}`);
  });
  // A quick refresh, so the test waits less (the default is 3 s).
  await page.goto(`${cloud.api!.url}/?refresh=300`);
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#app', { state: 'visible' });
}

const text = async (page: Page, selector: string): Promise<string> => ((await page.textContent(selector)) ?? '').trim();

/** Waits for the text at `selector` to be `want` (or to match it); a timeout says what it was. */
async function untilText(page: Page, selector: string, want: string | RegExp, ms = 60_000): Promise<void> {
  let seen = '';
  await until(`${selector} to read ${want}`, async () => {
    seen = await text(page, selector);
    return typeof want === 'string' ? seen === want : want.test(seen);
  }, ms).catch((e: Error) => {
    throw new Error(`${e.message}; it reads ${JSON.stringify(seen)}`);
  });
}
const fleetRows = (page: Page): Promise<string[]> => page.$$eval('#fleet tbody tr[data-device]', (rows) => rows.map((r) => r.getAttribute('data-device') ?? ''));
const fleetCell = (page: Page, device: string, cls: string): Promise<string> => text(page, `#fleet tr[data-device="${PK}/${device}"] td.${cls}`);
const waveCell = (page: Page, id: string, wave: number, cls: string): Promise<string> => text(page, `[data-rollout="${id}"] tr[data-wave="${wave}"] td.${cls}`);
const buttons = (page: Page, id: string): Promise<string[]> => page.$$eval(`[data-rollout="${id}"] .actions button`, (bs) => bs.map((b) => (b.textContent ?? '').trim()));
/** The chart's datasets (label → y values), read from chart.js itself. */
const chartSeries = (page: Page, id: string): Promise<Record<string, number[]> | null> =>
  page.evaluate(`(() => {
    const c = Chart.getChart(document.querySelector('[data-rollout="${id}"] canvas'));
    return c === undefined ? null : Object.fromEntries(c.data.datasets.map((d) => [d.label, d.data.map((p) => p.y)]));
  })()`);
const dbState = async (id: string): Promise<string> => (await getRollout(cloud.store, id))!.state;

// Asked for and missing: a failed test (the suite below is skipped).
if (!HAVE && REQUIRED) {
  it('finds Debian chromium', () => {
    throw new Error(`${CHROMIUM} is missing and OTADIFF_REQUIRE_BROWSER=1 asks for it (apt-get install chromium)`);
  });
}

describe.skipIf(!HAVE)('the console in a real browser', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-console-'));
    const { old, neu } = firmwarePair(48 * 1024, 83);
    cloud = await startOtaCloud({ dataDir: join(dir, 'cloud'), pollMs: 50, rolloutTickMs: 100, revocationPollMs: 100, packageSigningKey: keys.privateKey, apiPort: 0, verbose: false });
    await cloud.store.addProduct(PK, { mode: 'inplace', splitSize: SPLIT });
    await cloud.store.addFirmware(PK, '1.0.0', old);
    await cloud.store.addFirmware(PK, '2.0.0', neu);
    tokens.operator = (await addOperator(cloud.store, { name: 'alice', role: 'operator' }, root)).token;
    tokens.viewer = (await addOperator(cloud.store, { name: 'victor', role: 'viewer' }, root)).token;
    for (const [i, tags] of TAGS.entries()) {
      const name = `meter-${i}`;
      const { deviceSecret } = await cloud.store.addDevice(PK, name, undefined, { tags });
      const flash = join(dir, name);
      createDeviceFlashDir(flash, { image: old, version: '1.0.0', splitSize: SPLIT });
      const port = createFlashDirPort(flash, { trustedKeys: resolveTrustedKeys([keys.publicKey]) });
      // Slow flash (a few ms a write), so the progress is there to be seen; shut, the valve stops writes.
      const write = port.write.bind(port);
      port.write = async (offset, bytes) => {
        await valve?.shut;
        await new Promise((r) => setTimeout(r, 5));
        return write(offset, bytes);
      };
      const svc = createOtaService({ productKey: PK, deviceName: name, deviceSecret, broker: cloud.brokerUrl, port, trustedKeys: [keys.publicKey], reconnect: false, download: { backoff: { initialMs: 5, maxMs: 50 } } });
      devices.push({ name, port, svc });
    }
    for (const d of devices) await d.svc.start();
    await until('every device to report 1.0.0', async () => (await cloud.store.status()).devices.every((x) => x.version === '1.0.0'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      // Chromium's sandbox refuses root (CI runs as root); the rest: none of Chromium's own
      // connections, which fail on a closed network.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    });
  }, 120_000);

  afterAll(async () => {
    valve?.open();
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    for (const d of devices) {
      await d.svc.stop().catch(() => {});
      await d.port.close().catch(() => {});
    }
    await cloud?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('signs in with a token kept in this tab only; a bad token is refused with the reason', async () => {
    const page = await openPage();
    await page.waitForSelector('#login', { state: 'visible' });
    expect(await page.isHidden('#app')).toBe(true);
    await page.fill('#token', 'otd_not-a-token-of-anyone');
    await page.click('#login-form button[type=submit]');
    await untilText(page, '#login-error', 'error: the bearer token is not valid');
    expect(await page.isHidden('#app')).toBe(true);
    expect(await page.evaluate('sessionStorage.length')).toBe(0);

    await signIn(page, tokens.operator);
    expect(await text(page, '#who')).toBe('alice (operator)');
    expect(await page.evaluate("sessionStorage.getItem('otadiff-token')")).toBe(tokens.operator);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.inputValue('#token')).toBe('');
    // A reload keeps the tab signed in; another browser session is not.
    await page.reload();
    await page.waitForSelector('#app', { state: 'visible' });
    expect(await text(page, '#who')).toBe('alice (operator)');
    const other = await openPage();
    await other.waitForSelector('#login', { state: 'visible' });
    // Signing out forgets the token.
    await page.click('#logout');
    await page.waitForSelector('#login', { state: 'visible' });
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    expect(await page.isHidden('#app')).toBe(true);

    // An operator removed while signed in is sent back to the sign-in form, with the reason.
    const carol = await addOperator(cloud.store, { name: 'carol', role: 'admin' }, root);
    await signIn(other, carol.token);
    expect(await text(other, '#who')).toBe('carol (admin)');
    await removeOperator(cloud.store, 'carol', root);
    await other.waitForSelector('#login', { state: 'visible' });
    await untilText(other, '#login-error', 'error: the bearer token is not valid');
    expect(await other.evaluate('sessionStorage.length')).toBe(0);
    expect(pageErrors).toEqual([]);

    // The page's own door: its scripts only, its server only, never in a frame.
    const head = await fetch(`${cloud.api!.url}/`);
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(head.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self';.* connect-src 'self';.* frame-ancestors 'none'/);
    expect(head.headers.get('x-content-type-options')).toBe('nosniff');
  }, 90_000);

  it('lists the fleet with versions, states and tags; the tag filter filters; a bad tag is shown as an error', async () => {
    const page = await openPage();
    await signIn(page, tokens.viewer);
    const all = devices.map((d) => `${PK}/${d.name}`);
    await until('the four devices', async () => JSON.stringify(await fleetRows(page)) === JSON.stringify(all));
    for (const [i, d] of devices.entries()) {
      expect(await fleetCell(page, d.name, 'version')).toBe('1.0.0');
      expect(await fleetCell(page, d.name, 'state')).toBe('idle');
      expect(await fleetCell(page, d.name, 'tags')).toBe(TAGS[i].join(', '));
    }
    expect(await text(page, `#summary li[data-product="${PK}"]`)).toBe(`${PK}: 4 devices; versions 1.0.0 ×4; states idle ×4`);

    await page.fill('#tag', 'east');
    await page.click('#fleet-filter button[type=submit]');
    await until('only the east devices', async () => JSON.stringify(await fleetRows(page)) === JSON.stringify([`${PK}/meter-1`, `${PK}/meter-2`]));
    // The filter stays through the page's refreshes.
    const seen = await text(page, '#updated');
    await until('a refresh', async () => (await text(page, '#updated')) !== seen);
    expect(await fleetRows(page)).toEqual([`${PK}/meter-1`, `${PK}/meter-2`]);

    await page.fill('#tag', 'not a tag!');
    await page.click('#fleet-filter button[type=submit]');
    await untilText(page, '#filter-error', 'error: querystring.tag must be tag: 1-64 of letters, digits, _ . : -');
    expect(await fleetRows(page)).toEqual([`${PK}/meter-1`, `${PK}/meter-2`]);

    await page.fill('#tag', 'nobody');
    await page.click('#fleet-filter button[type=submit]');
    await untilText(page, '#fleet tbody', 'No device carries the tag nobody.');
    expect(await text(page, '#filter-error')).toBe('');

    await page.fill('#tag', '');
    await page.click('#fleet-filter button[type=submit]');
    await until('all devices again', async () => JSON.stringify(await fleetRows(page)) === JSON.stringify(all));
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('shows a rollout progress live; the operator pauses and resumes it; a viewer has no buttons', async () => {
    const op = await openPage();
    await signIn(op, tokens.operator);
    const viewer = await openPage();
    await signIn(viewer, tokens.viewer);
    await untilText(op, '#rollouts', 'No rollouts yet.');

    // The first wave's device will stop at its first flash write until the valve opens.
    let open!: () => void;
    valve = { shut: new Promise<void>((r) => (open = r)), open: () => open() };
    const res = await fetch(`${cloud.api!.url}/api/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ productKey: PK, version: '2.0.0', waves: '1,100%' }),
    });
    expect(res.status).toBe(201);
    const id = ((await res.json()) as { id: string }).id;
    const rollout = `[data-rollout="${id}"]`;

    // It appears on both pages without a reload, its first wave under way.
    await op.waitForSelector(rollout);
    await viewer.waitForSelector(rollout);
    await untilText(op, `${rollout} tr[data-wave="0"] td.in-progress`, '1');
    expect(await waveCell(op, id, 0, 'devices')).toBe('1');
    expect(await waveCell(op, id, 1, 'devices')).toBe('0');
    await until('the notice on the chart', async () => (await chartSeries(op, id))?.notified.at(-1) === 1);
    const before = (await chartSeries(op, id))!;
    expect(before.updated.every((y) => y === 0)).toBe(true);
    expect(await text(op, `${rollout} .state`)).toBe('running');

    // The operator can pause and cancel; the viewer sees the same rollout and no button at all.
    expect(await buttons(op, id)).toEqual(['Pause', 'Cancel']);
    expect(await text(viewer, `${rollout} .state`)).toBe('running');
    expect(await buttons(viewer, id)).toEqual([]);

    await op.click(`${rollout} button.pause`);
    await until('the database to say paused', async () => (await dbState(id)) === 'paused');
    await untilText(op, `${rollout} .state`, 'paused');
    expect(await text(op, `${rollout} .reason`)).toBe('paused by alice');
    expect(await buttons(op, id)).toEqual(['Resume', 'Cancel']);
    await untilText(viewer, `${rollout} .state`, 'paused');
    expect(await buttons(viewer, id)).toEqual([]);
    expect(await viewer.$$(`${rollout} button`)).toHaveLength(0);
    // The audit log names who paused it.
    const audit = `#audit tr[data-action="rollout.pause"]`;
    await until('the pause in the audit log', () => op.$(audit));
    expect(await text(op, `${audit} td.actor`)).toBe('alice (operator)');
    expect(await text(op, `${audit} td.target`)).toBe(id);

    // Paused: the device already told finishes (the page counts it), the next wave is not sent.
    valve.open();
    await untilText(op, `${rollout} tr[data-wave="0"] td.updated`, '1', 90_000);
    await until('the update on the chart', async () => (await chartSeries(op, id))?.updated.at(-1) === 1);
    expect(await dbState(id)).toBe('paused');
    expect((await getRollout(cloud.store, id))!.counts.held).toBe(3);
    // The fleet table shows the first wave's device on 2.0.0, the others on 1.0.0 and held.
    const fleet = async (): Promise<string[]> => Promise.all(devices.map(async (d) => `${await fleetCell(op, d.name, 'version')} ${await fleetCell(op, d.name, 'state')}`));
    await until('the fleet table to show one device updated', async () => (await fleet()).filter((x) => x === '2.0.0 succeeded').length === 1);
    expect((await fleet()).sort()).toEqual(['1.0.0 held', '1.0.0 held', '1.0.0 held', '2.0.0 succeeded']);

    await op.click(`${rollout} button.resume`);
    await until('the database to say running again', async () => (await dbState(id)) !== 'paused');
    await untilText(op, `${rollout} .state`, 'completed', 90_000);
    expect(await dbState(id)).toBe('completed');
    expect(await waveCell(op, id, 0, 'updated')).toBe('1');
    expect(await waveCell(op, id, 1, 'updated')).toBe('3');
    expect(await waveCell(op, id, 1, 'failed')).toBe('0');
    expect(await buttons(op, id)).toEqual([]);
    const after = await until('the chart to reach four', async () => {
      const s = await chartSeries(op, id);
      return s?.updated.at(-1) === 4 ? s : undefined;
    });
    expect(after.updated.length).toBeGreaterThan(before.updated.length);
    expect(after.failed.every((y) => y === 0)).toBe(true);
    expect(after.notified.at(-1)).toBe(4);
    // Counts only grow along the chart.
    expect(after.updated).toEqual([...after.updated].sort((a, b) => a - b));
    await until('the fleet on 2.0.0', async () => {
      for (const d of devices) if ((await fleetCell(op, d.name, 'version')) !== '2.0.0' || (await fleetCell(op, d.name, 'state')) !== 'succeeded') return false;
      return true;
    });
    for (const d of devices) expect(d.svc.running?.version).toBe('2.0.0');
    await untilText(op, `#summary li[data-product="${PK}"]`, `${PK}: 4 devices; versions 2.0.0 ×4; states succeeded ×4`);
    await untilText(op, '#audit tr[data-action="rollout.resume"] td.actor', 'alice (operator)');
    await untilText(viewer, `${rollout} .state`, 'completed');
    expect(await text(viewer, '#error')).toBe('');
    expect(await text(op, '#error')).toBe('');
    expect(pageErrors).toEqual([]);
  }, 180_000);
});
