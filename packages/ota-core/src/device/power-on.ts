// Power on: the bootloader runs (and may restore), the service adopts a new image the bootloader
// verified, reports a refused or rolled-back update, and confirms the running image (AliOS'
// "rollback" callback) once its health check passes. The device state lives in the port.

import type { Slot } from '@otadiff/patch-apply';
import { emptyDeviceState, parseDeviceState, serializeDeviceState, type DeviceState } from './device-state.js';
import type { OtaPort } from './flash-port.js';
import { OtaServiceError, type OtaServiceEvent, type OtaServiceOptions } from './service-types.js';
import { OtaStep } from '../protocol/messages.js';

export async function loadState(port: OtaPort): Promise<DeviceState> {
  const text = await port.loadState();
  if (text === null) return emptyDeviceState();
  try {
    return parseDeviceState(text);
  } catch (e) {
    throw new OtaServiceError('STATE', `the device state is unreadable: ${(e as Error).message}`, { cause: e });
  }
}

export async function saveState(port: OtaPort, s: DeviceState): Promise<void> {
  await port.saveState(serializeDeviceState(s));
}

export interface Booted {
  running: { slot: Slot; version: string };
  /** Progress reports owed to the cloud (a refused or rolled-back update): [step, desc]. */
  reports: Array<[number, string]>;
}

/**
 * Boots until an image is confirmed; `setRunning` hears each booted image before its health check.
 * Throws OtaServiceError HALT (nothing bootable), STATE or UNHEALTHY.
 */
export async function bootAndConfirm(
  port: OtaPort,
  opts: Pick<OtaServiceOptions, 'healthCheck' | 'maxUnhealthyBoots' | 'initialVersion'>,
  emit: (e: OtaServiceEvent) => void,
  setRunning: (r: { slot: Slot; version: string }) => void,
): Promise<Booted> {
  const reports: Array<[number, string]> = [];
  let unhealthy = 0;
  for (;;) {
    const outcome = await port.powerOn();
    emit({ type: 'boot', outcome });
    if (outcome.kind === 'halt') throw new OtaServiceError('HALT', `the bootloader halted (${outcome.reason}): ${outcome.detail}`);
    const state = await loadState(port);
    const p = state.pending;
    let adopted = false;
    if (p !== undefined) {
      if (outcome.kind === 'trial' && p.slot === outcome.slot) {
        // The bootloader verified the new image: this slot now holds the new version. The
        // update stays pending until confirmed, so a rollback can still be reported.
        state.slots[p.slot] = { version: p.version, size: p.size };
        adopted = true;
      } else if (outcome.kind === 'old') {
        const rolledBack = outcome.reason === 'rolledBack';
        const desc = rolledBack ? `rolled back: ${outcome.detail}` : `the bootloader refused the update (${outcome.reason}): ${outcome.detail}`;
        reports.push([rolledBack ? OtaStep.UPGRADE_FAILED : OtaStep.BURN_FAILED, `${p.version}: ${desc}`.slice(0, 1000)]);
        emit({ type: 'update-failed', version: p.version, reason: outcome.reason, detail: outcome.detail });
      }
      if (!adopted) delete state.pending;
      await saveState(port, state);
    }
    let rec = state.slots[outcome.slot];
    if (rec === undefined) {
      if (opts.initialVersion === undefined) throw new OtaServiceError('STATE', `no version is recorded for slot ${outcome.slot}; give initialVersion`);
      rec = state.slots[outcome.slot] = { version: opts.initialVersion, size: 0 };
      await saveState(port, state);
    }
    const version = rec.version;
    setRunning({ slot: outcome.slot, version });
    if (outcome.kind === 'trial' && opts.healthCheck !== undefined) {
      const healthy = await opts.healthCheck({ slot: outcome.slot, version, attempt: outcome.attempt });
      if (!healthy) {
        emit({ type: 'unhealthy', slot: outcome.slot, version, attempt: outcome.attempt });
        if (++unhealthy >= (opts.maxUnhealthyBoots ?? 8)) throw new OtaServiceError('UNHEALTHY', `slot ${outcome.slot} (${version}) failed its health check ${unhealthy} times`);
        continue; // crash-reboot without confirming: the bootloader counts the attempt
      }
    }
    // AliOS' "rollback" callback: confirm the running image.
    await port.rollback();
    if (adopted) {
      delete state.pending;
      await saveState(port, state);
    }
    if (outcome.kind === 'trial') emit({ type: 'confirmed', slot: outcome.slot, version });
    return { running: { slot: outcome.slot, version }, reports };
  }
}
