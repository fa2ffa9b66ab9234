// The whole story in one process, on loopback: a cloud (embedded broker + file server
// with signed URLs), a device running OLD from a flash directory, a job for NEW. A
// package signing key pair is made on the spot: the cloud signs the diff (with NEW's
// version and security counter in the signed header), the device and its bootloader
// trust only the public key. The update travels as a diff; the first download
// connection is cut part-way and resumed with Range; the power is cut half-way through
// the restore and the next boot resumes it. At the end the device's slot is compared
// with NEW byte for byte, and its recorded security counter has risen to NEW's.

import { createHash, generateKeyPairSync } from 'node:crypto';
import { generateKeyPair, loadPrivateKey } from '@otadiff/diff-gen';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boot, FaultyFlash, MemoryFlash, openPartition, readBytes, type Slot } from '@otadiff/patch-apply';
import { startOtaCloud, type OtaCloud } from './cloud/cloud.js';
import { CloudStore, type PackageMode } from './cloud/cloud-store.js';
import { createDeviceFlashDir, createFlashDirPort, type FlashDirPort } from './device/flash-port.js';
import { createOtaService } from './device/ota-service.js';
import type { OtaService, OtaServiceEvent } from './device/service-types.js';
import type { RequestLogEntry } from './cloud/http-server.js';
import { HEAD_FETCH_BYTES } from './device/package-head.js';
import { resolveTrustedKeys } from './device/trusted-keys.js';

/** Restore modes of a demo device (a diff update; full images are not the story). */
export type DemoMode = Exclude<PackageMode, 'full'>;

export interface DemoOptions {
  oldImage: Uint8Array;
  newImage: Uint8Array;
  oldVersion?: string;
  newVersion?: string;
  /** Restore mode of the device and its packages (default inplace). */
  mode?: DemoMode;
  splitSize?: number;
  /** Cut the first download connection part-way (default true). */
  dropDownload?: boolean;
  /** Cut the power half-way through the restore (default true). */
  powerCut?: boolean;
  /** Working directory (default: a temp dir, removed at the end unless keep). */
  workDir?: string;
  keep?: boolean;
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  /** Human-readable progress lines. */
  log?: (line: string) => void;
}

export interface DemoSummary {
  ok: boolean;
  failures: string[];
  mode: DemoMode;
  /** Algorithm of the package signature the device verified (null: it verified none). */
  signature: string | null;
  /** NEW's security counter, in the signed header. */
  securityCounter: number;
  /** The device's recorded security counter at the end (NEW's once it confirmed it). */
  recordedCounter: number | null;
  oldVersion: string;
  newVersion: string;
  oldBytes: number;
  newBytes: number;
  isDiff: boolean;
  packageBytes: number;
  /** HTTP body bytes the file server sent for this update. */
  bytesSent: number;
  /** What a full-image update would have sent. */
  fullImageBytes: number;
  /** bytesSent / fullImageBytes. */
  sentRatio: number;
  requests: Array<Pick<RequestLogEntry, 'range' | 'status' | 'bodyBytes'>>;
  droppedConnections: number;
  powerCut: { op: number; restoreOps: number; kind: string } | null;
  boots: string[];
  finalSlot: Slot | null;
  finalVersion: string | null;
  imageMatches: boolean;
  newSha256: string;
  workDir: string | null;
  seconds: number;
}

