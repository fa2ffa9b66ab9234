// The device side of the OTA service (the counterpart of AliOS Things' ota_service_init):
// power on through the bootloader, confirm a new image, report the version, and for
// each upgrade notice: refuse what is not newer, fetch the package's signed header and
// signature block first and refuse, before anything is downloaded or erased, a package
// that is unsigned or wrongly signed (with trustedKeys), below the device's recorded
// security counter (anti-rollback), not what the notice announces (version, size, diff
// or raw), or a diff made for another image; download straight into the flash port with
// a persisted checkpoint; verify the package as it sits in flash (notice digest + RSA
// digestsign, then the signed header and the payload SHA-256 again on the flash bytes);
// set_boot, and reboot into the restore. AliOS compares the notice's version strings and
// trusts the notice; here the signed header is authoritative.
//
// Power cuts: any PowerCutError from the port (a FaultyFlash in tests and the demo)
// stops the service on the spot, like a CPU losing power: nothing more is written or
// sent. The owner powers the device back on with start(); the bootloader resumes a
// restore, and the cloud's next notice resumes a download from its checkpoint.
// The phases live beside it: service-config (options + device config), power-on (boot, adopt,
// confirm), notice-link (MQTT or CoAP), head-check (the signed head before anything is written),
// flash-digest (the image and package as the flash holds them), refusal (errors -> steps).

import type { Slot, TrustedKey } from '@otadiff/patch-apply';
import { FIXED_HEADER_BYTES, recordsOffset } from '@otadiff/patch-apply';
import type { DownloadCheckpoint } from './checkpoint.js';
import { coapDownload } from './coap-download.js';
import type { DeviceState } from './device-state.js';
import { download } from './downloader.js';
import { checkHead, checkFlashedHead, fetchHead, headLength, type HeadCheck } from './head-check.js';
import { checkOldImage, hashPackage } from './flash-digest.js';
import type { OtaPort } from './flash-port.js';
import { createHasher, resumeHasher } from './hashing.js';
import { allowedProtocols, openNoticeLink, type DeviceLink } from './notice-link.js';
import { bootAndConfirm, loadState, saveState } from './power-on.js';
import { isPowerCut, Refusal, restartsDownload, stepFor } from './refusal.js';
import { resolveServiceConfig } from './service-config.js';
import { OtaServiceError, type DownloadProtocol, type OtaService, type OtaServiceEvent, type OtaServiceOptions, type OtaServiceStatus } from './service-types.js';
import { EventHub } from '../protocol/event-hub.js';
import { OtaStep, type CancelNotice, type UpgradeInfo } from '../protocol/messages.js';
import { hashAlgorithmOf, verifyPackage } from '../protocol/signature.js';
import { compareVersions } from '../protocol/version.js';

/** Why an update stopped: the cloud cancelled it (its rollout). */
class UpdateCancelled extends Error {
  override name = 'UpdateCancelled';
}

/** A stored checkpoint whose hash state loads (a resume from it can work). */
async function resumable(cp: DownloadCheckpoint): Promise<boolean> {
  try {
    await resumeHasher(cp.algorithm, cp.hashState);
    return true;
  } catch {
    return false;
  }
}

class Service implements OtaService {
  readonly productKey: string;
  readonly deviceName: string;
  readonly broker: string;
  readonly port: OtaPort;
  status: OtaServiceStatus = 'off';
  running: { slot: Slot; version: string } | undefined;
  updating = false;

  private readonly deviceSecret: string;
  private readonly hub = new EventHub<OtaServiceEvent>();
  private readonly ownsPort: boolean;
  private readonly protocol: DownloadProtocol;
  /** Keys a package must be signed by; undefined: signatures are not judged. */
  private readonly trust: readonly TrustedKey[] | undefined;
  private client: DeviceLink | undefined;
  /** Outcomes of the last boot (a failed update, a rollback) the cloud has not heard yet. */
  private unreported: Array<[number, string]> = [];
  private readonly transport: 'mqtt' | 'coap';
  /** Bumped at every power transition; async work from an older epoch stops quietly. */
  private epoch = 0;
  private work: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** The notice being worked on, and whether it has been handed to the bootloader (no cancel then). */
  private current: UpgradeInfo | undefined;
  private handingOver = false;

