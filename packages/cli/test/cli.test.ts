import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/main.js';
import { parseSize } from '../src/size-arg.js';
import { microbitHex, microbitImage } from '../../../bench/src/corpus.js';

const CORPUS = new URL('../../../corpus/esp8266-at/', import.meta.url).pathname;
const MICROBIT = new URL('../../../corpus/microbit-codal/', import.meta.url).pathname;
let dir: string;

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(['node', 'otadiff', ...args]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'otadiff-cli-'));
});
afterEach(() => vi.restoreAllMocks());

describe('sizes', () => {
  it('accepts the usual spellings', () => {
    expect([parseSize('4096'), parseSize('4K'), parseSize('4k'), parseSize('4KiB'), parseSize('4KB'), parseSize('64K'), parseSize('1M'), parseSize('1MiB')]).toEqual([
      4096, 4096, 4096, 4096, 4096, 65536, 1 << 20, 1 << 20,
    ]);
    for (const bad of ['', 'K', '4X', '-4K', '4.5K', '4 KiBs']) expect(() => parseSize(bad)).toThrow(/invalid size/);
  });
});

describe('otadiff diff / apply / info', () => {
  it('round-trips a corpus pair and reports the package in JSON', async () => {
    const patch = join(dir, 'p.bin');
    const d = await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch, '--json', '--split-size', '64K', '--dict-size', '16KiB');
    expect(d.code).toBe(0);
    const j = JSON.parse(d.out);
    expect(j).toMatchObject({ mode: 'inplace', splitSize: 65536, dictSize: 16384, oldBytes: 413444, newBytes: 413556, chunks: 7 });
    expect(j.patchBytes).toBe(readFileSync(patch).length);
    const out = join(dir, 'n.bin');
    const a = await run('apply', `${CORPUS}at-v3.0.4.bin`, patch, '-o', out, '--json');
    expect(a.code).toBe(0);
    expect(Buffer.compare(readFileSync(out), readFileSync(`${CORPUS}at-v3.0.5.bin`))).toBe(0);
    const i = await run('info', patch, '--json');
    // An ESP8266 pair: the Xtensa transform (auto) makes it a version-3 package.
    expect(j.transform).toMatchObject({ kind: 'xtensa', base: '0x3ffe8000' });
    expect(JSON.parse(i.out)).toMatchObject({ diffVersion: 3, mode: 'inplace', newSize: 413556, packageBytes: j.patchBytes, signature: null, transform: j.transform });
    const human = await run('info', patch);
    expect(human.out).toMatch(/diff_version 3, mode inplace/);
    expect(human.out).toMatch(/transform +xtensa on \d+ of 7 chunks \(addresses 0x3ffe8000 \+ \d+, code at 0x40201000, \d+ map segments\)/);
    expect(human.out.split('\n').filter((l) => /^\s+\d+\s+\d+/.test(l))).toHaveLength(7);
  });

  it('--transform none makes a version-2 package; --transform thumb2 and --base reach the package (micro:bit)', async () => {
    const none = join(dir, 'none.bin');
    const d = await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', none, '--transform', 'none', '--json');
    expect(JSON.parse(d.out)).toMatchObject({ diffVersion: 2, transform: null });
    expect((await run('info', none)).out).toMatch(/transform +none/);
    const t = join(dir, 'mb.bin');
    const m = await run('diff', `${MICROBIT}v1a-7.0.6.bin`, `${MICROBIT}v1a-8.1.32.bin`, '-o', t, '--transform', 'thumb2', '--base', '0x0', '--json');
    expect(m.code).toBe(0);
    const j = JSON.parse(m.out);
    expect(j).toMatchObject({ diffVersion: 3, transform: { kind: 'thumb2', base: '0x00000000', span: 261152, origin: '0x00000000' } });
    expect(j.transform.chunks.length).toBeGreaterThan(0);
    const info = JSON.parse((await run('info', t, '--json')).out);
    expect(info.chunks.filter((c: { transformed: boolean }) => c.transformed).map((c: { index: number }) => c.index)).toEqual(j.transform.chunks);
    // ramBytes counts the map, the predicted block and its 512-byte scratch, the longer header and the
    // engine's share of the transform's objects (8 KiB).
    const plain = JSON.parse((await run('diff', `${MICROBIT}v1a-7.0.6.bin`, `${MICROBIT}v1a-8.1.32.bin`, '-o', join(dir, 'mb-plain.bin'), '--transform', 'none', '--json')).out);
    expect(j.ramBytes - plain.ramBytes).toBe(4096 + 512 + 8 * j.transform.mapSegments + (info.headerBytes - 176 - 4 * 16 - 4) + 8192);
    expect((await run('info', t)).out).toMatch(/buffers [\d.]+ KiB \+ 32\.0 KiB for the JavaScript engine's objects/);
    expect(j.patchBytes).toBeLessThan(plain.patchBytes / 2);
    const out = join(dir, 'mb-new.bin');
    expect((await run('apply', `${MICROBIT}v1a-7.0.6.bin`, t, '-o', out)).code).toBe(0);
    expect(Buffer.compare(readFileSync(out), readFileSync(`${MICROBIT}v1a-8.1.32.bin`))).toBe(0);
    const cut = await run('powercut', `${MICROBIT}v1a-7.0.6.bin`, t, '--sample', '25', '--json');
    expect(cut.code).toBe(0);
    expect(JSON.parse(cut.out)).toMatchObject({ failed: 0, cuts: 25, recovered: 25 });
  });

  it('ab mode and small splits', async () => {
    const patch = join(dir, 'ab.bin');
    const d = await run('diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', patch, '--mode', 'ab', '--split-size', '4K', '--json');
    expect(d.code).toBe(0);
    expect(JSON.parse(d.out)).toMatchObject({ mode: 'ab', splitSize: 4096, chunks: 1 });
  });

  const cases: [string, string[], RegExp][] = [
    ['a missing input', ['diff', '/nonexistent/old', `${CORPUS}at-v3.0.5.bin`, '-o', 'X'], /cannot read OLD \/nonexistent\/old: no such file/],
    ['a bad size', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--split-size', '64Q'], /invalid size "64Q"/],
    ['a split that is not a multiple of 4K', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--split-size', '5000'], /split size 5000/],
    ['a bad mode', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--mode', 'xy'], /--mode must be inplace or ab/],
    ['apply: a missing OLD', ['apply', '/nonexistent/old', `${CORPUS}boot_v1.7.bin`, '-o', 'X'], /cannot read OLD \/nonexistent\/old: no such file/],
    ['apply: a directory as PATCH', ['apply', `${CORPUS}boot_v1.6.bin`, CORPUS, '-o', 'X'], /cannot read PATCH .*: is a directory/],
    ['apply: a missing OLD and a missing key', ['apply', '/nonexistent/old', '/nonexistent/patch', '-o', 'X', '--pubkey', '/nonexistent/key'], /cannot read public key \/nonexistent\/key/],
    ['apply: a missing PATCH', ['apply', `${CORPUS}boot_v1.6.bin`, '/nonexistent/patch', '-o', 'X'], /cannot read PATCH \/nonexistent\/patch: no such file/],
    ['not a package', ['apply', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X'], /not an otadiff package/],
    ['an output in a missing directory', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', '/nonexistent-dir/p.bin'], /cannot write \/nonexistent-dir\/p\.bin: no such directory/],
    ['an unknown option', ['diff', 'a', 'b', '-o', 'X', '--frobnicate'], /unknown option/],
    ['an unknown transform', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--transform', 'arm64'], /--transform must be auto, none, thumb2, xtensa, not "arm64"/],
    ['a bad load address', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--base', '0x1000000000'], /invalid address "0x1000000000"/],
    ['a load address that is no number', ['diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', 'X', '--base', 'flash'], /invalid address "flash"/],
  ];
  for (const [name, args, message] of cases) {
    it(`${name}: one error line, status 1, no output file`, async () => {
      const target = join(dir, `out-${name.replace(/\W+/g, '-')}`);
      const r = await run(...args.map((a) => (a === 'X' ? target : a)));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^error: /);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(message);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(existsSync(target)).toBe(false);
    });
  }

  it('apply reads OLD and PATCH from pipes too (no size to read up to)', async () => {
    const patch = join(dir, 'p-fifo.bin');
    expect((await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch)).code).toBe(0);
    const oldFifo = join(dir, 'old.fifo');
    const patchFifo = join(dir, 'patch.fifo');
    execFileSync('mkfifo', [oldFifo, patchFifo]);
    // Writers in another process: opening a FIFO blocks until both ends are open.
    const writer = spawn('sh', ['-c', `cat "$0" > "$1" & cat "$2" > "$3"; wait`, `${CORPUS}at-v3.0.4.bin`, oldFifo, patch, patchFifo], { stdio: 'ignore' });
    const written = new Promise((resolve) => writer.on('exit', resolve));
    const out = join(dir, 'n-fifo.bin');
    const a = await run('apply', oldFifo, patchFifo, '-o', out, '--json');
    expect(await written).toBe(0);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(Buffer.compare(readFileSync(out), readFileSync(`${CORPUS}at-v3.0.5.bin`))).toBe(0);
  });

  it('a wrong old image or a corrupt package fails without leaving a partial output', async () => {
    const patch = join(dir, 'p2.bin');
    expect((await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch)).code).toBe(0);
    const before = readdirSync(dir).length;
    const wrong = await run('apply', `${CORPUS}at-v3.0.3.bin`, patch, '-o', join(dir, 'never.bin'));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/^error: the old image does not match/);
    const bytes = readFileSync(patch);
    bytes[bytes.length - 100] ^= 0x55;
    const bad = join(dir, 'bad.bin');
    writeFileSync(bad, bytes);
    const r = await run('apply', `${CORPUS}at-v3.0.4.bin`, bad, '-o', join(dir, 'never.bin'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: chunk \d+/);
    expect(readdirSync(dir).length).toBe(before + 1); // only bad.bin was added: no output, no temp file
  });
});

describe('otadiff powercut / flash / restore', () => {
  it('powercut --json reports every cut recovered', async () => {
    const patch = join(dir, 'boot.bin');
    await run('diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', patch, '--split-size', '4K');
    const r = await run('powercut', `${CORPUS}boot_v1.6.bin`, patch, '--sector-size', '1K', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.cuts).toBe(j.operations);
    expect(j).toMatchObject({ failed: 0, recovered: j.cuts });
    expect(j.operations).toBeGreaterThan(5);
  });

  it('powercut --flash PROFILE runs on the part, reports its wear and modelled time; bad or mixed flash options are refused', async () => {
    const patch = join(dir, 'boot-ecc.bin');
    await run('diff', `${CORPUS}boot_v1.6.bin`, `${CORPUS}boot_v1.7.bin`, '-o', patch, '--split-size', '4K');
    const r = await run('powercut', `${CORPUS}boot_v1.6.bin`, patch, '--flash', 'stm32l4', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ flash: 'stm32l4', geometry: { programUnit: 8, overwrite: 'program-once', erasedValue: 255 }, failed: 0 });
    expect(j.cuts).toBe(j.operations);
    expect(j.wear.restoreMs).toBeGreaterThan(0);
    expect(j.wear.erasesPerNewSector).toBeGreaterThan(0);
    const text = await run('powercut', `${CORPUS}boot_v1.6.bin`, patch, '--flash', 'nrf52', '--sample', '5');
    expect(text.out).toMatch(/inplace restore on nrf52 .*\n.*cuts 5 .*\n.*recovered 5, failed 0\n.*per sector of NEW.*\n.*\n  modelled flash time: [\d.]+ ms/);
    const custom = JSON.parse((await run('powercut', `${CORPUS}boot_v1.6.bin`, patch, '--sector-size', '1K', '--program-unit', '16', '--erased-value', '0x00', '--overwrite', 'program-once', '--json')).out);
    expect(custom).toMatchObject({ flash: 'custom', geometry: { programUnit: 16, erasedValue: 0, overwrite: 'program-once' }, failed: 0 });
    for (const [args, msg] of [
      [['--flash', 'stm32f9'], /^error: unknown flash profile 'stm32f9' \(known: spi-nor-4k/],
      [['--flash', 'nrf52', '--sector-size', '1K'], /^error: --flash names a part with its own geometry/],
      [['--erased-value', '0x55'], /^error: --erased-value must be 0xFF or 0x00/],
      [['--overwrite', 'maybe'], /^error: --overwrite must be one of error, and, program-once/],
      [['--program-unit', '64'], /^error: .*programUnit must be a power of two <= 32/],
    ] as const) {
      const bad = await run('powercut', `${CORPUS}boot_v1.6.bin`, patch, ...args);
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(msg);
    }
  });

  it('flash profiles lists the parts; flash init --flash lays the device out on the part', async () => {
    const list = await run('flash', 'profiles', '--json');
    expect(JSON.parse(list.out).profiles.map((p: { name: string }) => p.name)).toEqual(['spi-nor-4k', 'stm32f4', 'stm32l4', 'stm32h7', 'nrf52']);
    expect((await run('flash', 'profiles')).out).toMatch(/stm32f4 .*\n\s+sectors 4x16K, 64K, 128K, \.\.\./);
    const dev = join(dir, 'dev-f4');
    const init = await run('flash', 'init', dev, '--image', `${CORPUS}at-v3.0.4.bin`, '--flash', 'stm32f4');
    expect(init.code).toBe(0);
    expect(init.out).toMatch(/stm32f4 flash of \d+ bytes \(sectors 4x16K, 64K, \d+x128K\)/);
    const layout = JSON.parse(readFileSync(join(dev, 'layout.json'), 'utf8'));
    expect(layout.flash).toMatchObject({ programUnit: 4, erasedValue: 255, overwrite: 'and', profile: 'stm32f4' });
    // A 64 KiB-split in-place package restores on its 128 KiB sectors.
    const patch = join(dir, 'f4.bin');
    await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch);
    expect((await run('flash', 'stage', dev, patch)).code).toBe(0);
    const img = join(dir, 'f4-booted.bin');
    expect(JSON.parse((await run('restore', dev, '--json', '-o', img)).out)).toEqual({ kind: 'trial', slot: 'A', attempt: 1 });
    expect(Buffer.compare(readFileSync(img), readFileSync(`${CORPUS}at-v3.0.5.bin`))).toBe(0);
  });

  it('flash init / stage / restore / confirm on a directory', async () => {
    const patch = join(dir, 'flow.bin');
    await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch, '--mode', 'ab');
    const dev = join(dir, 'dev');
    expect((await run('flash', 'init', dev, '--image', `${CORPUS}at-v3.0.4.bin`, '--ab')).code).toBe(0);
    expect((await run('flash', 'stage', dev, patch)).code).toBe(0);
    const img = join(dir, 'booted.bin');
    const r = await run('restore', dev, '--json', '-o', img);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ kind: 'trial', slot: 'B', attempt: 1 });
    expect(Buffer.compare(readFileSync(img), readFileSync(`${CORPUS}at-v3.0.5.bin`))).toBe(0);
    expect((await run('flash', 'confirm', dev)).code).toBe(0);
    expect(JSON.parse((await run('restore', dev, '--json')).out)).toEqual({ kind: 'normal', slot: 'B' });
    const missing = await run('restore', join(dir, 'nope'));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^error: .*layout\.json/);
  });
});

