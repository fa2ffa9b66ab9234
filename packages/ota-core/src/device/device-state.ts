// What the device's OTA service keeps across reboots (AliOS keeps the same in KV):
// the version in each slot, the update handed to the bootloader but not yet seen
// booting, and the download in progress with its checkpoint (offset + hash state),
// so a power cut resumes the download where it stopped. Stored as JSON through the
// port (DIR/device.json for a flash directory); parsed as untrusted input.

import type { Slot } from '@otadiff/patch-apply';
import { decodeCheckpoint, encodeCheckpoint, type DownloadCheckpoint } from './checkpoint.js';
import type { SignMethod } from '../protocol/messages.js';
import { isValidVersion } from '../protocol/version.js';

export class DeviceStateError extends Error {
  override name = 'DeviceStateError';
}

export interface SlotRecord {
  version: string;
  /** Image bytes (0 when unknown). */
  size: number;
}

/** An update handed to the bootloader (set_boot done), not yet seen booting. */
export interface PendingUpdate {
  slot: Slot;
  version: string;
  size: number;
  firmwareType: 'raw' | 'diff';
}

/** The download in progress, tied to one notice by its target, size and digest. */
export interface DownloadRecord {
  version: string;
  size: number;
  signMethod: SignMethod;
  sign: string;
  isDiff: 0 | 1;
  checkpoint?: DownloadCheckpoint;
}

export interface DeviceState {
  slots: Partial<Record<Slot, SlotRecord>>;
  pending?: PendingUpdate;
  download?: DownloadRecord;
}

const FORMAT = 'otadiff-device-state';
const MAX_STATE_BYTES = 64 * 1024;
const MAX_IMAGE = 2 ** 32;

export const emptyDeviceState = (): DeviceState => ({ slots: {} });

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DeviceStateError(`${what} must be an object`);
  return v as Json;
}

function version(v: unknown, what: string): string {
  if (typeof v !== 'string' || !isValidVersion(v)) throw new DeviceStateError(`${what} is not a valid version`);
  return v;
}

function size(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_IMAGE) throw new DeviceStateError(`${what} must be a size in bytes`);
  return v;
}

function slot(v: unknown, what: string): Slot {
  if (v !== 'A' && v !== 'B') throw new DeviceStateError(`${what} must be "A" or "B"`);
  return v;
}

function slotRecord(v: unknown, what: string): SlotRecord {
  const o = obj(v, what);
  return { version: version(o.version, `${what}.version`), size: size(o.size, `${what}.size`) };
}

export function parseDeviceState(text: string): DeviceState {
  if (text.length > MAX_STATE_BYTES) throw new DeviceStateError(`device state of ${text.length} bytes is too large`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new DeviceStateError('device state is not JSON');
  }
  const root = obj(raw, 'device state');
  if (root.format !== FORMAT || root.version !== 1) throw new DeviceStateError(`not an ${FORMAT} v1 file`);
  const slots = obj(root.slots, 'slots');
  const out: DeviceState = { slots: {} };
  for (const k of Object.keys(slots)) out.slots[slot(k, 'slot name')] = slotRecord(slots[k], `slots.${k}`);
  if (root.pending !== undefined) {
    const p = obj(root.pending, 'pending');
    const ft = p.firmwareType;
    if (ft !== 'raw' && ft !== 'diff') throw new DeviceStateError('pending.firmwareType must be raw or diff');
    out.pending = { slot: slot(p.slot, 'pending.slot'), version: version(p.version, 'pending.version'), size: size(p.size, 'pending.size'), firmwareType: ft };
  }
  if (root.download !== undefined) {
    const d = obj(root.download, 'download');
    const signMethod = d.signMethod;
    if (signMethod !== 'SHA256' && signMethod !== 'Md5') throw new DeviceStateError('download.signMethod must be SHA256 or Md5');
    const hexLen = signMethod === 'SHA256' ? 64 : 32;
    if (typeof d.sign !== 'string' || d.sign.length !== hexLen || !/^[0-9a-f]+$/.test(d.sign)) throw new DeviceStateError('download.sign is not a lower-case hex digest');
    if (d.isDiff !== 0 && d.isDiff !== 1) throw new DeviceStateError('download.isDiff must be 0 or 1');
    const rec: DownloadRecord = { version: version(d.version, 'download.version'), size: size(d.size, 'download.size'), signMethod, sign: d.sign, isDiff: d.isDiff };
    if (d.checkpoint !== undefined) {
      if (typeof d.checkpoint !== 'string' || d.checkpoint.length > 8192) throw new DeviceStateError('download.checkpoint must be base64');
      try {
        rec.checkpoint = decodeCheckpoint(new Uint8Array(Buffer.from(d.checkpoint, 'base64')));
      } catch (e) {
        throw new DeviceStateError(`download.checkpoint: ${(e as Error).message}`);
      }
    }
    out.download = rec;
  }
  return out;
}

export function serializeDeviceState(s: DeviceState): string {
  const root: Json = { format: FORMAT, version: 1, slots: s.slots };
  if (s.pending !== undefined) root.pending = s.pending;
  if (s.download !== undefined) {
    const { checkpoint, ...rest } = s.download;
    root.download = checkpoint === undefined ? rest : { ...rest, checkpoint: Buffer.from(encodeCheckpoint(checkpoint)).toString('base64') };
  }
  const text = `${JSON.stringify(root, null, 2)}\n`;
  // Round-trip through the parser: never persist what would be refused on the next boot.
  parseDeviceState(text);
  return text;
}
