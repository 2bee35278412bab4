/** The wire protocol: frames, the parser and the error catalogue. The only module the SDK depends on. */
export { copyBytes } from './bytes.ts';
export * from './errors.ts';
export * from './frames.ts';
export { FrameParser } from './parser.ts';
export { UlidGenerator, ulidFromString, ulidInto, ulidTime, ulidToString } from './ulid.ts';
