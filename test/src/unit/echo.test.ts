import { expect } from 'chai';
import { ECHO_MAX, elide, elideQuoted, quoted, quoteName } from '@relayer/common';

describe('echo: a value the user typed comes back bounded', () => {
  it('keeps a short value whole and elides a long one in the middle, saying how much went', () => {
    expect(elide('short')).to.equal('short');
    expect(elide('x'.repeat(ECHO_MAX))).to.equal('x'.repeat(ECHO_MAX));
    const long = `${'a'.repeat(10_000)}MIDDLE${'z'.repeat(10_000)}`;
    const e = elide(long);
    expect(e.length).to.be.at.most(ECHO_MAX);
    expect(e.startsWith('aaaa')).to.equal(true);
    expect(e.endsWith('zzzz')).to.equal(true);
    expect(e).to.match(/…\(\d+ more\)…/).and.not.contain('MIDDLE');
    const more = Number(/\((\d+) more\)/.exec(e)![1]);
    expect(e.length - `…(${more} more)…`.length + more).to.equal(long.length);
  });

  it('never splits a character made of two UTF-16 units', () => {
    const e = elide('😀'.repeat(500), 50);
    expect(e).to.not.match(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  });

  it('bounds every single-quoted value of a message (how commander echoes an argument), and quoted names', () => {
    const msg = elideQuoted(`error: option '--bwlimit <rate>' argument '${'Q'.repeat(5000)}' is invalid.`);
    expect(msg.length).to.be.below(400);
    expect(msg).to.contain("option '--bwlimit <rate>'");
    expect(quoted('a'.repeat(5000)).length).to.be.at.most(ECHO_MAX + 2);
    expect(quoteName('b'.repeat(5000)).length).to.be.at.most(ECHO_MAX + 2);
  });
});
