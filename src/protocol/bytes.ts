/**
 * Copies of small byte ranges carved from shared slabs. `Uint8Array#slice` gives every copy its own
 * ArrayBuffer, which costs about ten times the copy itself (a backing store, external-memory
 * accounting, and work for the garbage collector per buffer): on a path that copies every message
 * (a payload taken out of a socket read), that was a tenth of the server's CPU. A slab is freed when
 * the last copy carved from it is, so a long-lived copy holds at most one slab; copies larger than a
 * slab's share get their own buffer.
 */
const SLAB_BYTES = 16 * 1024;
/** Larger copies are made on their own: a slab holds at least eight of the largest shared ones. */
const MAX_SHARED = SLAB_BYTES / 8;

let slab = new ArrayBuffer(0);
let used = 0;

/** A plain Uint8Array holding a copy of `bytes`, never a view of them. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  if (n > MAX_SHARED) return bytes.slice();
  if (used + n > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const out = new Uint8Array(slab, used, n);
  used += n;
  out.set(bytes);
  return out;
}
