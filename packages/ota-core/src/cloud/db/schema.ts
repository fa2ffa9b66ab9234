// The cloud's tables as Kysely sees them (migrations.ts creates them). Times are milliseconds since
// the epoch (BIGINT); flags are 0/1 integers, the same on both engines.

import type { Generated, Insertable, Selectable } from 'kysely';

/** What a device does about its current job, in order. `waiting`: its version is not known yet. */
export const DEVICE_JOB_STATES = ['waiting', 'queued', 'notified', 'downloading', 'downloaded', 'succeeded', 'failed', 'skipped', 'superseded'] as const;
export type DeviceJobState = (typeof DEVICE_JOB_STATES)[number];
/** States a device's job never leaves (a new job starts a new row). */
export const FINAL_STATES: readonly DeviceJobState[] = ['succeeded', 'failed', 'skipped', 'superseded'];
/** States of a device that was sent a notice and has not finished. */
export const IN_FLIGHT_STATES: readonly DeviceJobState[] = ['notified', 'downloading', 'downloaded'];

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
  firmware: FirmwareTable;
  packages: PackagesTable;
  jobs: JobsTable;
  job_devices: JobDevicesTable;
  device_jobs: DeviceJobsTable;
  workers: WorkersTable;
  schema_migrations: { version: number; name: string; applied_at: number };
}

export type DeviceRow = Selectable<DevicesTable>;
export type DeviceJobRow = Selectable<DeviceJobsTable>;
export type NewDeviceJob = Insertable<DeviceJobsTable>;
