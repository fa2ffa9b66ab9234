// @otadiff/ota-core — transport and cloud building blocks of the OTA service
// (open counterpart of AliOS Things' OTA service, Alibaba Cloud IoT protocol).
//
//   version          compareVersions(a, b) -> -1|0|1, parseVersion, isValidVersion
//   topics           /ota/device/{inform|upgrade|progress}/{productKey}/{deviceName}
//   messages         strict parse/build of inform, upgrade and progress payloads; OtaStep codes
//   mqtt-auth        Aliyun MQTT sign-in: deriveMqttCredentials / verifyMqttCredentials
//   device-registry  products + devices, in memory or JSON-file backed
//   broker           startBroker(): aedes on loopback with per-device topic ACLs
//   ota-mqtt         connectOtaDevice() / connectOtaCloud(): typed OTA clients over mqtt.js
//   http-server      startFileServer(): Range, ETag, If-Range, signed URLs, fault injection
//   downloader       download(): resumable HTTP(S) into a flash sink with hash checkpoints
//   checkpoint       DownloadCheckpoint + encodeCheckpoint / decodeCheckpoint
//   coap-transfer    startCoapFileServer() / coapDownload(): RFC 7959 Block2, resumable
//   ota-coap         the OTA notices over CoAP: createCoapNoticeServer() / connectOtaDeviceCoap()
//   signature        sign (SHA-256/MD5) and RSA digestsign verification (the notice's)
//   trusted-keys     the public keys that sign packages: resolveTrustedKeys (PEM text, files, DER)
//   flash-port       the board port (AliOS hal_ota_module_s) + createFlashDirPort / createDeviceFlashDir
//   ota-service      createOtaService(): the device's OTA service (ota_service_init)
//   cloud            startOtaCloud(): broker + HTTP(S) and CoAP servers + jobs over a CloudStore data directory
//   demo             runOtaDemo(): the whole story on loopback, for `otadiff demo`

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
  type DeviceSecretLookup,
  type MqttCredentials,
  type MqttSignMethod,
  type VerifiedDevice,
  type VerifyOptions,
} from './protocol/mqtt-auth.js';

export { DeviceRegistry, generateSecret, RegistryError, type DeviceRecord, type ProductRecord } from './cloud/device-registry.js';

export { startBroker, type BrokerHandle, type BrokerOptions, type ServiceCredential } from './cloud/broker.js';

export {
  connectOtaCloud,
  connectOtaDevice,
  OtaMqttError,
  type CloudClientOptions,
  type DeviceClientOptions,
  type DeviceRef,
  type OtaCloudClient,
  type OtaDeviceClient,
} from './device/mqtt-link.js';

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

export {
  coapDownload,
  decodeBlockOption,
  encodeBlockOption,
  startCoapFileServer,
  type BlockOption,
  type CoapDownloadOptions,
  type CoapFileServerHandle,
  type CoapFileServerOptions,
} from './device/coap-download.js';

export {
  connectOtaDeviceCoap,
  createCoapNoticeServer,
  OtaCoapError,
  type CoapDeviceClientOptions,
  type CoapNoticeServer,
  type CoapNoticeServerOptions,
  type OtaCoapDeviceClient,
} from './device/coap-link.js';

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

export {
  createOtaService,
  OtaServiceError,
  type DownloadProtocol,
  type OtaService,
  type OtaServiceErrorCode,
  type OtaServiceEvent,
  type OtaServiceOptions,
  type OtaServiceStatus,
} from './device/ota-service.js';

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

export { startOtaCloud, type CloudEvent, type OtaCloud, type OtaCloudOptions } from './cloud/cloud.js';
export { runOtaDemo, type DemoMode, type DemoOptions, type DemoSummary } from './demo.js';
