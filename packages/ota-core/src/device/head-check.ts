// The package's signed head (header + signature block): fetched first, and checked against the
// trusted keys, the recorded security counter, the notice and the device before anything is
// downloaded or erased; checked again as the flash holds it before set_boot.

import {
  checkSecurityCounter,
  checkTrust,
  FIXED_HEADER_BYTES,
  packageLength,
  backupBytes,
  parseFixedHeader,
  parseHeader,
  PackageError,
  recordsOffset,
  signatureAlgorithmOf,
  type PackageHeader,
  type SignatureAlgorithm,
  type Slot,
  type TrustedKey,
} from '@otadiff/patch-apply';
import type { OtaPort, OtaPortInfo } from './flash-port.js';
import { fetchPackageHead, HEAD_FETCH_BYTES } from './package-head.js';
import { Refusal } from './refusal.js';
import type { OtaServiceOptions } from './service-types.js';
import { OtaStep, type OtaStepError, type UpgradeInfo } from '../protocol/messages.js';
import { compareVersions, isValidVersion } from '../protocol/version.js';

/** What a package's signed head is checked against. */
export interface HeadCheck {
  info: UpgradeInfo;
  running: Slot;
  runningVersion: string;
  /** The notice's version is not newer than the running one: only a signed allow-downgrade package goes. */
  downgrade: boolean;
  /** The device's recorded security counter. */
  recorded: number;
}

/** A signed head that passed checkHead: its header, the algorithm that verified it, the slot its image goes to. */
export interface CheckedHead {
  header: PackageHeader;
  signature: SignatureAlgorithm | null;
  target: Slot;
}

/**
 * Bytes of the signed head (header + signature block) that a fixed header announces; refuses a header
 * that does not parse or declares another package length than the notice.
 */
