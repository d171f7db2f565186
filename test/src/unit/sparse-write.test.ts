import { randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { HOLE_BLOCK, writeChunk } from '@relayer/agent-receiver';
import { closeAll, tmpDir } from '../support/util.js';

/** `blocks` blocks of HOLE_BLOCK bytes: 'z' all zeros, 'd' random data, 'e' zeros but for one byte at the end. */
function pattern(blocks: string): Buffer {
  return Buffer.concat([...blocks].map((b) => {
    if (b === 'd') return randomBytes(HOLE_BLOCK);
    const z = Buffer.alloc(HOLE_BLOCK);
    if (b === 'e') z[HOLE_BLOCK - 1] = 7;
    return z;
  }));
}

describe('writeChunk: a partial written in order, all-zero blocks of a sparse source left as holes', () => {
  afterEach(closeAll);

  it('whatever the chunk boundaries, the file holds exactly the bytes sent and its size is their end', async () => {
    const dir = await tmpDir('relay-sparse-');
    // Zero runs at the start, the middle and the end; chunk sizes that cut blocks at odd places.
    const cases: Array<[string, number[]]> = [
      ['zzzdzzzd', [HOLE_BLOCK * 8]],
      ['dzzzzzzz', [1000, HOLE_BLOCK * 2 + 5, HOLE_BLOCK * 6 - 1005]],
      ['zzezzzdz', [HOLE_BLOCK - 1, 1, HOLE_BLOCK * 3 + 17, HOLE_BLOCK * 4 - 17]],
      ['zzzzzzzz', [3 * HOLE_BLOCK + 1, 5 * HOLE_BLOCK - 1]],
    ];
    for (const [i, [blocks, chunks]] of cases.entries()) {
      const bytes = pattern(blocks);
      expect(chunks.reduce((a, b) => a + b, 0)).to.equal(bytes.length);
      const file = path.join(dir, `case${i}`);
      const fh = await open(file, 'w+');
      let at = 0;
      let stored = 0;
      for (const n of chunks) {
        stored += await writeChunk(fh, bytes.subarray(at, at + n), at, true);
        at += n;
        expect((await fh.stat()).size, `${blocks}: size after the chunk ending at ${at}`).to.equal(at);
      }
      await fh.close();
      expect((await readFile(file)).equals(bytes), blocks).to.equal(true);
      const dataBlocks = [...blocks].filter((b) => b !== 'z').length;
      // What was written: the data blocks, plus at most the partial blocks each chunk boundary cuts.
      expect(stored, blocks).to.be.at.least(dataBlocks * HOLE_BLOCK - chunks.length * HOLE_BLOCK);
      expect(stored, blocks).to.be.at.most((dataBlocks + chunks.length) * HOLE_BLOCK);
      if (blocks === 'zzzzzzzz') expect((await stat(file)).blocks, 'all holes').to.equal(0);
    }
  });

  it('without holes every byte is written, zeros too', async () => {
    const dir = await tmpDir('relay-sparse-');
    const fh = await open(path.join(dir, 'dense'), 'w+');
    const stored = await writeChunk(fh, Buffer.alloc(4 * HOLE_BLOCK), 0, false);
    const st = await fh.stat();
    await fh.close();
    expect(stored).to.equal(4 * HOLE_BLOCK);
    expect(st.blocks * 512).to.be.at.least(4 * HOLE_BLOCK);
  });
});
