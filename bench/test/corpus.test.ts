import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorpusError, ensureMicrobitCorpus, microbitDir, microbitHex, microbitImage, MICROBIT_VARIANTS, MICROBIT_VERSIONS } from '../src/corpus.js';

// The fetch's behaviour without the network: a registry that refuses connections.
const saved = { registry: process.env.npm_config_registry, retries: process.env.npm_config_fetch_retries };
beforeEach(() => {
  process.env.npm_config_fetch_retries = '0';
});
afterEach(() => {
  for (const [k, v] of [['npm_config_registry', saved.registry], ['npm_config_fetch_retries', saved.retries]] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
});

/** A corpus folder holding the pinned sums and, optionally, copies of the images already fetched. */
function folder(withImages: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'otadiff-corpus-test-'));
  copyFileSync(join(microbitDir, 'SHA256SUMS'), join(dir, 'SHA256SUMS'));
  if (withImages) {
    mkdirSync(join(dir, 'hex'));
    for (const variant of MICROBIT_VARIANTS)
      for (const version of MICROBIT_VERSIONS) {
        copyFileSync(microbitImage(variant, version), join(dir, `${variant}-${version}.bin`));
        copyFileSync(microbitHex(variant, version), join(dir, 'hex', `${variant}-${version}.hex`));
      }
  }
  return dir;
}

describe('the fetched corpus', () => {
  it('is reused offline once fetched', () => {
    const dir = folder(true);
    process.env.npm_config_registry = 'http://127.0.0.1:9/';
    const log: string[] = [];
    expect(ensureMicrobitCorpus((l) => log.push(l), dir)).toBe(dir);
    expect(log).toEqual([]);
  });

  it('a failed fetch is one error naming the package', () => {
    process.env.npm_config_registry = 'http://127.0.0.1:9/';
    const dir = folder(false);
    let error: unknown;
    try {
      ensureMicrobitCorpus(() => {}, dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CorpusError);
    expect((error as Error).message).toMatch(/^cannot fetch pxt-microbit@4\.0\.24 from the npm registry: .*ECONNREFUSED/);
    expect((error as Error).message).not.toMatch(/\n/);
  });

  it('an image that no longer matches its pinned hash is fetched again', () => {
    const dir = folder(true);
    writeFileSync(join(dir, 'v2b-7.0.6.bin'), 'damaged');
    process.env.npm_config_registry = 'http://127.0.0.1:9/';
    const log: string[] = [];
    expect(() => ensureMicrobitCorpus((l) => log.push(l), dir)).toThrow(/cannot fetch pxt-microbit@7\.0\.6/);
    expect(log).toEqual(['fetching pxt-microbit@7.0.6 from the npm registry…']);
  });
});
