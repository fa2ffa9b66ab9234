// An Aliyun-shaped upgrade notice (every field set), shared by the message tests and the notice fuzz.
import type { UpgradeInfo } from '../../src/protocol/messages.js';

export const SHA = 'a'.repeat(64);
export const MD5 = '93230c3bde425a9d7984a594ac55ab12';

export const baseUpgrade: UpgradeInfo = {
  id: '1626969597470',
  size: 432945,
  version: '2.0.0',
  url: 'https://ota.example.test/fw/nopoll_0.4.4.tar.gz?Expires=1502955804&Signature=abc',
  signMethod: 'SHA256',
  sign: SHA,
  md5: MD5,
  isDiff: 1,
  splitSize: 4096,
  diffVersion: '1.0.0',
  digestsign: Buffer.alloc(256, 7).toString('base64'),
  module: 'MCU',
  extData: { key1: 'value1', _package_udi: '{"ota_notice":"fix"}' },
};
