// fetch.js - every download of the runtime (engine, manifest, model) and the SHA-256 check of
// a model file: one place that turns a failed request into a CsasnError('network') and a
// wrong hash into CsasnError('integrity'), in the page, in the worker and in node.
//
//   const bytes = await fetchBytes(url, { what: 'the model', onProgress, expectBytes });
//   await verifySha256(bytes, sha256, 'the model file');   // where the bytes are used
//
// Same-origin credentials only, and nothing here ever sends data: the requests are GETs of
// the runtime's own files (the page's CSP allows no other origin anyway).
import { CsasnError, ERR } from './protocol.js';

const HEX64 = /^[0-9a-f]{64}$/;

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 of bytes as 64 lowercase hex digits (WebCrypto: browsers, workers, node >= 19). */
export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

/** Rejects with CsasnError('integrity') unless bytes hash to want (hex). A missing or malformed
 *  want is refused too: without it a tampered file cannot be told from a good one. */
export async function verifySha256(bytes, want, what = 'the file') {
  const w = String(want || '').toLowerCase();
  if (!HEX64.test(w)) {
    throw new CsasnError(ERR.INTEGRITY, `the model manifest gives no valid SHA-256 for ${what}, so it cannot be verified; refusing to load it`);
  }
  const got = await sha256Hex(bytes);
  if (got !== w) {
    throw new CsasnError(ERR.INTEGRITY, `integrity check failed: ${what} does not match the manifest's SHA-256 (expected ${w.slice(0, 12)}…, got ${got.slice(0, 12)}…). It may have been altered; it was not loaded.`);
  }
}

function failed(e, what, url) {
  if (e && e.name === 'AbortError') return new CsasnError(ERR.CANCELLED, `the download of ${what} was cancelled`);
  return new CsasnError(ERR.NETWORK, `could not download ${what} (${url}): ${e.message}`);
}

/** GET url -> its Response, checked (HTTP status), for a caller that streams it itself
 *  (WebAssembly.compileStreaming). options: what, cache, signal as for fetchBytes. */
export async function fetchResponse(url, options = {}) {
  const what = options.what || String(url);
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin', cache: options.cache || 'default', signal: options.signal });
  } catch (e) {
    throw failed(e, what, url);
  }
  if (!res.ok) throw new CsasnError(ERR.NETWORK, `could not download ${what} (${url}): HTTP ${res.status}`);
  return res;
}

/** GET url -> Uint8Array. options: what (named in errors), onProgress(loaded, total) while
 *  streaming (total 0 = unknown; throttled to one call per 50 ms, plus one at the end),
 *  expectBytes (the size when the server gives none), cache (RequestInit.cache), signal (an
 *  AbortSignal: aborting rejects with CsasnError('cancelled')). */
export async function fetchBytes(url, options = {}) {
  const res = await fetchResponse(url, options);
  const onProgress = options.onProgress || (() => {});
  const total = Number(res.headers.get('content-length')) || options.expectBytes || 0;
  try {
    return await readAll(res, total, onProgress);
  } catch (e) {
    throw failed(e, options.what || String(url), url);
  }
}

async function readAll(res, total, onProgress) {
  if (!res.body || !res.body.getReader) {
    const b = new Uint8Array(await res.arrayBuffer());
    onProgress(b.length, b.length);
    return b;
  }
  const reader = res.body.getReader();
  let out = new Uint8Array(total || 1 << 20), n = 0, lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (n + value.length > out.length) {
      const grown = new Uint8Array(Math.max(out.length * 2, n + value.length));
      grown.set(out.subarray(0, n));
      out = grown;
    }
    out.set(value, n);
    n += value.length;
    const t = performance.now();
    if (t - lastPost > 50) { // a call per chunk would flood a page with progress events
      lastPost = t;
      onProgress(n, total);
    }
  }
  onProgress(n, total || n);
  return out.length === n ? out : out.slice(0, n);
}
