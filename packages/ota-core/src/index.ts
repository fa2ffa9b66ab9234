// @otadiff/ota-core — the OTA service (Alibaba Cloud IoT protocol; open counterpart of AliOS Things'
// OTA service) in three homes, imports only downward (cloud and device never import each other):
//
//   protocol/  what both ends speak: versions, topics, messages, MQTT sign-in, notice signatures,
//              the CoAP Block2 option, backoff, an event hub
//   device/    the device's OTA service (ota-service and its phases), the flash port, downloads
//              over HTTP(S) and CoAP with checkpoints, the MQTT and CoAP notice links
//   cloud/     the cloud: broker, file servers, the store (a database: db/, SQLite or PostgreSQL;
//              content-addressed files), the push queue, workers, and the job logic
//   demo.ts    both halves on loopback, for `otadiff demo`

export { compareVersions, compareParsed, isValidVersion, parseVersion, VersionError, type ParsedVersion } from './protocol/version.js';

export {
  assertDeviceId,
  informTopic,
  isValidDeviceName,
  isValidProductKey,
  otaTopic,
  otaTopicFilter,
  parseOtaTopic,
  progressTopic,
  TopicError,
  upgradeTopic,
  deviceKey,
  type DeviceRef,
  type OtaTopic,
  type OtaTopicKind,
} from './protocol/topics.js';

export {
  buildInformMessage,
  buildProgressMessage,
  buildUpgradeMessage,
  MAX_MESSAGE_BYTES,
  MessageError,
  OtaStep,
  parseInformMessage,
  parseProgressMessage,
  parseUpgradeMessage,
  signHexLength,
  validateDownloadUrl,
  type InformMessage,
  type OtaStepError,
  type ProgressMessage,
  type SignMethod,
  type UpgradeInfo,
  type UpgradeParseOptions,
} from './protocol/messages.js';

export {
  deriveMqttCredentials,
  MqttAuthError,
  parseMqttClientId,
  signContent,
  verifyMqttCredentials,
  type DeriveOptions,
  type DeviceIdentity,
  type ServiceCredential,
  type DeviceSecretLookup,
  type MqttCredentials,
  type MqttSignMethod,
  type VerifiedDevice,
  type VerifyOptions,
} from './protocol/mqtt-auth.js';

export { DeviceRegistry, generateSecret, RegistryError, type DeviceRecord, type ProductRecord } from './cloud/device-registry.js';

export { startBroker, type BrokerHandle, type BrokerOptions } from './cloud/broker.js';

export { connectOtaDevice, OtaMqttError, type DeviceClientOptions, type OtaDeviceClient } from './device/mqtt-link.js';
export { connectOtaCloud, OtaCloudMqttError, type CloudClientOptions, type OtaCloudClient } from './cloud/mqtt-client.js';

export {
  computeEtag,
  parseRangeHeader,
  startFileServer,
  type ByteRange,
  type FileServerHandle,
  type FileServerOptions,
  type RangeResult,
  type RequestLogEntry,
} from './cloud/http-server.js';

export { download, DownloadError, type DownloadErrorCode, type DownloadOptions, type DownloadResult, type Sink } from './device/downloader.js';

export {
  CheckpointError,
  decodeCheckpoint,
  digestHexLength,
  encodeCheckpoint,
  validateCheckpoint,
  type DownloadCheckpoint,
  type HashAlgorithm,
} from './device/checkpoint.js';

export { createHasher, resumeHasher } from './device/hashing.js';
export { backoffDelay, defaultSleep, type BackoffOptions, type SleepFn } from './protocol/retry.js';

export { BlockOptionError, decodeBlockOption, encodeBlockOption, type BlockOption } from './protocol/coap.js';
export { coapDownload, type CoapDownloadOptions } from './device/coap-download.js';
export { startCoapFileServer, type CoapFileServerHandle, type CoapFileServerOptions } from './cloud/coap-file-server.js';
export { connectOtaDeviceCoap, OtaCoapError, type CoapDeviceClientOptions, type OtaCoapDeviceClient } from './device/coap-link.js';
export { createCoapNoticeServer, type CoapNoticeServer, type CoapNoticeServerOptions } from './cloud/coap-notices.js';

