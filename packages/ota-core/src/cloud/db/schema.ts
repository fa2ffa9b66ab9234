// The cloud's tables as Kysely sees them (migrations.ts creates them). Times are milliseconds since
// the epoch (BIGINT); flags are 0/1 integers, the same on both engines.

import type { Generated, Insertable, Selectable } from 'kysely';

/**
 * What a device does about its current job, in order. `held`: in a rollout, not released to a wave
 * yet (or held back while the rollout is paused); `waiting`: its version is not known yet;
 * `cancelling`: its rollout was cancelled while it downloaded, the cancel notice is not sent yet.
 */
export const DEVICE_JOB_STATES = ['held', 'waiting', 'queued', 'notified', 'downloading', 'downloaded', 'succeeded', 'failed', 'skipped', 'superseded', 'cancelling', 'cancelled'] as const;
export type DeviceJobState = (typeof DEVICE_JOB_STATES)[number];
/**
 * States a device's job never leaves (a new job starts a new row), but for an inform of the target
 * after a notice: a device that finished its restore after it was cancelled or timed out succeeded.
 */
export const FINAL_STATES: readonly DeviceJobState[] = ['succeeded', 'failed', 'skipped', 'superseded', 'cancelled'];
/** States of a device that was sent a notice and has not finished. */
export const IN_FLIGHT_STATES: readonly DeviceJobState[] = ['notified', 'downloading', 'downloaded'];

/**
 * Whether a row's device was told of its job and may be working on it: in flight, or queued again after
 * a notice went out (a restarted worker, an unanswered notice), when it may be downloading with the URL
 * it was sent. A row queued and never pushed is not: a report for it is a late one of an earlier job.
 * Its SQL form is told() in device-status.ts.
 */
