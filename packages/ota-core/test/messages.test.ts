import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  buildInformMessage,
  buildProgressMessage,
  buildUpgradeMessage,
  MessageError,
  OtaStep,
  parseInformMessage,
  parseProgressMessage,
  parseUpgradeMessage,
  type UpgradeInfo,
} from '../src/protocol/messages.js';
import { informTopic, otaTopicFilter, parseOtaTopic, progressTopic, TopicError, upgradeTopic } from '../src/protocol/topics.js';
import { baseUpgrade, MD5, SHA } from './helpers/sample-notices.js';



describe('topics', () => {
  it('builds and parses the three OTA topics', () => {
    expect(informTopic('a1B2c3', 'dev-01')).toBe('/ota/device/inform/a1B2c3/dev-01');
    expect(upgradeTopic('a1B2c3', 'dev-01')).toBe('/ota/device/upgrade/a1B2c3/dev-01');
    expect(progressTopic('a1B2c3', 'dev-01')).toBe('/ota/device/progress/a1B2c3/dev-01');
    expect(parseOtaTopic('/ota/device/progress/a1B2c3/dev-01')).toEqual({ kind: 'progress', productKey: 'a1B2c3', deviceName: 'dev-01' });
    expect(otaTopicFilter('inform')).toBe('/ota/device/inform/+/+');
  });

  it('rejects foreign, wildcard and injected topics', () => {
    for (const t of ['/ota/device/upgrade/+/dev-01', '/ota/device/upgrade/pk/#', '/ota/device/reboot/pk/dev-01', 'ota/device/upgrade/pk/dev-01', '/ota/device/upgrade/pk/dev-01/x', '/ota/device/upgrade/p/k/dev']) {
      expect(parseOtaTopic(t), t).toBeNull();
    }
    expect(() => upgradeTopic('pk', 'a/b/c')).toThrow(TopicError);
    expect(() => upgradeTopic('p+k', 'dev-01')).toThrow(TopicError);
    expect(() => informTopic('pk', 'abc')).toThrow(TopicError); // deviceName needs 4..32 chars
  });
});

describe('inform / progress messages', () => {
  it('round-trips inform', () => {
    const m = { id: '123', version: '1.0.1', module: 'MCU' };
    expect(parseInformMessage(buildInformMessage(m))).toEqual(m);
    expect(JSON.parse(buildInformMessage({ id: '7', version: '1.0' }))).toEqual({ id: '7', params: { version: '1.0' } });
  });

  it('accepts the Aliyun sample and a numeric id (C SDK style)', () => {
    expect(parseInformMessage('{"id":"123","params":{"version":"1.0.1","module":"MCU"}}')).toEqual({ id: '123', version: '1.0.1', module: 'MCU' });
    expect(parseProgressMessage(Buffer.from('{"id":5,"params":{"step":"-3","desc":"check failed"}}'))).toEqual({ id: '5', step: OtaStep.VERIFY_FAILED, desc: 'check failed' });
  });

  it('round-trips progress with step carried as a string', () => {
    for (const step of [0, 1, 50, 100, -1, -2, -3, -4]) {
      const wire = buildProgressMessage({ id: '9', step, desc: 'x' });
      expect(JSON.parse(wire).params.step).toBe(String(step));
      expect(parseProgressMessage(wire)).toEqual({ id: '9', step, desc: 'x' });
    }
  });

  it('rejects malformed inform/progress', () => {
    const bad = [
      'not json',
      '[]',
      '{"id":"1"}',
      '{"id":"1","params":{"version":"garbage!"}}',
      '{"id":"-1","params":{"version":"1.0"}}',
      '{"id":"4294967296","params":{"version":"1.0"}}',
      '{"id":"01","params":{"version":"1.0"}}',
      '{"id":1.5,"params":{"version":"1.0"}}',
      '{"id":"1","params":{"version":"1.0","module":"a/b"}}',
      '{"id":"1","params":"x"}',
    ];
    for (const b of bad) expect(() => parseInformMessage(b), b).toThrow(MessageError);
    const badProgress = [
      '{"id":"1","params":{"step":"101","desc":""}}',
      '{"id":"1","params":{"step":"-5","desc":""}}',
      '{"id":"1","params":{"step":"5.5","desc":""}}',
      '{"id":"1","params":{"step":"ten","desc":""}}',
      '{"id":"1","params":{"step":"1","desc":7}}',
      `{"id":"1","params":{"step":"1","desc":"${'x'.repeat(2000)}"}}`,
    ];
    for (const b of badProgress) expect(() => parseProgressMessage(b), b).toThrow(MessageError);
    expect(() => parseInformMessage('{"id":"1","params":{"version":"1.0","pad":"' + 'x'.repeat(20000) + '"}}')).toThrow(/exceeds/);
    expect(() => parseInformMessage(new Uint8Array([0x7b, 0xff, 0x7d]))).toThrow(/UTF-8/);
  });
});