export {
  createDigestSign,
  fileDigest,
  hashAlgorithmOf,
  SignatureError,
  verifyDigestSign,
  verifyPackage,
  verifySign,
  type PackageVerifyOptions,
} from './protocol/signature.js';

export {
  createDeviceFlashDir,
  createFlashDirPort,
  DEVICE_STATE_FILE,
  FlashPortError,
  type DeviceFlashOptions,
  type FlashDirPort,
  type FlashDirPortOptions,
  type OtaFinishParam,
  type OtaFlashPort,
  type OtaPort,
  type OtaPortInfo,
} from './device/flash-port.js';

export {
  DeviceStateError,
  emptyDeviceState,
  parseDeviceState,
  serializeDeviceState,
  type DeviceState,
  type DownloadRecord,
  type PendingUpdate,
  type SlotRecord,
} from './device/device-state.js';

export { defaultDeviceConfigPath, DeviceConfigError, loadDeviceConfig, parseDeviceConfig, type DeviceConfig } from './device/device-config.js';
export { isPemText, resolveTrustedKeys, TrustedKeyError, type TrustedKeyInput } from './device/trusted-keys.js';
export { fetchPackageHead, HEAD_FETCH_BYTES, type PackageHead, type PackageHeadOptions } from './device/package-head.js';
export { EventHub, EventTimeoutError } from './protocol/event-hub.js';

export { createOtaService } from './device/ota-service.js';
export {
  OtaServiceError,
  type DownloadProtocol,
  type OtaService,
  type OtaServiceErrorCode,
  type OtaServiceEvent,
  type OtaServiceOptions,
  type OtaServiceStatus,
} from './device/service-types.js';

export {
  CloudStore,
  CloudStoreError,
  type CloudStatus,
  type CloudStoreOptions,
  type DeviceStatus,
  type FirmwareRelease,
  type JobState,
  type OtaJob,
  type PackageMode,
  type ProductConfig,
  type StoredPackage,
} from './cloud/cloud-store.js';

export { importJsonDir, hasJsonData, type ImportSummary } from './cloud/json-import.js';
export { OPERATIONS, runOperation, ServiceError, validateInput, type OperationName, type ServiceContext, type ServiceHooks } from './cloud/admin/operations.js';
export { ROLES, roleAllows, type OperatorInfo } from './cloud/admin/operators.js';
export type { Actor, AuditEntry, AuditRecord } from './cloud/audit.js';
export type { RolloutView, WaveView, NewRollout } from './cloud/rollouts.js';
export type { DeviceSummary, HistoryEntry } from './cloud/admin/fleet-view.js';
export { parsePolicy, parseWaves, waveTargets, PolicyError, type RolloutPolicy, type Amount } from './cloud/rollout-policy.js';
export { startApiServer, type ApiServerHandle, type ApiServerOptions } from './cloud/api/server.js';
export { buildCancelMessage, parseCloudNotice, type CancelNotice, type CloudNotice } from './protocol/messages.js';
export { recordInform, recordProgress, type InformOutcome, type ProgressOutcome } from './cloud/device-status.js';
export { isPostgresUrl, redactUrl, DatabaseError, type Engine } from './cloud/db/engine.js';
export { SCHEMA_VERSION } from './cloud/db/migrations.js';
export { DEVICE_JOB_STATES, ROLLOUT_STATES, type DeviceJobState, type Role, type RolloutState } from './cloud/db/schema.js';
export { startOtaCloud, type CloudEvent, type OtaCloud, type OtaCloudOptions } from './cloud/cloud.js';
export { runOtaDemo, type DemoMode, type DemoOptions, type DemoSummary } from './demo.js';