export function headLength(fixedBytes: Uint8Array, info: UpgradeInfo): number {
  let f;
  try {
    f = parseFixedHeader(fixedBytes);
  } catch (e) {
    if (e instanceof PackageError) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: not a usable otadiff package: ${e.message}`);
    throw e;
  }
  const declared = packageLength(f);
  if (declared !== info.size) throw new Refusal(OtaStep.UPGRADE_FAILED, `refused: the package header declares ${declared} bytes, the notice ${info.size}`);
  return recordsOffset(f);
}

/** "2.0" and "2.0.0" name the same release; anything else must be spelt the same. */
function sameVersion(a: string, b: string): boolean {
  return a === b || (isValidVersion(a) && isValidVersion(b) && compareVersions(a, b) === 0);
}

const other = (s: Slot): Slot => (s === 'A' ? 'B' : 'A');

/** Slot the package's image goes to. */
export function targetOf(h: Pick<PackageHeader, 'mode'>, running: Slot, port: OtaPortInfo): Slot {
  if (h.mode === 'raw') return port.slots.includes('B') ? other(running) : running;
  return h.mode === 'ab' ? other(running) : running;
}

/**
 * Checks the signed head (header + signature block) against the trusted keys, the recorded security
 * counter, the notice and this device; throws Refusal. Trust first: nothing else in a header no
 * trusted key signed means anything.
 */
export function checkHead(bytes: Uint8Array, c: HeadCheck, trust: readonly TrustedKey[] | undefined, pi: OtaPortInfo): CheckedHead {
  const refuse = (why: string, step: OtaStepError = OtaStep.UPGRADE_FAILED): never => {
    throw new Refusal(step, `refused: ${why}`);
  };
  let h!: PackageHeader;
  try {
    h = parseHeader(bytes);
  } catch (e) {
    if (e instanceof PackageError) refuse(`not a usable otadiff package: ${e.message}`);
    throw e;
  }
  if (bytes.length < recordsOffset(h)) refuse('the package is shorter than its signed head');
  const signed = bytes.subarray(0, h.headerLength);
  const signature = bytes.subarray(h.headerLength, recordsOffset(h));
  try {
    if (trust !== undefined) checkTrust(h, signed, signature, { keys: trust, securityCounter: c.recorded });
    else checkSecurityCounter(h, c.recorded);
  } catch (e) {
    if (!(e instanceof PackageError)) throw e;
    refuse(e.message, e.code === 'security-counter' ? OtaStep.UPGRADE_FAILED : OtaStep.VERIFY_FAILED);
  }
  const algorithm = trust === undefined ? null : signatureAlgorithmOf(h.signatureType);
  const info = c.info;
  if (c.downgrade && !h.allowDowngrade) {
    refuse(`version ${info.version} is not newer than the running ${c.runningVersion}, and the signed package does not allow a downgrade`);
  }
  // Its length against the notice's: headLength() checked it on these same bytes before they were fetched.
  const raw = h.mode === 'raw';
  if (raw !== (info.isDiff === 0)) {
    refuse(info.isDiff === 1 ? 'the notice announces a diff, the package is a full image (raw)' : `the notice announces a full image, the package is a ${h.mode} diff`);
  }
  if (h.firmwareVersion !== '' && !sameVersion(h.firmwareVersion, info.version)) {
    refuse(`the notice announces version ${info.version}, the signed package is version ${h.firmwareVersion}`);
  }
  const target = targetOf(h, c.running, pi);
  const room = pi.slotSize[target] ?? 0;
  if (raw) {
    if (h.newSize > room) refuse(`a ${h.newSize}-byte image does not fit slot ${target} (${room} bytes)`);
    return { header: h, signature: algorithm, target };
  }
  if (info.splitSize !== undefined && info.splitSize !== h.splitSize) refuse(`the notice's split size ${info.splitSize} differs from the package's ${h.splitSize}`);
  // Any split size restores on any sector map (the bootloader groups sectors and chunks; it refuses,
  // before its first erase, a package its flash cannot restore).
  const ab = h.mode === 'ab';
  if (ab && !pi.slots.includes('B')) refuse('an A/B package needs a second slot, this device restores in place');
  // In place, the old bytes the restore still reads wait in the backup ring: at least two chunks' worth.
  const backup = backupBytes(h);
  if (!ab && pi.backupSize < backup) refuse(`an in-place restore of ${h.splitSize}-byte chunks needs ${backup} bytes of backup, this device has ${pi.backupSize}`);
  if (h.newSize > room || (!ab && h.oldSize > room)) refuse(`the image does not fit slot ${target} (${room} bytes)`);
  if (h.oldSize > (pi.slotSize[c.running] ?? 0)) refuse(`the package's old image is larger than slot ${c.running}`);
  return { header: h, signature: algorithm, target };
}

/** The package's signed head from the network: HEAD_FETCH_BYTES first, the rest of it when longer. */
export async function fetchHead(
  info: UpgradeInfo,
  hash: 'sha256' | 'md5',
  signal: AbortSignal,
  dl: NonNullable<OtaServiceOptions['download']> = {},
): Promise<{ bytes: Uint8Array; need: number; etag?: string; rangeHonoured: boolean }> {
  const common = {
    url: info.url,
    totalSize: info.size,
    hash,
    expectedDigest: info.sign,
    signal,
    timeoutMs: dl.timeoutMs,
    retries: dl.retries,
    backoff: dl.backoff,
    sleep: dl.sleep,
    ca: dl.ca,
    ackTimeoutMs: dl.ackTimeoutMs,
  };
  const first = await fetchPackageHead({ ...common, length: HEAD_FETCH_BYTES });
  const need = headLength(first.bytes.subarray(0, FIXED_HEADER_BYTES), info);
  let bytes = first.bytes;
  if (bytes.length < need) {
    const rest = await fetchPackageHead({ ...common, offset: bytes.length, length: need - bytes.length });
    const whole = new Uint8Array(bytes.length + rest.bytes.length);
    whole.set(bytes);
    whole.set(rest.bytes, bytes.length);
    bytes = whole;
  }
  return { bytes, need, etag: first.etag, rangeHonoured: first.rangeHonoured };
}

/** The signed head as the flash holds it after the download, checked again (it is what set_boot hands over). */
export async function checkFlashedHead(port: OtaPort, c: HeadCheck, trust: readonly TrustedKey[] | undefined): Promise<CheckedHead> {
  try {
    const need = headLength(await port.read(0, FIXED_HEADER_BYTES), c.info);
    return checkHead(await port.read(0, need), c, trust, port.info);
  } catch (e) {
    if (e instanceof Refusal) throw new Refusal(e.step, e.message.replace(/^refused: /, 'refused: in flash: '), true);
    throw e;
  }
}
