/** Why a package was refused; stable codes so callers (CLI, OTA service) can map them. */
export type PackageErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-version'
  | 'bad-header'
  | 'header-checksum'
  | 'limit-exceeded'
  | 'bad-chunk-table'
  | 'bad-record'
  | 'chunk-crc'
  | 'old-image-mismatch'
  | 'new-image-mismatch'
  | 'trailing-data'
  | 'payload-mismatch'
  | 'unsigned'
  | 'bad-signature'
  | 'security-counter';

/** Every rejection of an untrusted package goes through this one error type. */
export class PackageError extends Error {
  override readonly name = 'PackageError';
  constructor(
    readonly code: PackageErrorCode,
    message: string,
  ) {
    super(message);
  }
}