const PK = 'a1OtaDemo';
const DN = 'demo-device-01';
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const kib = (n: number): string => (n < 10 * 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

/** Body bytes a request should have carried (to spot the cut ones). */
function expectedBody(r: RequestLogEntry, size: number): number {
  const m = r.range === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(r.range);
  if (r.status !== 206 || m === null) return size;
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return end - start + 1;
}

export async function runOtaDemo(o: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  const log = o.log ?? (() => {});
  const say = (who: string, text: string): void => log(`${who.padEnd(6)} ${text}`);
  const mode = o.mode ?? 'inplace';
  const oldVersion = o.oldVersion ?? '1.0.0';
  const newVersion = o.newVersion ?? '2.0.0';
  const splitSize = o.splitSize ?? 64 * 1024;
  const dropDownload = o.dropDownload ?? true;
  const powerCut = o.powerCut ?? true;
  if (o.workDir !== undefined && existsSync(o.workDir) && readdirSync(o.workDir).length > 0) {
    throw new Error(`the demo's work directory ${o.workDir} is not empty`);
  }
  const workDir = o.workDir ?? (await mkdtemp(join(tmpdir(), 'otadiff-demo-')));
  const failures: string[] = [];
  const boots: string[] = [];
  let cloud: OtaCloud | undefined;
  let openStore: CloudStore | undefined;
  let port: FlashDirPort | undefined;
  let svc: OtaService | undefined;
  let faulty: FaultyFlash | undefined;
  let cut: DemoSummary['powerCut'] = null;
  let packageBytes = 0;
  let isDiff = false;
  let finalSlot: Slot | null = null;
  let finalVersion: string | null = null;
  let imageMatches = false;
  let requests: RequestLogEntry[] = [];
  let signature: string | null = null;
  let recordedCounter: number | null = null;
  const securityCounter = 1;

  try {
    // ---- a package signing key pair, made for the demo (Ed25519: quick to make, 64-byte signatures)
    const keys = generateKeyPair('ed25519');
    const signingKey = loadPrivateKey(keys.privateKey);
    const trustedKeys = resolveTrustedKeys([keys.publicKey]);
    say('keys', 'package signing key pair made for this run (Ed25519): the cloud signs, the device and its bootloader trust only the public key');

    // ---- the cloud's data: product, device, both firmware versions, the diff
    const store = (openStore = await CloudStore.open(join(workDir, 'cloud'), { signingKey, durability: 'fast' }));
    await store.addProduct(PK, { mode, splitSize });
    const dev = await store.addDevice(PK, DN);
    await store.addFirmware(PK, oldVersion, o.oldImage, { securityCounter: 0 });
    await store.addFirmware(PK, newVersion, o.newImage, { securityCounter });
    const t0 = performance.now();
    const pkg = (await store.diffPackage(PK, oldVersion, newVersion))!;
    packageBytes = pkg.size;
    say('cloud', `firmware ${oldVersion} (${kib(o.oldImage.length)}) and ${newVersion} (${kib(o.newImage.length)}); diff ${oldVersion} -> ${newVersion}: ${kib(pkg.size)}, ${mode}, ${pkg.header!.chunks.length} chunks of ${kib(pkg.header!.splitSize)} (${((performance.now() - t0) / 1000).toFixed(2)} s)`);
    say('cloud', `signed header: version ${pkg.header!.firmwareVersion}, security counter ${pkg.header!.securityCounter}, Ed25519 signature (${pkg.header!.signatureLength} B)`);

    // The first request is the signed head; the next one (the download) is cut half-way.
    const dropAfter = Math.max(HEAD_FETCH_BYTES, Math.floor((pkg.size - HEAD_FETCH_BYTES) / 2));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    cloud = await startOtaCloud({
      dataDir: join(workDir, 'cloud'),
      store,
      pollMs: 0,
      signingKey: privateKey,
      packageSigningKey: signingKey,
      fileServer: dropDownload ? { dropAfterBytes: dropAfter, dropTimes: 2 } : {},
    });
    say('cloud', `MQTT broker ${cloud.brokerUrl} (embedded aedes, Aliyun sign-in), files ${cloud.files.url} (signed URLs, RSA digestsign)`);
    if (dropDownload) say('cloud', `fault armed: the download connection is cut after ${kib(dropAfter)}`);

    // ---- the device: OLD in slot A of a flash directory, behind a power-cut switch
    const devDir = join(workDir, 'device');
    createDeviceFlashDir(devDir, { image: o.oldImage, version: oldVersion, ab: mode === 'ab', splitSize });
    port = createFlashDirPort(devDir, { trustedKeys, wrapFlash: (f) => (faulty = new FaultyFlash(f, { tear: 'random', seed: 7 })) });
    const p = port;
    const f = faulty!;
    let armed = powerCut;
    const onEvent = (e: OtaServiceEvent): void => {
      switch (e.type) {
        case 'boot':
          boots.push(e.outcome.kind === 'halt' ? 'halt' : `${e.outcome.kind}:${e.outcome.slot}`);
          if (e.outcome.kind === 'normal') say('boot', `slot ${e.outcome.slot}, no update pending`);
          else if (e.outcome.kind === 'trial') say('boot', `restore complete; new image in slot ${e.outcome.slot}, trial boot ${e.outcome.attempt}`);
          else say('boot', `${e.outcome.kind}: ${'detail' in e.outcome ? e.outcome.detail : ''}`);
          break;
        case 'inform':
          say('device', `running ${e.version}; informed the cloud`);
          break;
        case 'notice':
          say('device', `upgrade notice: ${e.info.version}, ${e.info.isDiff ? 'diff' : 'full image'}, ${kib(e.info.size)}`);
          break;
        case 'header':
          say(
            'device',
            `signed head (${e.fetched} B by Range): ${e.signature ?? 'no'} signature verified, version ${e.header.firmwareVersion}, security counter ${e.header.securityCounter}; made for our image (old SHA-256 ${Buffer.from(e.header.oldSha256).toString('hex').slice(0, 12)}…), ${e.header.mode}, fits`,
          );
          break;
        case 'download-start':
          say('device', `downloading into the OTA partition from byte ${e.offset}${e.resumed ? ' (resumed from checkpoint)' : ''}`);
          break;
        case 'downloaded':
          say('device', `download complete: ${e.result.attempts} connection(s), resumed with Range after a drop: ${e.result.attempts > 1 ? 'yes' : 'no'}`);
          break;
        case 'verified':
          signature = e.signature;
          say('device', `verified in flash: SHA-256 ${e.sha256.slice(0, 12)}…${e.digestsign ? ' + RSA digestsign' : ''}${e.signature ? `, ${e.signature} signature + payload SHA-256 again on the flash bytes` : ''}`);
          break;
        case 'set-boot':
          say('device', `set_boot: ${e.firmwareType}, target slot ${e.slot}; rebooting into the bootloader`);
          break;
        case 'rebooting':
          if (armed) {
            armed = false;
            // Count the restore's flash operations on a copy, then cut the real one half-way.
            const copy = new FaultyFlash(new MemoryFlash(p.flash.geometry, { contents: readBytes(p.flash, 0, p.flash.geometry.size) }));
            boot({ flash: copy, layout: p.layout, trustedKeys });
            const at = Math.floor(copy.ops / 2);
            cut = { op: at, restoreOps: copy.ops, kind: '' };
            f.scheduleCut(at);
          }
          break;
        case 'powercut':
          boots.push('powercut');
          if (cut !== null && f.lastCut !== null) cut.kind = f.lastCut.kind;
          say('power', `CUT during the restore: flash ${f.lastCut?.kind ?? 'op'} #${cut?.op ?? '?'} of ${cut?.restoreOps ?? '?'} (${f.lastCut ? `at 0x${f.lastCut.offset.toString(16)}` : ''})`);
          break;
        case 'confirmed':
          say('device', `slot ${e.slot} confirmed (${e.version}): no rollback; anti-rollback counter raised to the package's`);
          break;
        case 'failed':
          say('device', `FAILED (${e.step}): ${e.error.message}`);
          break;
        default:
      }
    };
    svc = createOtaService({
      productKey: PK,
      deviceName: DN,
      deviceSecret: dev.deviceSecret,
      broker: cloud.brokerUrl,
      port,
      publicKey,
      trustedKeys,
      reconnect: false,
      download: { backoff: { initialMs: 100, maxMs: 1000 } },
      onEvent,
    });
    say('device', `${DN}: ${oldVersion} in slot A (${mode === 'ab' ? 'A/B slots' : 'single slot, in-place restore'}), flash ${devDir}`);

    // ---- run
    const deadline = o.timeoutMs ?? 60_000;
    const c = cloud;
    const s = svc;
    const outcome = new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(`no result within ${deadline} ms`), deadline);
      timer.unref();
      const done = (r: string | null): void => {
        clearTimeout(timer);
        offCloud();
        offDevice();
        resolve(r);
      };
      const offCloud = c.on((e) => {
        if (e.type === 'succeeded') done(null);
        if (e.type === 'failed') done(`the job failed: ${e.desc}`);
      });
      const offDevice = s.on((e) => {
        if (e.type === 'error') done(e.error.message);
        if (e.type === 'powercut') {
          // Power comes back a moment later: the bootloader resumes the restore.
          setTimeout(() => {
            say('power', 'back on');
            f.reboot();
            s.start().catch((err: unknown) => done((err as Error).message));
          }, 20);
        }
      });
    });
    await svc.start();
    say('cloud', `job: ${PK} -> ${newVersion} for all devices`);
    await cloud.createJob({ productKey: PK, version: newVersion });
    const problem = await outcome;
    if (problem !== null) failures.push(problem);

    // ---- check
    const st = (await cloud.status()).devices.find((d) => d.deviceName === DN);
    isDiff = st?.job?.isDiff === true;
    finalVersion = st?.version ?? null;
    const running = svc.running;
    finalSlot = running?.slot ?? null;
    if (running !== undefined) {
      const slotView = openPartition(p.flash, p.layout, running.slot === 'A' ? 'appA' : 'appB');
      const image = readBytes(slotView, 0, o.newImage.length);
      imageMatches = Buffer.compare(image, o.newImage) === 0;
      recordedCounter = await p.securityCounter();
    }
    requests = [...cloud.files.requests];
  } catch (e) {
    failures.push((e as Error).message);
  } finally {
    await svc?.stop().catch(() => {});
    await port?.close().catch(() => {});
    await cloud?.close().catch(() => {});
    await openStore?.close().catch(() => {});
    if (!o.keep && o.workDir === undefined) await rm(workDir, { recursive: true, force: true });
  }

  const bytesSent = requests.reduce((n, r) => n + r.bodyBytes, 0);
  const droppedConnections = requests.filter((r) => r.bodyBytes < expectedBody(r, packageBytes)).length;
  if (!imageMatches) failures.push(`the device's slot does not hold ${newVersion}`);
  if (finalVersion !== newVersion) failures.push(`the device reports ${String(finalVersion)}, not ${newVersion}`);
  if (!isDiff) failures.push('the update did not travel as a diff');
  if (dropDownload && droppedConnections === 0) failures.push('no download connection was cut');
  if (powerCut && cut === null) failures.push('the power was never cut');
  if (signature === null) failures.push('the device verified no package signature');
  if (recordedCounter !== null && recordedCounter !== securityCounter) failures.push(`the device recorded security counter ${recordedCounter}, not ${securityCounter}`);
  const summary: DemoSummary = {
    ok: failures.length === 0,
    failures,
    mode,
    signature,
    securityCounter,
    recordedCounter,
    oldVersion,
    newVersion,
    oldBytes: o.oldImage.length,
    newBytes: o.newImage.length,
    isDiff,
    packageBytes,
    bytesSent,
    fullImageBytes: o.newImage.length,
    sentRatio: o.newImage.length === 0 ? 0 : bytesSent / o.newImage.length,
    requests: requests.map((r) => ({ ...(r.range === undefined ? {} : { range: r.range }), status: r.status, bodyBytes: r.bodyBytes })),
    droppedConnections,
    powerCut: cut,
    boots,
    finalSlot,
    finalVersion,
    imageMatches,
    newSha256: sha256(o.newImage),
    workDir: o.keep || o.workDir !== undefined ? workDir : null,
    seconds: (performance.now() - started) / 1000,
  };
  if (imageMatches) say('check', `slot ${finalSlot} == NEW byte for byte (${o.newImage.length} bytes, SHA-256 ${summary.newSha256.slice(0, 16)}…)`);
  if (recordedCounter !== null) say('check', `recorded security counter ${recordedCounter}: from now on the device refuses packages below it`);
  say('sent', `${bytesSent} bytes over HTTP (${requests.length} requests, ${droppedConnections} cut) vs ${o.newImage.length} for the full image: ${(summary.sentRatio * 100).toFixed(2)}%`);
  return summary;
}
