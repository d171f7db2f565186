import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { checkName, ErrorCode, inspectInside, PARTIAL_DIR, resolveInside, type FolderChecks } from '@relayer/common';
import { closeAll, expectRejectsCode, expectThrowsCode, tmpDir } from '../support/util.js';

describe('path guard: a name from the wire becomes a path only through checkName/resolveInside', () => {
  afterEach(closeAll);

  describe('checkName (syntax)', () => {
    it('accepts a plain file name and returns it as one segment', () => {
      expect(checkName('report.pdf')).to.deep.equal(['report.pdf']);
    });

    it('accepts sub-folders and returns their segments', () => {
      expect(checkName('builds/2024/app.tar.gz')).to.deep.equal(['builds', '2024', 'app.tar.gz']);
    });

    it('accepts dot files, names that merely start with dots, spaces and non-ASCII characters', () => {
      for (const name of ['\u00a0nbsp', 'caf\u00e9', '\u2065reserved', '\u2070sup', '\u202Fnarrow', '.env', '..hidden', 'a..b', 'my file.txt', 'données/été.bin', `${PARTIAL_DIR}x`, `sub/${PARTIAL_DIR}/x`]) {
        expect(checkName(name), name).to.be.an('array').that.is.not.empty;
      }
    });

    const refused: Array<[string, string]> = [
      ['an empty name', ''],
      ['an absolute path', '/etc/passwd'],
      ['a Windows drive path', 'C:/Windows/x'],
      ['a Windows drive-relative path', 'c:x'],
      ['a lone ..', '..'],
      ['a leading ..', '../escape.bin'],
      ['a .. in the middle', 'a/../../b'],
      ['a trailing ..', 'a/..'],
      ['a NUL byte', 'a\u0000b'],
      ['a newline', 'line\nbreak'],
      ['a carriage return', 'x\r'],
      ['a tab', 'a\tb'],
      ['an escape character', 'a\u001b[31m'],
      ['DEL', 'a\u007f'],
      ['a C1 control (8-bit CSI, drives terminals)', 'a\u009b31mb'],
      ['the first C1 control (U+0080)', 'a\u0080'],
      ['the last C1 control (U+009F)', 'a\u009f'],
      ['a right-to-left override (U+202E)', 'invoice\u202Efdp.exe'],
      ['a left-to-right embedding (U+202A)', 'a\u202Ab'],
      ['a pop directional formatting (U+202C)', 'a\u202Cb'],
      ['a left-to-right isolate (U+2066)', 'a\u2066b'],
      ['a pop directional isolate (U+2069)', 'sub\u2069/x'],
      ['a backslash', 'a\\b'],
      ['a backslash-style climb', '..\\..\\x'],
      ['an empty segment (double slash)', 'a//b'],
      ['a trailing slash', 'a/'],
      ['a "." segment', './a'],
      ['a "." in the middle', 'a/./b'],
      ['the partial folder itself', PARTIAL_DIR],
      ['a path into the partial folder', `${PARTIAL_DIR}/x`],
      ['a segment over 255 bytes', `${'é'.repeat(128)}.bin`],
      ['a name over 4096 bytes', Array.from({ length: 20 }, () => 'a'.repeat(250)).join('/')],
    ];
    for (const [what, name] of refused) {
      it(`refuses ${what} with BAD_NAME`, () => {
        const err = expectThrowsCode(() => checkName(name), ErrorCode.BAD_NAME);
        expect(err.message).to.match(/^refused name/);
      });
    }

    it('escapes C1 and bidi characters in the refusal message, so printing it cannot drive a terminal', () => {
      const err = expectThrowsCode(() => checkName('a\u009b31m\u202eb'), ErrorCode.BAD_NAME);
      expect(err.message).to.not.match(/[\u0080-\u009f\u202a-\u202e]/);
      expect(err.message).to.contain('\\u009b').and.to.contain('\\u202e');
    });

    it('refuses a value that is not a string with BAD_NAME', () => {
      expectThrowsCode(() => checkName(42 as unknown as string), ErrorCode.BAD_NAME);
    });
  });

  describe('inspectInside with folder checks shared by a batch of names', () => {
    it('looks at each folder once, still refuses each name through a symlinked folder by its own name, and reports what exists', async () => {
      const root = await tmpDir();
      const outside = await tmpDir();
      await mkdir(path.join(root, 'real'));
      await writeFile(path.join(root, 'real', 'there.bin'), 'abc');
      await symlink(outside, path.join(root, 'link'));
      const folders: FolderChecks = new Map();
      const there = await inspectInside(root, 'real/there.bin', folders);
      expect(there.path).to.equal(path.join(root, 'real', 'there.bin'));
      expect(there.existing?.size).to.equal(3);
      expect((await inspectInside(root, 'real/new.bin', folders)).existing).to.equal(undefined);
      for (const name of ['link/a.bin', 'link/b.bin']) {
        const err = await expectRejectsCode(inspectInside(root, name, folders), ErrorCode.BAD_NAME);
        expect(err.message).to.contain(name);
      }
      expect([...folders.keys()].sort()).to.deep.equal([path.join(root, 'link'), path.join(root, 'real')]);
      await expectRejectsCode(inspectInside(root, 'real', folders), ErrorCode.BAD_NAME);
    });
  });

  describe('resolveInside (on disk)', () => {
    it('returns the absolute path under the root for a name whose folders do not exist yet', async () => {
      const root = await tmpDir();
      expect(await resolveInside(root, 'new/deeper/file.bin')).to.equal(path.join(root, 'new', 'deeper', 'file.bin'));
    });

    it('resolves a relative root to an absolute path', async () => {
      const root = await tmpDir();
      const rel = path.relative(process.cwd(), root);
      expect(await resolveInside(rel, 'f')).to.equal(path.join(root, 'f'));
    });

    it('accepts an existing real sub-folder and an existing regular file as the final name', async () => {
      const root = await tmpDir();
      await mkdir(path.join(root, 'sub'));
      await writeFile(path.join(root, 'sub', 'old.bin'), 'x');
      expect(await resolveInside(root, 'sub/old.bin')).to.equal(path.join(root, 'sub', 'old.bin'));
    });

    it('refuses a name that passes through a symlink inside the root, even one pointing inside it', async () => {
      const root = await tmpDir();
      const outside = await tmpDir();
      await mkdir(path.join(root, 'real'));
      await symlink(outside, path.join(root, 'out'));
      await symlink(path.join(root, 'real'), path.join(root, 'alias'));
      await expectRejectsCode(resolveInside(root, 'out/x.bin'), ErrorCode.BAD_NAME);
      await expectRejectsCode(resolveInside(root, 'alias/x.bin'), ErrorCode.BAD_NAME);
    });

    it('refuses a symlink as the final name', async () => {
      const root = await tmpDir();
      const outside = await tmpDir();
      await writeFile(path.join(outside, 'target'), 'x');
      await symlink(path.join(outside, 'target'), path.join(root, 'link.bin'));
      await expectRejectsCode(resolveInside(root, 'link.bin'), ErrorCode.BAD_NAME);
    });

    it('refuses a dangling symlink as a folder or as the final name', async () => {
      const root = await tmpDir();
      await symlink(path.join(root, 'nowhere'), path.join(root, 'dangling'));
      await expectRejectsCode(resolveInside(root, 'dangling'), ErrorCode.BAD_NAME);
      await expectRejectsCode(resolveInside(root, 'dangling/x'), ErrorCode.BAD_NAME);
    });

    it('refuses an existing directory as the final name', async () => {
      const root = await tmpDir();
      await mkdir(path.join(root, 'a', 'b'), { recursive: true });
      const err = await expectRejectsCode(resolveInside(root, 'a/b'), ErrorCode.BAD_NAME);
      expect(err.message).to.contain('existing directory');
    });

    it('refuses a regular file used as a folder', async () => {
      const root = await tmpDir();
      await writeFile(path.join(root, 'file'), 'x');
      const err = await expectRejectsCode(resolveInside(root, 'file/x.bin'), ErrorCode.BAD_NAME);
      expect(err.message).to.contain('not a directory');
    });

    it('applies the syntax checks before touching the disk', async () => {
      const root = await tmpDir();
      for (const name of ['../x', '/abs', `${PARTIAL_DIR}/k.part`, 'a\u0000b', 'a\\b', '']) {
        await expectRejectsCode(resolveInside(root, name), ErrorCode.BAD_NAME);
      }
    });
  });
});
