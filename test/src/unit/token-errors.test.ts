import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import {
  createError, ErrorCode, fromWireError, isErrorCode, isRelayError, loadToken, loadTokens, RelayError, toRelayError, toWireError, tokenAccepted, tokensEqual,
} from '@relayer/common';
import { closeAll, expectThrowsCode, tmpDir } from '../support/util.js';

describe('token: where the shared secret comes from and how it is compared', () => {
  afterEach(closeAll);

  describe('tokensEqual', () => {
    it('is true only for the identical string', () => {
      expect(tokensEqual('s3cret', 's3cret')).to.equal(true);
      expect(tokensEqual('s3cret', 's3creT')).to.equal(false);
      expect(tokensEqual('s3cret', 's3cret ')).to.equal(false);
      expect(tokensEqual('s3cret', 's3cre')).to.equal(false);
      expect(tokensEqual('s3cret', '')).to.equal(false);
      expect(tokensEqual('s3cret', 'a much longer token than the expected one')).to.equal(false);
    });

    it('is false for anything that is not a string', () => {
      for (const v of [undefined, null, 0, {}, ['s3cret'], Buffer.from('s3cret')]) expect(tokensEqual('s3cret', v)).to.equal(false);
    });
  });

  describe('token rotation: a token file may list several tokens', () => {
    it('reads every token, one per line, ignoring blank lines and # comments; the first one is the one presented', async () => {
      const file = path.join(await tmpDir(), 'tokens');
      await writeFile(file, '# new token, presented by senders\n  new-one \n\n# old token, still accepted until every sender has the new one\nold-one\r\n');
      expect(loadTokens(file, 'env')).to.deep.equal(['new-one', 'old-one']);
      expect(loadToken(file, 'env')).to.equal('new-one');
    });

    it('the environment value gives exactly one token', () => {
      expect(loadTokens(undefined, ' env-token ')).to.deep.equal(['env-token']);
    });

    it('accepts any listed token and nothing else', () => {
      const accepted = ['new-one', 'old-one'];
      expect(tokenAccepted(accepted, 'new-one')).to.equal(true);
      expect(tokenAccepted(accepted, 'old-one')).to.equal(true);
      for (const v of ['', 'new-on', 'new-one ', 'NEW-ONE', undefined, 42, ['new-one']]) expect(tokenAccepted(accepted, v), String(v)).to.equal(false);
      expect(tokenAccepted([], 'anything')).to.equal(false);
    });

    it('never puts a token value in an error message', async () => {
      const file = path.join(await tmpDir(), 'tokens');
      await writeFile(file, 'secret-value-1\n#c\nsecret-value-2\n');
      const err = expectThrowsCode(() => loadTokens(path.join(path.dirname(file), 'missing'), 'secret-value-env'), ErrorCode.USAGE);
      expect(err.message).to.not.contain('secret-value');
    });
  });

  describe('loadToken', () => {
    it('reads the first line of the token file, trimmed, in preference to the environment', async () => {
      const file = path.join(await tmpDir(), 'token');
      await writeFile(file, '  from-file \nsecond line\n');
      expect(loadToken(file, 'from-env')).to.equal('from-file');
    });

    it('falls back to the environment value, trimmed', () => {
      expect(loadToken(undefined, ' from-env\n')).to.equal('from-env');
    });

    it('refuses a missing token, an empty token file and an unreadable token file with USAGE', async () => {
      const dir = await tmpDir();
      await writeFile(path.join(dir, 'empty'), '\n  \n# only a comment\n');
      expectThrowsCode(() => loadToken(undefined, undefined), ErrorCode.USAGE);
      expectThrowsCode(() => loadToken(undefined, '   '), ErrorCode.USAGE);
      expectThrowsCode(() => loadToken(path.join(dir, 'empty'), 'env'), ErrorCode.USAGE);
      expectThrowsCode(() => loadToken(path.join(dir, 'missing'), 'env'), ErrorCode.USAGE);
    });
  });
});

describe('errors: stable codes on the wire', () => {
  it('marks only transient codes as retryable', () => {
    for (const code of [ErrorCode.UNKNOWN_TRANSFER, ErrorCode.DISCONNECTED, ErrorCode.TIMEOUT, ErrorCode.IO]) {
      expect(createError(code, 'x').retryable, code).to.equal(true);
    }
    for (const code of [ErrorCode.AUTH, ErrorCode.BAD_NAME, ErrorCode.TOO_LARGE, ErrorCode.DISK_FULL, ErrorCode.CHECKSUM, ErrorCode.OFFSET, ErrorCode.PROTOCOL, ErrorCode.USAGE]) {
      expect(createError(code, 'x').retryable, code).to.equal(false);
    }
  });

  it('turns errors into wire errors: RelayErrors keep their code, ENOSPC/EDQUOT become DISK_FULL, the rest IO', () => {
    expect(toWireError(createError(ErrorCode.OFFSET, 'off'))).to.deep.equal({ code: 'OFFSET', message: 'off' });
    expect(toWireError(Object.assign(new Error('no space'), { code: 'ENOSPC' })).code).to.equal('DISK_FULL');
    expect(toWireError(Object.assign(new Error('quota'), { code: 'EDQUOT' })).code).to.equal('DISK_FULL');
    expect(toWireError(new Error('boom'))).to.deep.equal({ code: 'IO', message: 'boom' });
    expect(toWireError('weird').code).to.equal('IO');
  });

  it('a system error sent to a peer says what its errno code means, never the path or the system call', () => {
    const err = Object.assign(new Error("EMFILE: too many open files, open '/srv/inbox/.relay-partial/abc.part'"), {
      code: 'EMFILE', syscall: 'open', path: '/srv/inbox/.relay-partial/abc.part',
    });
    const wire = toWireError(err);
    expect(wire).to.deep.equal({ code: 'IO', message: 'too many open files' });
    expect(toRelayError(Object.assign(new Error('x /home/u/f'), { code: 'ENOENT', syscall: 'stat' }), ErrorCode.SOURCE))
      .to.include({ code: 'SOURCE', message: 'no such file or directory' });
    expect(toRelayError(Object.assign(new Error('odd'), { code: 'EWHATEVER', syscall: 'scandir' })).message).to.equal('I/O error (EWHATEVER)');
  });

  it('an unknown or malformed error from the wire becomes PROTOCOL', () => {
    expect(fromWireError({ code: 'ENOENT', message: 'raw' }).code).to.equal('PROTOCOL');
    expect(fromWireError({ code: 'NOT_A_CODE', message: 'x' }).message).to.contain('NOT_A_CODE');
    expect(fromWireError(null).code).to.equal('PROTOCOL');
    expect(fromWireError({ code: 'CHECKSUM' }).code).to.equal('PROTOCOL');
  });

  it('rebuilds a RelayError from a wire error', () => {
    const err = fromWireError({ code: ErrorCode.CHECKSUM, message: 'bad' });
    expect(err).to.be.instanceOf(RelayError);
    expect(isRelayError(err, ErrorCode.CHECKSUM)).to.equal(true);
    expect(isRelayError(err, ErrorCode.OFFSET)).to.equal(false);
    expect(err.message).to.equal('bad');
  });

  it('knows its codes', () => {
    expect(isErrorCode('AUTH')).to.equal(true);
    expect(isErrorCode('auth')).to.equal(false);
    expect(isErrorCode(undefined)).to.equal(false);
  });
});
