/** Assertions on coded errors. */
import { expect } from 'chai';
import { RelayError } from '@relayer/common';

/** Asserts that fn throws a RelayError with this code. */
export function expectThrowsCode(fn: () => unknown, code: string): RelayError {
  try {
    fn();
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(RelayError);
    expect((err as RelayError).code).to.equal(code);
    return err as RelayError;
  }
  return expect.fail(`expected a RelayError ${code}, nothing was thrown`);
}

/** Asserts that the promise rejects with a RelayError with this code. */
export async function expectRejectsCode(p: Promise<unknown>, code: string): Promise<RelayError> {
  try {
    await p;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(RelayError);
    expect((err as RelayError).code).to.equal(code);
    return err as RelayError;
  }
  return expect.fail(`expected a rejection with ${code}, it resolved`);
}
