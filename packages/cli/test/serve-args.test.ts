// `serve --url-ttl`: plain whole seconds from 60 to 7 days, anything else one `error:` line and exit 1
// before anything starts; the bounds themselves start the cloud with that lifetime.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/main.js';
import { serveCommand } from '../src/commands/serve.js';
import { MAX_URL_TTL_S, MIN_URL_TTL_S, parseUrlTtl } from '../src/url-ttl-arg.js';

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

const BAD = ['1e3', '0x3c', '0900', '900.0', '90.5', '15m', ' 900', '+900', '-900', '', '0', '59', '604801', '99999999', '1e400', 'Infinity', 'NaN'];

describe('serve --url-ttl', () => {
  it('takes plain whole seconds from 60 to 604800, 900 by default', () => {
    expect([MIN_URL_TTL_S, MAX_URL_TTL_S]).toEqual([60, 604_800]);
    expect(parseUrlTtl(undefined)).toBe(900);
    expect(['60', '900', '3600', '604800'].map(parseUrlTtl)).toEqual([60, 900, 3600, 604_800]);
    for (const bad of BAD) expect(() => parseUrlTtl(bad), bad).toThrow(`--url-ttl must be a whole number of seconds from 60 to 604800 (7 days), not "${bad}"`);
  });

  it('refuses anything else with one error line and exit 1, starting nothing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-args-'));
    for (const bad of BAD) {
      // Through serveCommand first, with the stop signal already given: a value let through starts
      // and stops the cloud at once, and the test fails here rather than waiting on a running serve.
      await expect(serveCommand({ data: join(dir, 'data'), port: '0', httpPort: '0', coapPort: '0', quiet: true, urlTtl: bad }, { signal: AbortSignal.abort(), out: () => {} }), bad).rejects.toThrow(/--url-ttl must be/);
      const r = await run('serve', '--data', join(dir, 'data'), '--port', '0', '--http-port', '0', '--coap-port', '0', '--url-ttl', bad);
      expect(r.code, bad).toBe(1);
      expect(r.err, bad).toBe(`error: --url-ttl must be a whole number of seconds from 60 to 604800 (7 days), not "${bad}"\n`);
      expect(r.out, bad).toBe('');
    }
  });

  it('starts the cloud at either bound, its URLs living that long', async () => {
    dir = await mkdtemp(join(tmpdir(), 'otadiff-cli-args-'));
    for (const ttl of ['60', '604800']) {
      const lines: string[] = [];
      const stop = new AbortController();
      const server = serveCommand({ data: join(dir, 'data'), port: '0', httpPort: '0', coapPort: '0', quiet: true, urlTtl: ttl }, { signal: stop.signal, out: (l) => lines.push(l) });
      try {
        for (const end = Date.now() + 20_000; !lines.some((l) => /Ctrl-C stops/.test(l)); ) {
          if (Date.now() > end) throw new Error(`serve did not start: ${lines.join('\n')}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(lines.join('\n')).toContain(`(signed URLs valid ${ttl} s`);
      } finally {
        stop.abort();
        await server;
      }
    }
  }, 60_000);
});