export function isTold(state: DeviceJobState, pushes: number): boolean {
  return IN_FLIGHT_STATES.includes(state) || (state === 'queued' && pushes > 0);
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface ProductsTable {
  product_key: string;
  product_secret: string;
  mode: string;
  split_size: number;
  dict_size: number;
  created_at: number;
}

export interface DevicesTable {
  product_key: string;
  device_name: string;
  device_secret: string;
  created_at: number;
  /** Last version the device reported (inform). */
  version: string | null;
  last_seen: number | null;
  /** The newest job that covers the device (device_jobs holds its state). */
  current_job: string | null;
  /**
   * The highest security counter of the releases the device reported running: what it has recorded
   * at least (its anti-rollback floor), as far as the cloud can know.
   */
  recorded_counter: Generated<number>;
  /** Bumped when its secret is rotated. */
  credential_version: Generated<number>;
}

/** Tags of a device (a rollout targets tags, or all). */
export interface DeviceTagsTable {
  product_key: string;
  device_name: string;
  tag: string;
}

export interface FirmwareTable {
  product_key: string;
  version: string;
  /** Content address of the image under files/objects. */
  sha256: string;
  size: number;
  security_counter: number;
  allow_downgrade: number;
  created_at: number;
}

/** Made packages (diffs and raw packages), by what they were made from; the bytes are an object. */
export interface PackagesTable {
  name: string;
  product_key: string;
  sha256: string;
  md5: string;
  size: number;
  /** The package header's split size (notices repeat it). */
  split_size: number;
  created_at: number;
}

export interface JobsTable {
  id: string;
  product_key: string;
  version: string;
  /** 'all' devices of the product (also those added later), or the 'list' in job_devices. */
  target: 'all' | 'list';
  download_protocol: string | null;
  created_at: number;
  /** The target release allows a downgrade: devices on newer versions are brought back to it. */
  allow_downgrade: Generated<number>;
  /** The target release's security counter (devices that recorded a higher one are skipped). */
  security_counter: Generated<number>;
}

export interface JobDevicesTable {
  job_id: string;
  device_name: string;
}

/** One device in one job: the push queue and the device's progress (a row update per message). */
export interface DeviceJobsTable {
  id: Generated<number>;
  job_id: string;
  product_key: string;
  device_name: string;
  state: DeviceJobState;
  step: number | null;
  detail: string | null;
  from_version: string | null;
  is_diff: number | null;
  package_bytes: number | null;
  /** Notices sent for this job (more than 1: a retry after a reboot or an unanswered notice). */
  pushes: number;
  /** The cloud worker that sent the last notice. */
  worker: string | null;
  created_at: number;
  queued_at: number | null;
  notified_at: number | null;
  updated_at: number;
  finished_at: number | null;
  /** A rollout's wave the row was released in (0-based); null: not released (held) or a plain job. */
  wave: number | null;
  released_at: number | null;
  /** Retries used after a failure (a rollout's --retries). */
  attempts: Generated<number>;
}

/** Every state change of every device_jobs row, with its time (database triggers write it). */
export interface DeviceJobEventsTable {
  id: Generated<number>;
  device_job_id: number;
  job_id: string;
  product_key: string;
  device_name: string;
  state: DeviceJobState;
  step: number | null;
  detail: string | null;
  wave: number | null;
  at: number;
}

export const ROLLOUT_STATES = ['running', 'paused', 'completed', 'cancelled'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** A staged rollout: its job (job_id) holds the devices; waves release them. */
export interface RolloutsTable {
  id: string;
  product_key: string;
  version: string;
  job_id: string;
  /** JSON array of tags the devices were chosen by, or null (all devices of the product). */
  groups: string | null;
  /** JSON of the RolloutPolicy (waves, success threshold, failure limit, timeout, retries). */
  policy: string;
  state: RolloutState;
  /** Why it is paused (by whom, or the failure that stopped it), or how it ended. */
  reason: string | null;
  /** The wave in progress (0-based). */
  wave: number;
  wave_started_at: number;
  /** Failures of the current wave an operator accepted by resuming. */
  accepted_failures: Generated<number>;
  /** The wave an operator resumed below its success threshold (it may then finish below it). */
  resumed_wave: number | null;
  created_by: string;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export type Role = 'viewer' | 'operator' | 'admin';

/** Who may use the management API: a name, a role, and the SHA-256 of the bearer token. */
export interface OperatorsTable {
  name: string;
  role: Role;
  token_hash: string;
  created_at: number;
  created_by: string;
}

/** Every change made through the service layer (CLI and API): who, what, when. */
export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor: string;
  role: string;
  action: string;
  target: string;
  /** JSON with what the change was (never a secret or a token). */
  detail: string;
}

/** Devices whose sign-in was revoked (removed, secret rotated): each worker ends their live sessions. */
export interface RevocationsTable {
  id: Generated<number>;
  product_key: string;
  device_name: string;
  reason: string;
  at: number;
}

/** Cloud processes sharing the database: liveness, and their broker session for a takeover. */
export interface WorkersTable {
  id: string;
  client_id: string;
  started_at: number;
  heartbeat_at: number;
  /** live, then retired (clean stop) or reaped (another worker took over its broker session). */
  state: 'live' | 'reaping' | 'reaped' | 'retired';
  reaped_by: string | null;
}

export interface Database {
  settings: SettingsTable;
  products: ProductsTable;
  devices: DevicesTable;
  device_tags: DeviceTagsTable;
  firmware: FirmwareTable;
  packages: PackagesTable;
  jobs: JobsTable;
  job_devices: JobDevicesTable;
  device_jobs: DeviceJobsTable;
  device_job_events: DeviceJobEventsTable;
  rollouts: RolloutsTable;
  operators: OperatorsTable;
  audit_log: AuditLogTable;
  revocations: RevocationsTable;
  workers: WorkersTable;
  schema_migrations: { version: number; name: string; applied_at: number };
}

export type DeviceRow = Selectable<DevicesTable>;
export type DeviceJobRow = Selectable<DeviceJobsTable>;
export type RolloutRow = Selectable<RolloutsTable>;
export type NewDeviceJob = Insertable<DeviceJobsTable>;