  constructor(private readonly opts: OtaServiceOptions) {
    const c = resolveServiceConfig(opts);
    this.productKey = c.productKey;
    this.deviceName = c.deviceName;
    this.deviceSecret = c.deviceSecret;
    this.broker = c.broker;
    this.transport = c.transport;
    this.protocol = c.protocol;
    this.trust = c.trust;
    this.port = c.port;
    this.ownsPort = c.ownsPort;
    if (opts.onEvent) this.hub.on(opts.onEvent);
  }

  on(listener: (e: OtaServiceEvent) => void): () => void {
    return this.hub.on(listener);
  }

  waitFor(pred: (e: OtaServiceEvent) => boolean, timeoutMs?: number): Promise<OtaServiceEvent> {
    return this.hub.waitFor(pred, timeoutMs, 'service event');
  }

  private emit(e: OtaServiceEvent): void {
    this.hub.emit(e);
  }

  // ------------------------------------------------------------------ power

  async start(): Promise<void> {
    if (this.status !== 'off') throw new OtaServiceError('STATE', `the service is ${this.status}`);
    this.status = 'booting';
    const epoch = ++this.epoch;
    try {
      await this.powerOn(epoch);
    } catch (e) {
      if (isPowerCut(e)) return this.die(e as Error);
      this.status = 'off';
      this.running = undefined;
      await this.disconnect();
      throw e;
    }
  }