describe('upgrade message', () => {
  it('round-trips every field', () => {
    const wire = buildUpgradeMessage(baseUpgrade);
    const obj = JSON.parse(wire);
    expect(obj.code).toBe('1000');
    expect(obj.message).toBe('success');
    expect(obj.id).toBe(1626969597470);
    expect(parseUpgradeMessage(wire)).toEqual(baseUpgrade);
  });

  it('parses the documented Aliyun shape, normalising signMethod and hex case', () => {
    const wire = JSON.stringify({
      code: '1000',
      data: { size: 432945, version: '2.0.0', isDiff: 1, url: 'https://x.test/a.bin', md5: MD5.toUpperCase(), sign: MD5.toUpperCase(), signMethod: 'MD5', module: 'MCU', dProtocol: 'https' },
      id: 1507707025,
      message: 'success',
    });
    const info = parseUpgradeMessage(wire);
    expect(info.signMethod).toBe('Md5');
    expect(info.sign).toBe(MD5);
    expect(info.id).toBe('1507707025');
    expect(parseUpgradeMessage(wire.replace('"MD5"', '"Md5"')).signMethod).toBe('Md5');
  });

  it('accepts the old protocol (md5 only) and AliOS "splictSize"', () => {
    const info = parseUpgradeMessage(JSON.stringify({ code: '1000', message: 'success', id: 1, data: { size: 10, version: '1.1', url: 'http://h.test/f', md5: MD5, splictSize: 4 } }));
    expect(info).toMatchObject({ signMethod: 'Md5', sign: MD5, splitSize: 4, isDiff: 0 });
  });

  it('round-trips random valid upgrade infos', () => {
    const arb = fc.record({
      id: fc.nat({ max: 2 ** 50 }).map(String),
      size: fc.integer({ min: 1, max: 1 << 28 }),
      version: fc.array(fc.nat(999), { minLength: 1, maxLength: 4 }).map((a) => a.join('.')),
      sha: fc.boolean(),
      digestLen: fc.constantFrom(128, 256, 512),
      isDiff: fc.constantFrom<0 | 1>(0, 1),
    });
    fc.assert(
      fc.property(arb, (r) => {
        const info: UpgradeInfo = {
          id: r.id,
          size: r.size,
          version: r.version,
          url: `https://cdn.test/fw/${r.version}.bin`,
          signMethod: r.sha ? 'SHA256' : 'Md5',
          sign: r.sha ? SHA : MD5,
          isDiff: r.isDiff,
          digestsign: Buffer.alloc(r.digestLen, 1).toString('base64'),
        };
        expect(parseUpgradeMessage(buildUpgradeMessage(info))).toEqual(info);
      }),
      { numRuns: 50 },
    );
  });

  it('rejects malformed or hostile upgrade messages', () => {
    const mk = (patch: Record<string, unknown>, top: Record<string, unknown> = {}) =>
      JSON.stringify({ code: '1000', message: 'success', id: 1, ...top, data: { size: 10, version: '2.0', url: 'https://h.test/f', signMethod: 'SHA256', sign: SHA, ...patch } });
    expect(() => parseUpgradeMessage(mk({}))).not.toThrow();
    // The split size is the package header's business, not capped at the file size.
    expect(parseUpgradeMessage(mk({ splitSize: 65536, isDiff: 1 })).splitSize).toBe(65536);
    expect(parseUpgradeMessage(mk({ splictSize: 1 << 24, isDiff: 1 })).splitSize).toBe(1 << 24);
    const cases: Array<[string, string]> = [
      ['code', mk({}, { code: '9201' })],
      ['message', mk({}, { message: 'fail' })],
      ['size 0', mk({ size: 0 })],
      ['size negative', mk({ size: -5 })],
      ['size float', mk({ size: 1.5 })],
      ['size string', mk({ size: '10' })],
      ['size too big', mk({ size: 2 ** 40 })],
      ['version', mk({ version: 'latest' })],
      ['url scheme', mk({ url: 'file:///etc/passwd' })],
      ['url js', mk({ url: 'javascript:alert(1)' })],
      ['url creds', mk({ url: 'https://u:p@h.test/f' })],
      ['url relative', mk({ url: '/fw.bin' })],
      ['url space', mk({ url: 'https://h.test/a b' })],
      ['url long', mk({ url: 'https://h.test/' + 'a'.repeat(3000) })],
      ['sign short', mk({ sign: 'abc' })],
      ['sign non-hex', mk({ sign: 'g'.repeat(64) })],
      ['sign md5 len for sha', mk({ sign: MD5 })],
      ['signMethod', mk({ signMethod: 'CRC32' })],
      ['md5 mismatch', mk({ signMethod: 'Md5', sign: MD5, md5: 'b'.repeat(32) })],
      ['no digest', mk({ signMethod: undefined, sign: undefined })],
      ['isDiff', mk({ isDiff: 2 })],
      ['isDiff bool', mk({ isDiff: true })],
      ['splitSize zero', mk({ splitSize: 0 })],
      ['splitSize beyond the package format', mk({ splitSize: (1 << 24) + 1 })],
      ['splitSize fraction', mk({ splitSize: 4096.5 })],
      ['split disagree', mk({ splitSize: 4, splictSize: 5 })],
      ['digestsign not base64', mk({ digestsign: '!!!!' })],
      ['digestsign too short', mk({ digestsign: Buffer.alloc(16).toString('base64') })],
      ['diffVersion', mk({ diffVersion: 'x y' })],
      ['extData type', mk({ extData: { a: 1 } })],
      ['extData array', mk({ extData: [] })],
      ['data missing', JSON.stringify({ code: '1000', message: 'success', id: 1 })],
      ['id negative', mk({}, { id: -1 })],
    ];
    for (const [name, wire] of cases) expect(() => parseUpgradeMessage(wire), name).toThrow(MessageError);
    expect(() => parseUpgradeMessage(mk({ size: 1000 }), { maxSize: 999 })).toThrow(MessageError);
    expect(() => parseUpgradeMessage(mk({ url: 'coap://h.test/f' }), { allowedProtocols: ['coap:'] })).not.toThrow();
  });

  it('a notice that names a device must name the receiving one', () => {
    const me = { productKey: 'a1Prod', deviceName: 'dev-0001' };
    const mk = (top: Record<string, unknown>, data: Record<string, unknown> = {}) =>
      JSON.stringify({ code: '1000', message: 'success', id: 1, ...top, data: { size: 10, version: '2.0', url: 'https://h.test/f', signMethod: 'SHA256', sign: SHA, ...data } });
    expect(() => parseUpgradeMessage(mk({}), { device: me })).not.toThrow(); // Aliyun's notices name no device
    expect(() => parseUpgradeMessage(mk(me, me), { device: me })).not.toThrow();
    expect(() => parseUpgradeMessage(mk({ deviceName: 'dev-0002' }), { device: me })).toThrow(/^upgrade\.deviceName "dev-0002" is not this device \(a1Prod\/dev-0001\)$/);
    expect(() => parseUpgradeMessage(mk({}, { productKey: 'a1Other' }), { device: me })).toThrow(/^upgrade\.data\.productKey "a1Other" is not this device/);
    expect(() => parseUpgradeMessage(mk({}, { deviceName: ['dev-0001'] }), { device: me })).toThrow(MessageError);
    expect(() => parseUpgradeMessage(mk({ deviceName: 'dev-0002' }))).not.toThrow(); // without `device`, not checked
  });

  it('refuses to build what it would not parse', () => {
    expect(() => buildUpgradeMessage({ ...baseUpgrade, size: -1 })).toThrow(MessageError);
    expect(() => buildUpgradeMessage({ ...baseUpgrade, sign: 'xyz' })).toThrow(MessageError);
  });
});
