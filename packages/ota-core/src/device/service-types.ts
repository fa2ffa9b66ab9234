// The device OTA service's public face: its options, the events it emits, its errors and handle.

import type { KeyLike } from 'node:crypto';
import type { BootOutcome, PackageHeader, SignatureAlgorithm, Slot } from '@otadiff/patch-apply';
import type { DownloadResult } from './downloader.js';
import type { OtaPort } from './flash-port.js';
import type { UpgradeInfo } from '../protocol/messages.js';
import type { MqttSignMethod } from '../protocol/mqtt-auth.js';
import type { BackoffOptions, SleepFn } from '../protocol/retry.js';
import type { TrustedKeyInput } from './trusted-keys.js';

export type DownloadProtocol = 'http' | 'https' | 'coap';

export interface OtaServiceOptions {
  /** The device quadruple; whatever is missing comes from the config file. */
  productKey?: string;
  productSecret?: string;
  deviceName?: string;
  deviceSecret?: string;
  /** Identity file (default $OTADIFF_DEVICE_CONFIG or ~/.otadiff/device.json). */
  configPath?: string;
  /** MQTT broker URL (default: the config's, else mqtt://127.0.0.1:1883); with transport 'coap', the cloud's coap://host:port. */
  broker?: string;
  /** Notice channel (AliOS' trans_protcol): MQTT topics (default) or the same messages over CoAP. */
  transport?: 'mqtt' | 'coap';
  /** CoAP transport: ask the cloud for an upgrade notice this often (ms; default 5000). */
  noticePollMs?: number;
  /** Accepted download URLs: 'http' (http: and https:), 'https' (https: only) or 'coap'. */
  downloadProtocol?: DownloadProtocol;
  /** MQTT sign-in HMAC (default hmacsha256). */
  signMethod?: MqttSignMethod;
  /** The board (default: a flash-directory port on the config's `flash`). */
  port?: OtaPort;
  /** Version of the factory image, when the port's state has none yet. */
  initialVersion?: string;
  module?: string;
  /**
   * Public keys that sign packages (parsed keys, PEM text, PEM file paths or SPKI DER; default: the
   * config's `trustedKeys`). When given, a package must be signed by one of them: an unsigned or
   * wrongly signed one is refused before anything is downloaded or erased, and again on the flash
   * bytes before set_boot. Give the bootloader the same keys (createFlashDirPort's `trustedKeys`).
   */
  trustedKeys?: readonly TrustedKeyInput[];
  /** RSA public key: notices must then carry a digestsign that verifies (AliOS' digestsign). */
  publicKey?: KeyLike;
  requireDigestSign?: boolean;
  /** Hand-over rollback flag (default true): an unconfirmed A/B image returns to the old one. */
  rollback?: boolean;
  /** Decides whether a newly booted image is good; false reboots without confirming it. */
  healthCheck?: (running: { slot: Slot; version: string; attempt: number }) => boolean | Promise<boolean>;
  /** Give up after this many unhealthy boots in a row (default 8). */
  maxUnhealthyBoots?: number;
  /** Reconnect to the broker when the connection drops (default true). */
  reconnect?: boolean;
  /** Report download progress every this many percent (default 10). */
  progressStep?: number;
  download?: {
    retries?: number;
    backoff?: BackoffOptions;
    sleep?: SleepFn;
    timeoutMs?: number;
    ca?: string | Buffer | Array<string | Buffer>;
    coapBlockSize?: number;
    ackTimeoutMs?: number;
  };
  onEvent?: (e: OtaServiceEvent) => void;
}

export type OtaServiceEvent =
  | { type: 'boot'; outcome: BootOutcome }
  | { type: 'unhealthy'; slot: Slot; version: string; attempt: number }
  | { type: 'confirmed'; slot: Slot; version: string }
  | { type: 'update-failed'; version: string; reason: string; detail: string }
  | { type: 'connected'; broker: string }
  | { type: 'disconnected' }
  | { type: 'inform'; version: string }
  | { type: 'progress'; step: number; desc: string }
  | { type: 'notice'; info: UpgradeInfo }
  | { type: 'invalid-notice'; error: Error }
  | { type: 'ignored'; info: UpgradeInfo; reason: string }
  /**
   * The signed head passed every check before the download: `signature` is the algorithm that verified
   * (null when the service trusts no key, so nothing was judged), `fetched` the bytes fetched for it.
   */
  | { type: 'header'; header: PackageHeader; fetched: number; rangeHonoured: boolean; signature: SignatureAlgorithm | null }
  | { type: 'download-start'; offset: number; total: number; resumed: boolean }
  | { type: 'download'; offset: number; total: number }
  | { type: 'downloaded'; result: DownloadResult }
  /** The package in flash: notice digest, digestsign, and (`signature`) the signed header and payload SHA-256. */
  | { type: 'verified'; sha256: string; digestsign: boolean; signature: SignatureAlgorithm | null; securityCounter: number }
  | { type: 'set-boot'; firmwareType: 'raw' | 'diff'; slot: Slot; version: string }
  | { type: 'failed'; step: number; error: Error }
  /** The cloud cancelled the update: its download stopped (the checkpoint stays). */
  | { type: 'cancelled'; version: string; reason: string }
  /** A cancel notice that stops nothing: no such update in progress, or its restore is under way. */
  | { type: 'cancel-ignored'; version: string; reason: string }
  | { type: 'rebooting' }
  | { type: 'powercut'; error: Error }
  | { type: 'error'; error: Error }
  | { type: 'stopped' };

export type OtaServiceErrorCode = 'CONFIG' | 'AUTH' | 'CONNECT' | 'HALT' | 'UNHEALTHY' | 'STATE';

export class OtaServiceError extends Error {
  override name = 'OtaServiceError';
  constructor(
    readonly code: OtaServiceErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type OtaServiceStatus = 'off' | 'booting' | 'running';

export interface OtaService {
  readonly productKey: string;
  readonly deviceName: string;
  readonly broker: string;
  readonly port: OtaPort;
  readonly status: OtaServiceStatus;
  /** The booted slot and its version, while running. */
  readonly running: { slot: Slot; version: string } | undefined;
  /** True while a notice is being handled. */
  readonly updating: boolean;
  /** Power on: the bootloader, confirmation, connect, inform. Resolves when running, or off after a power cut. */
  start(): Promise<void>;
  /** Power off cleanly (aborts a download; its checkpoint stays). */
  stop(): Promise<void>;
  /** stop(), and close the port when the service opened it. */
  close(): Promise<void>;
  on(listener: (e: OtaServiceEvent) => void): () => void;
  waitFor(pred: (e: OtaServiceEvent) => boolean, timeoutMs?: number): Promise<OtaServiceEvent>;
}
