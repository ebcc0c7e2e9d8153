// worker.js - hosts the csasn engine in a Web Worker so the page never blocks on inference.
//
// Started as a module worker: new Worker(new URL('worker.js', runtimeBase), {type: 'module'}).
// Messages (every request carries an `id`, echoed in its reply):
//   page -> worker
//     {type:'load', id, url, sha256, bytes?}  fetch the model (streamed, progress replies),
//                                             check its SHA-256, instantiate the engine
//     {type:'classify', id, image?, roi?}     image: ArrayBuffer of file bytes (kept as the
//                                             current image; omit it to re-run on the current
//                                             one), roi: {x,y,w,h} in image pixels or null
//     {type:'bench', id, n}                   n timed classifications of the current image
//   worker -> page
//     {type:'ready'}                          the script is running
//     {type:'progress', id, loaded, total}    model download progress (total 0 = unknown)
//     {type:'loaded', id, info, timing}       model verified and loaded
//     {type:'result', id, result}             a classification (see csasn.js)
//     {type:'bench', id, ms:[...]}
//     {type:'error', id, message, code}       code: 'integrity' | 'network' | 'model' |
//                                             'image' | 'state'
// Nothing here talks to any origin but the page's own (the CSP enforces it anyway); image
// bytes only ever arrive by postMessage.
import { createClassifier, createEngine } from './csasn.js';

class CodedError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The engine (one WebAssembly instance) is fetched, compiled and instantiated as soon as the
// worker starts, in parallel with the page reading the manifest and the model download, then
// warmed up (below) and reused for every model it loads.
// A cross-origin isolated page (make serve sends COOP/COEP) can share memory between workers:
// then the threaded build csasn-mt.wasm (2 threads, identical results) is used instead, and
// if it cannot start (say pthread Workers are blocked) the single-thread one.
let threaded = self.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
let threadsFallback = null; // why the threaded engine could not start, if it could not
const wasmStart = performance.now();
let wasmReadyAt = 0;
const compiled = {}; // file name -> Promise<WebAssembly.Module>: compiled once, instantiated again on a recycle
const compileWasm = (name) => (compiled[name] ??= compileWasmFile(name).catch((e) => {
  delete compiled[name]; // a failed download may be retried
  throw e;
}));
const compileWasmFile = async (name) => {
  const wasmUrl = new URL(name, import.meta.url).href;
  let res;
  try {
    res = await fetch(wasmUrl, { credentials: 'same-origin' });
  } catch (e) {
    throw new CodedError('network', `could not download the engine (${wasmUrl}): ${e.message}`);
  }
  if (!res.ok) throw new CodedError('network', `could not download the engine (${wasmUrl}): HTTP ${res.status}`);
  const m = await WebAssembly.compileStreaming(res);
  wasmReadyAt = performance.now();
  return m;
};
async function startEngine() {
  if (threaded) {
    try {
      return await createEngine({ wasmModule: await compileWasm('./csasn-mt.wasm'), threads: true });
    } catch (e) {
      if (e instanceof CodedError) throw e; // a network error: the other file is no nearer
      threaded = false;
      threadsFallback = String((e && e.message) || e);
      console.warn(`csasn: threaded engine unavailable, using one thread: ${threadsFallback}`);
    }
  }
  return createEngine({ wasmModule: await compileWasm('./csasn.wasm') });
}
let engineReadyAt = 0;
let engine = startEngine();
// The single-thread build is also what replaces an engine grown by a huge image (recycle,
// below): a fresh threaded engine would start new pthread Workers, i.e. fetch their scripts,
// and nothing may be requested after the model is loaded. So it is compiled up front too.
// If it cannot be had, the page still works; only the recycle is skipped (recycle throws).
const singleModule = compileWasm('./csasn.wasm');
singleModule.catch(() => {});
engine.then(() => { engineReadyAt = performance.now(); }, () => {}); // errors: reported by the first load

// JIT warm-up: V8 runs wasm in a baseline tier until a function has run a while, which made
// the first classification after a page load 3-5x slower than the next. While the model
// downloads, the kernels run on scratch data in slices of a few ms (yielding in between, so
// download chunks and requests are served) until the first classification or 400 ms.
let warmStop = false;
const warm = { slices: 0, ms: 0 };
engine.then(async (e) => {
  const t0 = performance.now();
  while (!warmStop && performance.now() - t0 < 400) {
    if (!e.warmup(1)) break;
    warm.slices++;
    await new Promise((r) => setTimeout(r, 0));
  }
  warm.ms = performance.now() - t0;
}, () => {});
let clf = null;           // the current classifier
let modelBytes = null;    // Uint8Array: its verified file, kept to rebuild it (recycle below)
let image = null;         // Uint8Array: bytes of the current image

// WebAssembly memory grows to what the largest image needed and never shrinks: a 100 MP
// 16-bit RGBA PNG takes it from 83 MB to 1.7 GB, a 50 MP gray PNG to 240-270 MB. Past this the
// engine is replaced, after the result is sent, by a fresh single-thread instance (compiled
// at start-up) with the same model (~0.2 s), so one huge scan does not hold the memory for
// the rest of the session. Ordinary images (a few MP) stay far below it.
const RECYCLE_BYTES = 192 * 2 ** 20;
async function recycle() {
  const old = await engine;
  const fresh = await createEngine({ wasmModule: await singleModule });
  let next;
  try {
    next = await createClassifier(modelBytes, { engine: fresh });
  } catch (e) {
    fresh.close();
    throw e;
  }
  clf.free();
  old.close(); // stops the threaded build's helper Workers, which hold the shared memory
  clf = next;
  engine = Promise.resolve(fresh);
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}