  async stop(): Promise<void> {
    ++this.epoch;
    this.abort?.abort(new Error('service stopped'));
    clearTimeout(this.reconnectTimer);
    await this.work?.catch(() => {});
    await this.disconnect();
    this.status = 'off';
    this.running = undefined;
    this.emit({ type: 'stopped' });
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.ownsPort) await this.port.close();
  }

  /** The power went: stop everything on the spot, write nothing more. */
  private async die(error: Error): Promise<void> {
    ++this.epoch;
    this.status = 'off';
    this.running = undefined;
    this.abort?.abort(error);
    clearTimeout(this.reconnectTimer);
    const c = this.client;
    this.client = undefined;
    if (c) await c.kill().catch(() => {});
    this.emit({ type: 'powercut', error });
  }

  private async disconnect(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.close().catch(() => c.kill().catch(() => {}));
  }

  private loadState(): Promise<DeviceState> {
    return loadState(this.port);
  }

  private saveState(s: DeviceState): Promise<void> {
    return saveState(this.port, s);
  }

  /**
   * Boot (possibly through a restore), adopt and confirm a new image, then go online. After an update's
   * reboot (`persist`) a cloud that cannot be reached is tried again with backoff, the outcome reported
   * when it answers: a device whose cloud restarts while it reboots must not stay silent for ever.
   */
  private async powerOn(epoch: number, persist = false): Promise<void> {
    const { reports } = await bootAndConfirm(this.port, this.opts, (e) => this.emit(e), (r) => (this.running = r));
    if (epoch !== this.epoch) return;
    this.unreported = reports;
    try {
      await this.connect(epoch);
    } catch (e) {
      if (!persist || this.opts.reconnect === false || !(e instanceof OtaServiceError) || e.code !== 'CONNECT') throw e;
      this.status = 'running';
      this.emit({ type: 'disconnected' });
      this.scheduleReconnect(epoch, 1);
      return;
    }
    if (epoch !== this.epoch) return;
    await this.greet();
    this.status = 'running';
  }

  /** What a device says when its link comes up: the outcomes not reported yet, then its version. */
  private async greet(): Promise<void> {
    // Failures first, so the cloud closes the job before it sees the old version again.
    const reports = this.unreported;
    this.unreported = [];
    for (const [step, desc] of reports) await this.report(step, desc);
    await this.inform();
  }

  // ------------------------------------------------------------------ notice link

  private async connect(epoch: number): Promise<void> {
    const identity = { productKey: this.productKey, deviceName: this.deviceName, deviceSecret: this.deviceSecret };
    const upgradeParse = { allowedProtocols: allowedProtocols(this.protocol), device: { productKey: this.productKey, deviceName: this.deviceName } };
    const onInvalid = (_where: string, error: Error): void => this.emit({ type: 'invalid-notice', error });
    const { link, onDrop } = await openNoticeLink(this.transport, this.broker, identity, this.opts, upgradeParse, onInvalid);
    if (epoch !== this.epoch) {
      await link.close().catch(() => {});
      return;
    }
    this.client = link;
    link.onUpgrade((info) => this.onNotice(info, epoch));
    link.onCancel((c) => this.onCancel(c, epoch));
    // CoAP has no connection to lose: the link keeps polling until closed.
    onDrop?.(() => {
      if (this.client !== link || epoch !== this.epoch) return;
      this.client = undefined;
      this.emit({ type: 'disconnected' });
      if (this.opts.reconnect !== false) this.scheduleReconnect(epoch, 1);
    });
    this.emit({ type: 'connected', broker: this.broker });
  }

  private scheduleReconnect(epoch: number, attempt: number): void {
    const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt - 1, 6));
    this.reconnectTimer = setTimeout(() => {
      if (epoch !== this.epoch) return;
      this.connect(epoch)
        .then(() => (epoch === this.epoch ? this.greet() : undefined))
        .catch(() => {
          if (epoch === this.epoch) this.scheduleReconnect(epoch, attempt + 1);
        });
    }, delay);
  }

  private async inform(): Promise<void> {
    const running = this.running;
    if (running === undefined || this.client === undefined) return;
    await this.client.reportVersion(running.version, this.opts.module);
    this.emit({ type: 'inform', version: running.version });
  }

  /** Progress report; a broker hiccup must not fail the update. */
  private async report(step: number, desc: string): Promise<void> {
    this.emit({ type: 'progress', step, desc });
    try {
      await this.client?.reportProgress(step, desc.slice(0, 1000), this.opts.module);
    } catch {
      /* offline: the cloud learns the outcome from the next inform */
    }
  }

  // ------------------------------------------------------------------ upgrade

  private onNotice(info: UpgradeInfo, epoch: number): void {
    if (epoch !== this.epoch) return;
    this.emit({ type: 'notice', info });
    if (this.updating) {
      this.emit({ type: 'ignored', info, reason: 'an update is already in progress' });
      return;
    }
    this.updating = true;
    const run = async (): Promise<void> => {
      let reboot = false;
      try {
        reboot = await this.upgrade(info, epoch);
      } finally {
        this.updating = false;
      }
      if (reboot) await this.reboot(epoch);
    };
    this.work = run().catch((e: unknown) => {
      if (isPowerCut(e)) return this.die(e as Error);
      if (epoch === this.epoch) this.emit({ type: 'error', error: e as Error });
    });
  }

  /**
   * The cloud cancelled an update: a download of it in progress stops (its checkpoint stays, should
   * the same package come again); once it is handed to the bootloader the restore must finish.
   */
  private onCancel(c: CancelNotice, epoch: number): void {
    if (epoch !== this.epoch) return;
    const cur = this.current;
    if (!this.updating || cur === undefined || compareVersions(cur.version, c.version) !== 0) {
      this.emit({ type: 'cancel-ignored', version: c.version, reason: cur === undefined ? 'no update in progress' : `the update in progress is ${cur.version}` });
      return;
    }
    if (this.handingOver) {
      this.emit({ type: 'cancel-ignored', version: c.version, reason: 'the update is handed to the bootloader: its restore finishes' });
      return;
    }
    this.abort?.abort(new UpdateCancelled(`the cloud cancelled the update to ${c.version}`));
  }

  /** Handles one notice; true when set_boot is done and the device must reboot. */
  private async upgrade(info: UpgradeInfo, epoch: number): Promise<boolean> {
    const port = this.port;
    const running = this.running;
    if (running === undefined) return false;
    const abort = (this.abort = new AbortController());
    const signal = abort.signal;
    this.current = info;
    this.handingOver = false;
    const hash = hashAlgorithmOf(info.signMethod);
    const dl = this.opts.download ?? {};
    let state: DeviceState | undefined;
    try {
      // A notice that names a module (Aliyun's default one is "default") must name ours.
      const module = this.opts.module ?? 'default';
      if (info.module !== undefined && info.module !== module) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: the notice is for module ${info.module}, this device updates ${module}`);
      }
      // Not newer: refused on the notice alone, unless the service trusts keys; then the owner's
      // signed package may allow the downgrade (judged on its signed head, before the download).
      const downgrade = compareVersions(info.version, running.version) <= 0;
      if (downgrade && this.trust === undefined) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: version ${info.version} is not newer than the running ${running.version}`);
      }
      if (info.size > port.info.otaSize) {
        throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: a ${info.size}-byte package does not fit the ${port.info.otaSize}-byte OTA partition`);
      }
      if (info.size < FIXED_HEADER_BYTES) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: a ${info.size}-byte file cannot be an otadiff package`);
      const check: HeadCheck = { info, running: running.slot, runningVersion: running.version, downgrade, recorded: await port.securityCounter() };
      state = await this.loadState();
      const rec = state.download;
      const same =
        rec !== undefined && rec.version === info.version && rec.size === info.size && rec.sign === info.sign && rec.signMethod === info.signMethod && rec.isDiff === info.isDiff;
      let cp: DownloadCheckpoint | undefined = same ? rec.checkpoint : undefined;
      if (cp !== undefined && !(await resumable(cp))) cp = undefined;

      // The signed head (header + signature block) first: every check that can refuse the package
      // runs on it before anything is downloaded or erased.
      let headBytes: Uint8Array | undefined;
      let head: Uint8Array | undefined; // fetched now: the start of the download
      let etag: string | undefined;
      let fetched: { bytes: number; rangeHonoured: boolean } | undefined;
      if (cp !== undefined && cp.offset >= FIXED_HEADER_BYTES) {
        const need = headLength(await port.read(0, FIXED_HEADER_BYTES), info);
        if (cp.offset >= need) headBytes = await port.read(0, need);
        else cp = undefined; // the checkpoint stops inside the head: start over
      }
      if (headBytes === undefined) {
        const h = await fetchHead(info, hash, signal, this.opts.download);
        head = h.bytes;
        headBytes = h.bytes.subarray(0, h.need);
        etag = h.etag;
        fetched = { bytes: h.bytes.length, rangeHonoured: h.rangeHonoured };
        cp = undefined;
      }
      const checked = checkHead(headBytes, check, this.trust, port.info);
      const header = checked.header;
      if (header.mode !== 'raw') await checkOldImage(port, header, running.slot);
      if (fetched !== undefined) this.emit({ type: 'header', header, fetched: fetched.bytes, rangeHonoured: fetched.rangeHonoured, signature: checked.signature });
      const target = checked.target;

      // Prepare the OTA partition (AliOS' init: 0 erases, a breakpoint resumes).
      if (cp === undefined) {
        await port.init(0);
        state.download = { version: info.version, size: info.size, signMethod: info.signMethod, sign: info.sign, isDiff: info.isDiff };
        if (head !== undefined) {
          // The head bytes already fetched are the start of the download.
          const bytes = head.subarray(0, Math.min(head.length, info.size));
          await port.write(0, bytes);
          const hasher = await createHasher(hash);
          hasher.update(bytes);
          cp = { algorithm: hash, offset: bytes.length, totalSize: info.size, expectedDigest: info.sign, hashState: hasher.save() };
          if (etag !== undefined) cp.etag = etag;
          if (cp.offset % Math.max(1, port.info.durableUnit ?? 1) === 0) state.download.checkpoint = cp;
        }
        await this.saveState(state);
      } else {
        await port.init(cp.offset);
      }
      this.emit({ type: 'download-start', offset: cp?.offset ?? 0, total: info.size, resumed: head === undefined && cp !== undefined });

      const stepPct = this.opts.progressStep ?? 10;
      let lastPct = -stepPct;
      const st = state;
      // NOR bytes cannot be programmed twice: if the downloader rewinds (the server's
      // representation changed and it starts over), clear the partition from there first.
      let written = cp?.offset ?? 0;
      const durableUnit = Math.max(1, port.info.durableUnit ?? 1);
      const sink = async (offset: number, bytes: Uint8Array): Promise<void> => {
        if (offset < written) await port.init(offset);
        await port.write(offset, bytes);
        written = offset + bytes.length;
      };
      const common = {
        sink,
        hash,
        expectedSize: info.size,
        expectedDigest: info.sign,
        state: cp,
        signal,
        retries: dl.retries,
        backoff: dl.backoff,
        sleep: dl.sleep,
        onCheckpoint: async (c: DownloadCheckpoint) => {
          // A breakpoint only where the port's bytes are durable (program-once flash holds a
          // partial last unit in RAM): after a power cut the download resumes from the one before.
          if (c.offset % durableUnit === 0) {
            st.download!.checkpoint = c;
            await this.saveState(st);
          }
          this.emit({ type: 'download', offset: c.offset, total: c.totalSize });
          const pct = Math.floor((c.offset * 100) / c.totalSize);
          if (pct >= lastPct + stepPct && pct < 100) {
            lastPct = pct;
            void this.report(pct, 'downloading');
          }
        },
      };
      const result = info.url.startsWith('coap:')
        ? await coapDownload({ ...common, url: info.url, blockSize: dl.coapBlockSize, ackTimeoutMs: dl.ackTimeoutMs })
        : await download({ ...common, url: info.url, timeoutMs: dl.timeoutMs, ca: dl.ca });
      this.emit({ type: 'downloaded', result });

      // Verify what the flash holds, not what the network delivered: the notice's digest (and
      // digestsign), then the signed head again and the payload against its signed SHA-256.
      const flashed = await checkFlashedHead(port, check, this.trust);
      const { digest, sha256, payloadSha256 } = await hashPackage(port, info.size, hash, recordsOffset(flashed.header));
      verifyPackage(info, digest, info.size, { publicKey: this.opts.publicKey, requireDigestSign: this.opts.requireDigestSign });
      if (!Buffer.from(payloadSha256).equals(Buffer.from(flashed.header.payloadSha256))) {
        throw new Refusal(OtaStep.VERIFY_FAILED, 'refused: the records in flash do not match the payload SHA-256 of the signed header', true);
      }
      this.emit({
        type: 'verified',
        sha256: Buffer.from(sha256).toString('hex'),
        digestsign: info.digestsign !== undefined && this.opts.publicKey !== undefined,
        signature: flashed.signature,
        securityCounter: flashed.header.securityCounter,
      });

      const firmwareType = flashed.header.mode === 'raw' ? 'raw' : 'diff';
      // The last moment a cancel stops the update: from here on the restore must happen.
      if (signal.aborted) throw signal.reason;
      this.handingOver = true;
      // Pending first: a power cut before set_boot completes just boots the old image.
      state.pending = { slot: target, version: info.version, size: flashed.header.newSize, firmwareType };
      await this.saveState(state);
      await port.setBoot({
        result: 'finish',
        firmwareType,
        splitSize: firmwareType === 'diff' ? flashed.header.splitSize : undefined,
        diffVersion: firmwareType === 'diff' ? flashed.header.diffVersion : undefined,
        rollback: this.opts.rollback ?? true,
        packageLength: info.size,
        packageSha256: sha256,
      });
      delete state.download;
      await this.saveState(state);
      this.emit({ type: 'set-boot', firmwareType, slot: target, version: info.version });
      await this.report(100, `verified; rebooting into the ${firmwareType === 'diff' ? 'restore' : 'image copy'}`);
      return true;
    } catch (e) {
      if (isPowerCut(e)) throw e;
      if (epoch !== this.epoch) return false; // stopped meanwhile: the checkpoint stays for later
      if (signal.aborted && signal.reason instanceof UpdateCancelled) {
        // The cloud knows (it cancelled): nothing to report; the checkpoint stays.
        this.emit({ type: 'cancelled', version: info.version, reason: signal.reason.message });
        return false;
      }
      if (restartsDownload(e) && state?.download !== undefined) {
        delete state.download;
        await this.saveState(state).catch(() => {});
      }
      const step = stepFor(e);
      const error = e instanceof Error ? e : new Error(String(e));
      this.emit({ type: 'failed', step, error });
      await this.report(step, error.message);
      return false;
    } finally {
      if (this.abort === abort) {
        this.abort = undefined;
        this.current = undefined;
      }
    }
  }

  private async reboot(epoch: number): Promise<void> {
    if (epoch !== this.epoch) return;
    this.emit({ type: 'rebooting' });
    this.status = 'booting';
    this.running = undefined;
    await this.disconnect();
    if (epoch !== this.epoch) return;
    try {
      await this.powerOn(epoch, true);
    } catch (e) {
      if (isPowerCut(e)) return this.die(e as Error);
      this.status = 'off';
      await this.disconnect();
      throw e;
    }
  }
}

/** The device's OTA service (AliOS' ota_service_init). Call start() to power it on. */
export function createOtaService(options: OtaServiceOptions = {}): OtaService {
  return new Service(options);
}
