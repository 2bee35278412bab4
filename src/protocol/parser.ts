/**
 * Byte-level frame parser with no I/O: feed it chunks as they arrive, it calls back once per complete
 * frame. A frame may be split at any byte. The length prefix is checked against `maxFrameSize` before
 * any body buffer is allocated, so a hostile length cannot make us allocate gigabytes.
 *
 * After an error the parser is poisoned: the connection must be closed (the error says why).
 */
import { MessagingError } from './errors.ts';
import { decodeFrameBody, frameTypeName, FrameType, type Frame } from './frames.ts';

const enum State {
  /** Reading the 4-byte length prefix (possibly one byte at a time). */
  Length,
  /** Reading the body of known length into `pending`. */
  Body,
  /** A previous error made the stream unparseable. */
  Failed,
}

// A table indexed by the type byte: a plain load per frame instead of a Set lookup.
const KNOWN_TYPES = new Uint8Array(256);
for (const code of Object.values(FrameType)) KNOWN_TYPES[code] = 1;

export class FrameParser {
  private state = State.Length;
  private lengthBytes = 0;
  private length = 0;
  private pending: Uint8Array | undefined;
  private filled = 0;
  /** Total bytes consumed, for error messages. */
  private offset = 0;

  constructor(
    private readonly maxFrameSize: number,
    private readonly onFrame: (frame: Frame) => void,
  ) {}

  /** Consumes a chunk; throws a fatal MessagingError on malformed input. */
  push(chunk: Uint8Array): void {
    if (this.state === State.Failed) throw new MessagingError('PROTOCOL_ERROR', 'parser already failed');
    // Work on a plain Uint8Array view: Node's Buffer#subarray is several times slower than the
    // built-in one, and every frame taken out of the chunk is a subarray.
    if (chunk.constructor !== Uint8Array)
      chunk = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.state === State.Length) {
        // Fast path: a whole frame lies inside this chunk — decode it as a view, no copy.
        if (this.lengthBytes === 0 && n - i >= 4) {
          const len =
            ((chunk[i]! << 24) | (chunk[i + 1]! << 16) | (chunk[i + 2]! << 8) | chunk[i + 3]!) >>> 0;
          this.checkLength(len, chunk, i);
          if (n - i - 4 >= len) {
            this.emit(chunk, i + 4, i + 4 + len);
            i += 4 + len;
            this.offset += 4 + len;
            continue;
          }
          this.startBody(len);
          i += 4;
          this.offset += 4;
          continue;
        }
        this.length = ((this.length << 8) | chunk[i]!) >>> 0;
        this.lengthBytes++;
        i++;
        this.offset++;
        if (this.lengthBytes === 4) {
          this.checkLength(this.length, chunk, i - 4);
          this.startBody(this.length);
        }
      } else {
        const pending = this.pending!;
        const take = Math.min(pending.length - this.filled, n - i);
        pending.set(chunk.subarray(i, i + take), this.filled);
        this.filled += take;
        i += take;
        this.offset += take;
        if (this.filled === pending.length) {
          this.pending = undefined;
          this.state = State.Length;
          this.lengthBytes = 0;
          this.length = 0;
          this.emit(pending, 0, pending.length);
        }
      }
    }
  }

  /** True when no partial frame is buffered (used to tell a truncated stream at close). */
  get idle(): boolean {
    return this.state === State.Length && this.lengthBytes === 0;
  }

  /** Bytes of a partial frame currently held. */
  get bufferedBytes(): number {
    return this.state === State.Body ? this.filled + 4 : this.lengthBytes;
  }

  private startBody(len: number): void {
    this.pending = new Uint8Array(len);
    this.filled = 0;
    this.state = State.Body;
  }

  private checkLength(len: number, chunk: Uint8Array, at: number): void {
    if (len === 0) {
      this.fail(new MessagingError('PROTOCOL_ERROR', `zero-length frame at stream offset ${this.offset}`));
    }
    if (len > this.maxFrameSize) {
      const prefix = Array.from(chunk.subarray(at, at + 5), (b) => b.toString(16).padStart(2, '0')).join(' ');
      this.fail(
        new MessagingError(
          'FRAME_TOO_LARGE',
          `frame length ${len} exceeds the maximum of ${this.maxFrameSize} bytes (stream offset ${this.offset}, bytes: ${prefix})`,
        ),
      );
    }
  }

  /** Decodes the frame at `start..end` of `bytes` (type byte first) in place. */
  private emit(bytes: Uint8Array, start: number, end: number): void {
    const type = bytes[start]!;
    if (KNOWN_TYPES[type] === 0) {
      this.fail(
        new MessagingError(
          'UNKNOWN_FRAME_TYPE',
          `unknown frame type 0x${type.toString(16).padStart(2, '0')} at stream offset ${this.offset}`,
        ),
      );
    }
    let frame: Frame;
    try {
      frame = decodeFrameBody(type, bytes, start + 1, end);
    } catch (err) {
      this.fail(
        err instanceof MessagingError
          ? err
          : new MessagingError('PROTOCOL_ERROR', `cannot decode ${frameTypeName(type)} frame`, {
              cause: err,
            }),
      );
    }
    this.onFrame(frame);
  }

  private fail(err: MessagingError): never {
    this.state = State.Failed;
    this.pending = undefined;
    throw err;
  }
}
