import { expect } from 'chai';
import { ErrorCode, formatBytes, formatDuration, parseDuration, parseSize } from '@relayer/common';
import { expectThrowsCode } from '../support/util.js';

describe('units: sizes and durations as people write them', () => {
  describe('parseSize', () => {
    const cases: Array<[string, number]> = [
      ['0', 0],
      ['512', 512],
      ['5B', 5],
      ['1K', 1024],
      ['1k', 1024],
      ['1KiB', 1024],
      ['1KB', 1024],
      ['256K', 256 * 1024],
      ['1.5M', 1.5 * 1024 ** 2],
      ['10G', 10 * 1024 ** 3],
      ['2T', 2 * 1024 ** 4],
      [' 3 M ', 3 * 1024 ** 2],
    ];
    for (const [text, value] of cases) {
      it(`reads ${JSON.stringify(text)} as ${value} bytes`, () => {
        expect(parseSize(text)).to.equal(value);
      });
    }

    for (const bad of ['', ' ', 'abc', 'M', '-1', '-1K', '1X', '1.5.2', '1e3', '0x10', '10 G B x', '1P']) {
      it(`refuses ${JSON.stringify(bad)} with USAGE`, () => {
        const err = expectThrowsCode(() => parseSize(bad), ErrorCode.USAGE);
        expect(err.message).to.contain('not a size');
      });
    }

    it('refuses a size too large to count exactly with USAGE', () => {
      expectThrowsCode(() => parseSize('99999999999T'), ErrorCode.USAGE);
    });
  });

  describe('parseDuration', () => {
    const cases: Array<[string, number]> = [
      ['0', 0],
      ['250', 250],
      ['500ms', 500],
      ['5s', 5000],
      ['1.5s', 1500],
      ['10m', 600_000],
      ['24h', 86_400_000],
      ['2d', 172_800_000],
      [' 5S ', 5000],
    ];
    for (const [text, value] of cases) {
      it(`reads ${JSON.stringify(text)} as ${value} ms`, () => {
        expect(parseDuration(text)).to.equal(value);
      });
    }

    for (const bad of ['', 's', '-5s', '5x', '5 sec', '5min', '1h30m', 'soon']) {
      it(`refuses ${JSON.stringify(bad)} with USAGE`, () => {
        const err = expectThrowsCode(() => parseDuration(bad), ErrorCode.USAGE);
        expect(err.message).to.contain('not a duration');
      });
    }
  });

  describe('formatting', () => {
    it('formats byte counts with binary units', () => {
      expect(formatBytes(0)).to.equal('0 B');
      expect(formatBytes(1023)).to.equal('1023 B');
      expect(formatBytes(1024)).to.equal('1.00 KiB');
      expect(formatBytes(64 * 1024 ** 2)).to.equal('64.0 MiB');
    });

    it('formats durations for people', () => {
      expect(formatDuration(250)).to.equal('250ms');
      expect(formatDuration(1500)).to.equal('1.5s');
      expect(formatDuration(125_000)).to.equal('2m5s');
      expect(formatDuration(2 * 3_600_000 + 60_000)).to.equal('2h1m');
    });
  });
});