describe('otadiff keygen / sign / verify / pack', () => {
  const OLD = `${CORPUS}at-v3.0.4.bin`;
  const NEW = `${CORPUS}at-v3.0.5.bin`;

  it('keygen writes a private key only its owner can read, and never overwrites one by accident', async () => {
    const key = join(dir, 'owner');
    const r = await run('keygen', '-o', key, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ privateKey: key, publicKey: `${key}.pub`, type: 'ed25519' });
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(`${key}.pub`, 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    const before = readFileSync(key, 'utf8');
    const again = await run('keygen', '-o', key);
    expect([again.code, again.err]).toEqual([1, `error: ${key} exists; pass --force to replace it\n`]);
    expect(readFileSync(key, 'utf8')).toBe(before);
    expect((await run('keygen', '-o', key, '--force')).code).toBe(0);
    expect(readFileSync(key, 'utf8')).not.toBe(before);
    const bad = await run('keygen', '-o', join(dir, 'k2'), '--type', 'dsa');
    expect(bad.err).toMatch(/^error: --type must be one of ed25519, ecdsa-p256, rsa-2048/);
  });

  it('diff --sign, verify, apply --pubkey; a wrong key, a low counter or a tampered package is refused', async () => {
    const ed = join(dir, 'ed');
    const p256 = join(dir, 'p256');
    await run('keygen', '-o', ed);
    await run('keygen', '-o', p256, '--type', 'ecdsa-p256');
    const patch = join(dir, 'signed.otad');
    const d = await run('diff', OLD, NEW, '-o', patch, '--sign', ed, '--fw-version', 'AT v3.0.5', '--security-counter', '7', '--json');
    expect(d.code).toBe(0);
    expect(JSON.parse(d.out)).toMatchObject({ signature: 'ed25519', firmwareVersion: 'AT v3.0.5', securityCounter: 7 });
    const v = await run('verify', patch, '--pubkey', `${p256}.pub`, '--pubkey', `${ed}.pub`, '--old', OLD, '--json');
    expect(JSON.parse(v.out)).toEqual({ ok: true, algorithm: 'ed25519', mode: 'inplace', firmwareVersion: 'AT v3.0.5', securityCounter: 7, allowDowngrade: false, restored: true });
    const wrong = await run('verify', patch, '--pubkey', `${p256}.pub`);
    expect([wrong.code, wrong.err]).toEqual([1, "error: the package's ed25519 signature does not verify with any trusted key\n"]);
    const low = await run('verify', patch, '--pubkey', `${ed}.pub`, '--security-counter', '8');
    expect(low.err).toMatch(/^error: the package's security counter 7 is below the 8 .*rollback refused/);
    const out = join(dir, 'signed-new.bin');
    expect((await run('apply', OLD, patch, '-o', out, '--pubkey', `${ed}.pub`)).code).toBe(0);
    expect(Buffer.compare(readFileSync(out), readFileSync(NEW))).toBe(0);
    const refused = await run('apply', OLD, patch, '-o', join(dir, 'never2.bin'), '--pubkey', `${p256}.pub`);
    expect(refused.code).toBe(1);
    expect(existsSync(join(dir, 'never2.bin'))).toBe(false);
    // A record byte changed after signing: the signature (over the header) holds, the payload hash does not.
    const bytes = readFileSync(patch);
    bytes[bytes.length - 50] ^= 1;
    const tampered = join(dir, 'tampered.otad');
    writeFileSync(tampered, bytes);
    expect((await run('verify', tampered, '--pubkey', `${ed}.pub`)).err).toBe('error: the records do not match the payload SHA-256 of the signed header\n');
    const unsigned = join(dir, 'unsigned.otad');
    await run('diff', OLD, NEW, '-o', unsigned);
    expect((await run('verify', unsigned, '--pubkey', `${ed}.pub`)).err).toMatch(/^error: the package is not signed/);
    expect((await run('apply', OLD, unsigned, '-o', join(dir, 'never3.bin'), '--pubkey', `${ed}.pub`)).err).toMatch(/^error: the package is not signed/);
    expect((await run('verify', unsigned, '--pubkey', `${ed}`)).err).toMatch(/^error: .*ed: not a PEM public key/);
  });

  it('sign signs an unsigned package offline (and re-signs it with another key)', async () => {
    const rsa = join(dir, 'rsa');
    await run('keygen', '-o', rsa, '--type', 'rsa-2048');
    const unsigned = join(dir, 'to-sign.otad');
    await run('diff', OLD, NEW, '-o', unsigned, '--mode', 'ab');
    const signed = join(dir, 'offline.otad');
    const s = await run('sign', unsigned, '--key', rsa, '-o', signed, '--json');
    expect(JSON.parse(s.out)).toMatchObject({ output: signed, algorithm: 'rsa2048', signatureBytes: 256 });
    expect((await run('verify', signed, '--pubkey', `${rsa}.pub`, '--old', OLD)).code).toBe(0);
    // In place by default.
    expect((await run('sign', unsigned, '--key', rsa)).code).toBe(0);
    expect(Buffer.compare(readFileSync(unsigned), readFileSync(signed))).toBe(0);
    const notKey = await run('sign', unsigned, '--key', `${rsa}.pub`);
    expect(notKey.err).toMatch(/^error: .*not a usable PEM private key/);
  });

  it('pack makes a signed OTA_RAW package that a device restores and verifies', async () => {
    const ed = join(dir, 'raw-ed');
    await run('keygen', '-o', ed);
    const raw = join(dir, 'full.otad');
    const p = await run('pack', NEW, '-o', raw, '--sign', ed, '--fw-version', '3.0.5', '--json');
    expect(JSON.parse(p.out)).toMatchObject({ mode: 'raw', newBytes: 413556, signature: 'ed25519', firmwareVersion: '3.0.5' });
    expect(JSON.parse((await run('info', raw, '--json')).out)).toMatchObject({ mode: 'raw', compression: 'stored', oldSize: 0 });
    const dev = join(dir, 'raw-dev');
    await run('flash', 'init', dev, '--image', OLD, '--ab');
    expect((await run('flash', 'stage', dev, raw, '--raw')).code).toBe(0);
    const img = join(dir, 'raw-booted.bin');
    expect(JSON.parse((await run('restore', dev, '--json', '--pubkey', `${ed}.pub`, '-o', img)).out)).toEqual({ kind: 'trial', slot: 'B', attempt: 1 });
    expect(Buffer.compare(readFileSync(img), readFileSync(NEW))).toBe(0);
  });

  it('the bootloader (restore --pubkey) refuses an unsigned package and keeps the old image', async () => {
    const ed = join(dir, 'boot-ed');
    await run('keygen', '-o', ed);
    const patch = join(dir, 'boot-unsigned.otad');
    await run('diff', OLD, NEW, '-o', patch);
    const dev = join(dir, 'boot-dev');
    await run('flash', 'init', dev, '--image', OLD);
    await run('flash', 'stage', dev, patch);
    const img = join(dir, 'boot-refused.bin');
    const r = await run('restore', dev, '--json', '--pubkey', `${ed}.pub`, '-o', img);
    expect(JSON.parse(r.out)).toMatchObject({ kind: 'old', slot: 'A', reason: 'signature' });
    expect(Buffer.compare(readFileSync(img).subarray(0, 413444), readFileSync(OLD))).toBe(0);
  });
});

describe('Intel HEX input', () => {
  const hex = (name: string) => microbitHex('v1b', name);
  it('diff and pack take .hex files and say which address range they took', async () => {
    const patch = join(dir, 'hex.otad');
    const d = await run('diff', hex('7.0.6'), hex('8.1.32'), '-o', patch, '--json');
    expect(d.code).toBe(0);
    const j = JSON.parse(d.out);
    expect(j).toMatchObject({ oldBytes: 261152, newBytes: 261152, oldHex: { base: 0, start: 0, end: 261152 }, newHex: { base: 0, start: 0, end: 261152 } });
    expect(j.newHex.leftOut).toHaveLength(1);
    const out = join(dir, 'hex-new.bin');
    expect((await run('apply', microbitImage('v1b', '7.0.6'), patch, '-o', out)).code).toBe(0);
    expect(Buffer.compare(readFileSync(out), readFileSync(microbitImage('v1b', '8.1.32')))).toBe(0);
    const human = await run('diff', hex('7.0.6'), hex('8.1.32'), '-o', patch);
    expect(human.out).toMatch(/^OLD .*v1b-7\.0\.6\.hex: Intel HEX, took 0x00000000-0x0003fc1f \(261,152 bytes\).*; left out 0x1000/m);
    const p = await run('pack', hex('8.1.32'), '-o', join(dir, 'hex-raw.otad'), '--json');
    expect(JSON.parse(p.out)).toMatchObject({ mode: 'raw', newBytes: 261152, hex: { base: 0, end: 261152 } });
  });

  it('a damaged .hex is one error line and no output file', async () => {
    const bad = join(dir, 'bad.hex');
    writeFileSync(bad, readFileSync(hex('8.1.32'), 'latin1').slice(0, 5000), 'latin1');
    const patch = join(dir, 'bad-hex.otad');
    const r = await run('diff', bad, hex('8.1.32'), '-o', patch);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: OLD .*bad\.hex is not a valid Intel HEX file: /);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(existsSync(patch)).toBe(false);
  });
});

