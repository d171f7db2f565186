/**
 * Chunk bytes that carry room for their own message envelope. The msgpack envelope of a chunk request is
 * ~100 bytes around ~1 MiB of file bytes; packing it normally copies the megabyte into a new buffer. A
 * buffer from `allocFramable` has spare bytes before and after the view it returns, so the parser's Encoder
 * can write the envelope around the bytes in place and send the file bytes without copying them.
 *
 * The spare bytes belong to the encoder: the holder of a framable buffer must not share its memory with
 * anything else, and may reuse it only once the message built in it has been written out (for a chunk:
 * once its ack came back).
 */

/** Room before the bytes: the packet's fields that precede the chunk plus its bin32 header. */
export const FRAME_HEADROOM = 256;
/** Room after the bytes: the packet's fields that follow the chunk (its ack id, namespace, options). */
export const FRAME_TAILROOM = 128;

const framable = new WeakSet<ArrayBufferLike>();

/** An uninitialised buffer of `length` bytes, with envelope room on both sides, in memory of its own. */
export function allocFramable(length: number): Buffer {
  const whole = Buffer.allocUnsafeSlow(FRAME_HEADROOM + length + FRAME_TAILROOM);
  framable.add(whole.buffer);
  return whole.subarray(FRAME_HEADROOM, FRAME_HEADROOM + length);
}

/**
 * The whole message [head | bytes | tail] built around `bytes` in their own memory, or undefined when they
 * are not framable or the envelope does not fit in the room around them.
 */
export function frameAround(bytes: Uint8Array, head: Uint8Array, tail: Uint8Array): Buffer | undefined {
  if (!framable.has(bytes.buffer)) return undefined;
  const start = bytes.byteOffset - head.length;
  const end = bytes.byteOffset + bytes.length + tail.length;
  if (start < 0 || end > bytes.buffer.byteLength) return undefined;
  const message = Buffer.from(bytes.buffer, start, end - start);
  message.set(head, 0);
  message.set(tail, head.length + bytes.length);
  return message;
}
