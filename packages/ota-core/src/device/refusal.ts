// How the device service's failures map onto the OTA protocol: a refusal of a notice, a power
// cut (stop on the spot), and the progress step each error is reported with.

import { PowerCutError } from '@otadiff/patch-apply';
import { DownloadError } from './downloader.js';
import { OtaStep, type OtaStepError } from '../protocol/messages.js';
import { SignatureError } from '../protocol/signature.js';

/** A notice the device will not act on; reported with `step`. */
export class Refusal extends Error {
  override name = 'Refusal';
  constructor(
    readonly step: OtaStepError,
    message: string,
    /** The downloaded bytes can never pass: forget the download, start over next time. */
    readonly restart = false,
  ) {
    super(message);
  }
}

export function isPowerCut(e: unknown): boolean {
  let x: unknown = e;
  for (let i = 0; x !== undefined && x !== null && i < 8; i++) {
    if (x instanceof PowerCutError) return true;
    x = (x as { cause?: unknown }).cause;
  }
  return false;
}

export function stepFor(e: unknown): OtaStepError {
  if (e instanceof Refusal) return e.step;
  if (e instanceof SignatureError) return OtaStep.VERIFY_FAILED;
  if (e instanceof DownloadError) {
    if (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH') return OtaStep.VERIFY_FAILED;
    if (e.code === 'SINK_FAILED') return OtaStep.BURN_FAILED;
    return OtaStep.DOWNLOAD_FAILED;
  }
  const name = (e as Error)?.name;
  if (name === 'FlashPortError' || name === 'FlashError' || name === 'HandoverError' || name === 'LayoutError') return OtaStep.BURN_FAILED;
  return OtaStep.UPGRADE_FAILED;
}

/** The download can never succeed as recorded: start it over next time. */
export function restartsDownload(e: unknown): boolean {
  return (e instanceof Refusal && e.restart) || e instanceof SignatureError || (e instanceof DownloadError && (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH'));
}