describe('a closed stdout', () => {
  const bin = new URL('../bin/otadiff.js', import.meta.url).pathname;
  // The reader closes the pipe before otadiff writes (`exec 0<&-`) or after one line (`head -1`): either way
  // otadiff ends quietly with status 0, no EPIPE stack trace.
  const pipe = (args: string, reader: string) => {
    const r = spawnSync('bash', ['-c', `node "${bin}" ${args} 2>"$0/stderr" | ${reader}; echo "status \${PIPESTATUS[0]}" >"$0/status"`, dir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    return { err: readFileSync(join(dir, 'stderr'), 'utf8'), status: readFileSync(join(dir, 'status'), 'utf8').trim() };
  };
  it.each(['--help', 'serve --help', 'diff --help'])('otadiff %s | head -1, and into a pipe closed at once', (args) => {
    for (const reader of ['head -1 >/dev/null', '(exec 0<&-; sleep 1)']) expect(pipe(args, reader)).toEqual({ err: '', status: 'status 0' });
  });
  it('a long listing (info of a 101-chunk package) into head -1', async () => {
    const patch = join(dir, 'many.otad');
    await run('diff', `${CORPUS}at-v3.0.4.bin`, `${CORPUS}at-v3.0.5.bin`, '-o', patch, '--split-size', '4K');
    expect(pipe(`info "${patch}"`, 'head -1 >/dev/null')).toEqual({ err: '', status: 'status 0' });
    expect(pipe(`info "${patch}"`, '(exec 0<&-; sleep 1)')).toEqual({ err: '', status: 'status 0' });
  });
});

describe('transform options', () => {
  it('--base overrides the load address an input names; without either the generator finds it', async () => {
    const { transformOptions, parseAddress } = await import('../src/transform-args.js');
    expect(transformOptions({}, 0x0800_0000)).toEqual({ transform: 'auto', base: 0x0800_0000 });
    expect(transformOptions({ base: '0x1000' }, 0x0800_0000)).toEqual({ transform: 'auto', base: 0x1000 });
    expect(transformOptions({ transform: 'none' })).toEqual({ transform: 'none', base: undefined });
    expect([parseAddress('0x08000000'), parseAddress('0XFFFFFFFF'), parseAddress('4096')]).toEqual([0x0800_0000, 0xffff_ffff, 4096]);
    for (const bad of ['', '0x', '-1', '0x123456789', '4294967296', '1e3', '0x1g']) expect(() => parseAddress(bad)).toThrow(/invalid address/);
  });
});
