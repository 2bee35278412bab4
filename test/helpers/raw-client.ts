/**
 * A bare-bones protocol client over a real TCP socket, for server tests that must send exactly the
 * bytes they choose (bad frames, slow reads) — the SDK would refuse to.
 */
import { connect, type Socket } from 'node:net';
import {
  encodeControl,
  FrameParser,
  FrameType,
  MessagingError,
  type Frame,
} from '../../src/protocol/index.ts';

export class RawClient {
  readonly frames: Frame[] = [];
  closed = false;
  parseError: MessagingError | undefined;
  private waiters: Array<() => void> = [];
  private readonly parser = new FrameParser(64 * 1024 * 1024, (f) => {
    this.frames.push(
      f.type === FrameType.MSG || f.type === FrameType.PUB ? { ...f, payload: f.payload.slice() } : f,
    );
    this.wake();
  });

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      try {
        this.parser.push(chunk);
      } catch (err) {
        this.parseError = err as MessagingError;
      }
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Connects and completes the handshake, saying protocol `version` in HELLO. */
  static async ready(port: number, version = 1): Promise<RawClient> {
    const client = await RawClient.connect(port);
    client.write(encodeControl(FrameType.HELLO, 1, { version, client: 'raw-test' }));
    await client.next((f) => f.type === FrameType.WELCOME);
    return client;
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Waits for the first received frame matching `pred` (consumed from the list). */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.closed)
        throw new Error(`connection closed while waiting; frames seen: ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for a frame; frames seen: ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the next ERR frame and returns its body. */
  async error(timeoutMs = 5000): Promise<{ reqId: number; code: string; message: string }> {
    const f = await this.next((x) => x.type === FrameType.ERR, timeoutMs);
    if (f.type !== FrameType.ERR) throw new Error('unreachable');
    return { reqId: f.reqId, code: String(f.body.code), message: String(f.body.message) };
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }
}
