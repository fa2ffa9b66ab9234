// What a refused update must look like on a rig's device: a 'failed' event and a
// matching progress report, no hand-over to the bootloader, the old image still
// running and booting again.
import { expect } from 'vitest';
import { openPartition, parseFixedHeader, readHandover } from '@otadiff/patch-apply';
import { parseDeviceState } from '../../src/device/device-state.js';
import type { UpgradeInfo } from '../../src/protocol/messages.js';
import { connectOtaCloud, type OtaCloudClient } from '../../src/cloud/mqtt-client.js';
import { fileDigest } from '../../src/protocol/signature.js';
import { PK, same, type Rig } from './ota-rig.js';

export const handover = (rig: Rig) => readHandover(openPartition(rig.port.flash, rig.port.layout, 'params'));
export const deviceState = async (rig: Rig) => parseDeviceState((await rig.port.loadState())!);

/** A second cloud client (the broker's service credential) that pushes hand-made notices. */
export function testCloud(rig: Rig): Promise<OtaCloudClient> {
  return connectOtaCloud(rig.cloud.brokerUrl, rig.cloud.store.serviceCredential, { clientId: 'test-notices' });
}

/**
 * A notice for the package `pkg` (a raw one or a diff, as its header says) as version 2.0.0, served at
 * `over.url`, else by the rig's cloud at `pkg.path`.
 */
export function packageNotice(rig: Rig, pkg: { bytes: Uint8Array; path?: string }, over: Partial<UpgradeInfo> = {}): UpgradeInfo {
  if (over.url === undefined && pkg.path === undefined) throw new Error('packageNotice: give the package a path or the notice a url');
  return {
    id: '42',
    size: pkg.bytes.length,
    version: '2.0.0',
    url: over.url ?? rig.cloud.files.signUrl(pkg.path!, Date.now() + 60_000),
    signMethod: 'SHA256',
    sign: fileDigest(pkg.bytes, 'SHA256'),
    isDiff: parseFixedHeader(pkg.bytes).mode === 'raw' ? 0 : 1,
    ...over,
  };
}

/** A notice for the store's raw (OTA_RAW) package of `version`, as the cloud would send it. */
export async function fullImageNotice(rig: Rig, over: Partial<UpgradeInfo> = {}, version = '2.0.0'): Promise<UpgradeInfo> {
  const pkg = (await rig.cloud.store.rawPackage(PK, version))!;
  return packageNotice(rig, pkg, { version, ...over });
}

/**
 * Runs `push`, waits for the 'failed' event and the negative progress report (both must carry `step`),
 * then for the service to finish with the update, so that the next notice is not taken for a second
 * update while this one is still reporting.
 */
export async function expectFailure(rig: Rig, push: () => Promise<void>, step: number): Promise<Error | undefined> {
  const failed = rig.svc.waitFor((e) => e.type === 'failed', 10_000);
  const progress = rig.svc.waitFor((e) => e.type === 'progress' && e.step < 0, 10_000);
  await push();
  const f = await failed;
  const p = await progress;
  expect(f).toMatchObject({ step });
  expect(p).toMatchObject({ step });
  await untilIdle(rig);
  return f.type === 'failed' ? f.error : undefined;
}

/** Waits until the service has no update under way (it reports a failure after its 'failed' event). */
export async function untilIdle(rig: Rig, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (rig.svc.updating) {
    if (Date.now() > until) throw new Error(`the service was still updating after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Records the OTA partition writes the service makes from now on. */
export function recordWrites(rig: Rig): Array<{ offset: number; length: number }> {
  const writes: Array<{ offset: number; length: number }> = [];
  const write = rig.port.write.bind(rig.port);
  rig.port.write = async (offset, bytes) => {
    writes.push({ offset, length: bytes.length });
    return write(offset, bytes);
  };
  return writes;
}

/** The end of the furthest write (0 when nothing was written). */
export const writtenUpTo = (writes: ReadonlyArray<{ offset: number; length: number }>): number => writes.reduce((m, w) => Math.max(m, w.offset + w.length), 0);

/**
 * Nothing went to the bootloader and the device still runs `old` from slot A as 1.0.0;
 * a reboot (power off and on) boots that image again, normally.
 */
export async function expectOldImageKept(rig: Rig, old: Uint8Array): Promise<void> {
  expect(rig.events.some((e) => e.type === 'set-boot' || e.type === 'rebooting')).toBe(false);
  expect(handover(rig)).toBeNull();
  expect((await deviceState(rig)).pending).toBeUndefined();
  expect(rig.svc.status).toBe('running');
  expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
  expect(same(rig.slotBytes('A', old.length), old)).toBe(true);
  await rig.svc.stop();
  const boots = rig.events.length;
  await rig.svc.start();
  expect(rig.events.slice(boots).find((e) => e.type === 'boot')).toEqual({ type: 'boot', outcome: { kind: 'normal', slot: 'A' } });
  expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
  expect(same(rig.slotBytes('A', old.length), old)).toBe(true);
}