async function fetchAll(url, onProgress, expectBytes) {
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin' });
  } catch (e) {
    throw new CodedError('network', `could not download ${url}: ${e.message}`);
  }
  if (!res.ok) throw new CodedError('network', `could not download ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || expectBytes || 0;
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
    if (t - lastPost > 50) { // throttled: a message per chunk would flood the page
      lastPost = t;
      onProgress(n, total);
    }
  }
  onProgress(n, total || n);
  return out.length === n ? out : out.slice(0, n);
}

async function load(msg) {
  // The old model goes first: if the new one fails (bad hash, bad file) nothing must keep
  // answering under the name the page now shows.
  if (clf) {
    clf.free();
    clf = null;
    modelBytes = null;
  }
  const t1 = performance.now();
  let bytes;
  if (msg.bytes) {
    bytes = new Uint8Array(msg.bytes);
  } else {
    bytes = await fetchAll(msg.url, (loaded, total) => postMessage({ type: 'progress', id: msg.id, loaded, total }), msg.expectBytes);
  }
  const t2 = performance.now();
  // Integrity before use: a manifest entry without a hash is refused too, since the page
  // cannot tell a tampered file from a good one without it.
  const want = String(msg.sha256 || '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(want)) {
    throw new CodedError('integrity', 'the model manifest gives no valid SHA-256 for this file, so it cannot be verified; refusing to load it');
  }
  const got = hex(await crypto.subtle.digest('SHA-256', bytes));
  if (got !== want) {
    throw new CodedError('integrity', `integrity check failed: the downloaded model file does not match the manifest's SHA-256 (expected ${want.slice(0, 12)}…, got ${got.slice(0, 12)}…). It may have been altered; it was not loaded.`);
  }
  const t3 = performance.now();
  await singleModule.catch(() => {}); // settled during the load, never fetched after it
  const e = await engine;
  let next;
  try {
    next = await createClassifier(bytes, { engine: e });
  } catch (err) {
    throw new CodedError('model', `the model file could not be loaded: ${err.message}`);
  }
  clf = next;
  modelBytes = bytes;
  const t4 = performance.now();
  return {
    info: clf.info(),
    // wasmMs: worker start to engine compiled, engineMs: to engine instantiated (both overlap
    // the model download).
    // threads: 2 with the threaded build (cross-origin isolated page), else 1; warmup: the
    // JIT warm-up so far (slices run, ms spent).
    timing: { wasmMs: wasmReadyAt - wasmStart, engineMs: engineReadyAt - wasmStart, downloadMs: t2 - t1, verifyMs: t3 - t2, initMs: t4 - t3, bytes: bytes.length, threads: clf.threads,
      warmup: { ...warm }, ...(threadsFallback ? { threadsFallback } : {}) },
  };
}

function classify(msg) {
  warmStop = true;
  if (msg.image) image = new Uint8Array(msg.image);
  if (!clf) throw new CodedError('state', 'no model is loaded yet');
  if (!image) throw new CodedError('state', 'no image is open');
  try {
    // engineMemoryBytes: the engine's memory after this classification, before any recycle.
    return { ...clf.classifySync(image, { roi: msg.roi || null }), engineMemoryBytes: clf.memoryBytes() };
  } catch (e) {
    if (msg.image) image = null; // a file that fails is not kept as the current image
    throw new CodedError('image', e.message);
  }
}

// Requests are handled strictly one after another: the engine serves one call at a time and
// a model switch must not interleave with a classification.
let chain = Promise.resolve();
self.onmessage = (ev) => {
  const msg = ev.data || {};
  chain = chain.then(async () => {
    try {
      if (msg.type === 'load') {
        const r = await load(msg);
        postMessage({ type: 'loaded', id: msg.id, ...r });
      } else if (msg.type === 'classify') {
        const r = classify(msg);
        const transfer = [];
        if (r.attention) transfer.push(r.attention.data.buffer);
        if (r.mask) transfer.push(r.mask.data.buffer);
        postMessage({ type: 'result', id: msg.id, result: r }, transfer);
        if (r.engineMemoryBytes > RECYCLE_BYTES) {
          await recycle().catch((e) => console.warn(`csasn: could not recycle the engine, keeping it: ${e.message || e}`));
        }
      } else if (msg.type === 'bench') {
        if (!clf || !image) throw new CodedError('state', 'load a model and open an image first');
        const ms = [];
        for (let i = 0; i < (msg.n | 0); i++) ms.push(clf.classifySync(image, { roi: msg.roi || null }).ms);
        postMessage({ type: 'bench', id: msg.id, ms });
      } else {
        throw new CodedError('state', `unknown request ${JSON.stringify(msg.type)}`);
      }
    } catch (e) {
      postMessage({ type: 'error', id: msg.id, message: e.message || String(e), code: e.code || 'internal' });
    }
  });
};
postMessage({ type: 'ready' });
