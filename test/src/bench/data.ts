/** The bench's source data: one big file of random bytes and a folder of small ones. */
import { randomFillSync } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Writes `size` random bytes to file; returns its path. */
export async function makePayload(file: string, size: number): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await open(file, 'w');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let pos = 0; pos < size; pos += buf.length) {
      randomFillSync(buf);
      await fh.write(buf, 0, Math.min(buf.length, size - pos), pos);
    }
  } finally {
    await fh.close();
  }
  return file;
}

/** `count` files of `size` random bytes in dir, named f00000.bin …; 64 written at a time. */
export async function makeSmallFiles(dir: string, count: number, size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const width = String(Math.max(count - 1, 0)).length;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await writeFile(path.join(dir, `f${String(i).padStart(width, '0')}.bin`), randomFillSync(Buffer.allocUnsafe(size)));
  };
  await Promise.all(Array.from({ length: 64 }, worker));
}
