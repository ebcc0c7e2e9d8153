// worker.js - hosts the csasn engine in a Web Worker so the page never blocks on inference.
//
// The page never talks to it directly: client.js starts it as a module worker and speaks the
// messages of protocol.js (which documents every field). Requests are served one after
// another: the engine serves one call at a time, and a model switch must not interleave with
// a classification. Nothing here talks to any origin but the page's own (the CSP enforces it
// anyway): the only requests are the engine's own .wasm files, and the model and image bytes
// arrive by postMessage.
import { createAdapter, createClassifier, createEngine, relaxedSimdSupported } from './csasn.js';
import { CsasnError, ERR, MSG, STANDBY_NAME, errorReply } from './protocol.js';
import { fetchResponse, verifySha256 } from './fetch.js';

// The engine (one WebAssembly instance) is fetched, compiled and instantiated as soon as the
// worker starts, in parallel with the page reading the manifest and downloading the model,
// then warmed up (below) and reused for every model it loads.
// A cross-origin isolated page (make serve sends COOP/COEP) can share memory between workers:
// then the threaded build csasn-mt.wasm (2 threads, identical results) is used instead, and
// if it cannot start (say pthread Workers are blocked) the single-thread one.
// A standby worker (client.js keeps one to replace a cancelled worker at once) starts nothing
// until START hands it the single-thread engine the first worker compiled: it never fetches.
let threaded = self.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
let threadsFallback = null; // why the threaded engine could not start, if it could not
const wasmStart = performance.now();
let wasmReadyAt = 0;
let engineReadyAt = 0;
const compiled = {}; // file name -> Promise<WebAssembly.Module>: compiled once, instantiated again on a recycle
// Compiled while it downloads (compileStreaming): the engine is ready soon after its last byte.
const compileWasm = (name) => (compiled[name] ??= fetchResponse(new URL(name, import.meta.url).href, { what: 'the engine' })
  .then((res) => WebAssembly.compileStreaming(res))
  .then((m) => { wasmReadyAt = performance.now(); return m; })
  .catch((e) => {
    delete compiled[name]; // a failed download may be retried
    throw e;
  }));

let engine = null;        // Promise<Engine>
// Promise<{ module, relaxed: false }>: the compiled single-thread simd128 engine, what a
// recycle re-instantiates and what a standby worker is given. Always simd128, whatever the
// main engine is: its glue (csasn.mjs) is among every worker's static imports, so a standby
// that takes over after a cancel fetches nothing (the relaxed engine's glue would be a request
// after load). The two engines agree within 1e-5 (tests/test_engines.cjs).
let single = null;
let warmStop = false;
const warm = { slices: 0, ms: 0 };

// Which engine (the worker's URL carries it: client.js createClient({ engine })): 'auto'
// (relaxed SIMD where the browser validates it and its self-test passes, else simd128),
// 'relaxed' or 'simd128' (benchmarks and tests force one).
const kind = new URL(self.location.href).searchParams.get('engine') || 'auto';
let engineFallback = null; // why auto did not run the relaxed engine, if it did not
const singleOf = (relaxed) => compileWasm(relaxed ? './csasn-relaxed.wasm' : './csasn.wasm').then((module) => ({ module, relaxed }));

async function threadedOrSingle(relaxed) {
  if (threaded) {
    try {
      return await createEngine({ wasmModule: await compileWasm(relaxed ? './csasn-relaxed-mt.wasm' : './csasn-mt.wasm'), threads: true, relaxed });
    } catch (e) {
      if (e.code === ERR.NETWORK) throw e; // the other file is no nearer
      if (relaxed && /self-test|relaxed SIMD/.test(e.message)) throw e; // the kind is at fault, not threads
      threaded = false;
      threadsFallback = String((e && e.message) || e);
      console.warn(`csasn: threaded engine unavailable, using one thread: ${threadsFallback}`);
    }
  }
  if (relaxed) return createEngine({ wasmModule: await compileWasm('./csasn-relaxed.wasm'), relaxed: true });
  return createEngine({ wasmModule: (await single).module });
}

async function pickEngine() {
  if (!['auto', 'relaxed', 'simd128'].includes(kind)) throw new CsasnError(ERR.STATE, `unknown engine ${JSON.stringify(kind)}`);
  const relaxed = kind === 'relaxed' || (kind === 'auto' && relaxedSimdSupported());
  if (kind === 'auto' && !relaxed) engineFallback = 'no relaxed SIMD in this browser';
  if (relaxed) {
    try {
      return await threadedOrSingle(true);
    } catch (e) {
      if (kind === 'relaxed' || e.code === ERR.NETWORK) throw e;
      engineFallback = String((e && e.message) || e);
      console.warn(`csasn: relaxed-SIMD engine unavailable, using simd128: ${engineFallback}`);
    }
  }
  return threadedOrSingle(false);
}

// given: { module, relaxed } of a compiled single-thread engine (standby), or null (fetch and pick).
function start(given) {
  if (engine) return engine;
  if (given) {
    threaded = false;
    single = Promise.resolve(given);
    engine = createEngine({ wasmModule: given.module, relaxed: given.relaxed });
  } else {
    // The single-thread build is also what replaces an engine grown by a huge image
    // (recycle, below) and what a standby worker is given: a fresh threaded engine would start
    // new pthread Workers, i.e. fetch their scripts, and nothing may be requested after the
    // model is loaded. So it is compiled up front too. If it cannot be had, the page still
    // works; only the recycle is skipped (recycle throws).
    single = singleOf(false);
    engine = pickEngine();
    engine.then(() => single).then((s) => postMessage({ type: MSG.MODULE, module: s }), () => {});
  }
  engine.then(() => { engineReadyAt = performance.now(); }, () => {}); // errors: reported by the first load
  // JIT warm-up: V8 runs wasm in a baseline tier until a function has run a while, which made
  // the first classification after a page load 3-5x slower than the next. While the model
  // downloads, the kernels run on scratch data in slices of a few ms (yielding in between, so
  // requests are served) until the first classification or 400 ms.
  engine.then(async (e) => {
    const t0 = performance.now();
    while (!warmStop && performance.now() - t0 < 400) {
      if (!e.warmup(1)) break;
      warm.slices++;
      await new Promise((r) => setTimeout(r, 0));
    }
    warm.ms = performance.now() - t0;
  }, () => {});
  return engine;
}

let clf = null;           // the current classifier
let modelBytes = null;    // Uint8Array: its verified file, kept to rebuild it (recycle below)
let modelSha256 = null;   // its SHA-256 as LOAD verified it: what a report names the model by
let image = null;         // Uint8Array: bytes of the current image

// WebAssembly memory grows to what the largest image needed and never shrinks: a 100 MP
// 16-bit RGBA PNG takes it from 83 MB to 1.7 GB, a 50 MP gray PNG to 240-270 MB. Past this the
// engine is replaced, after the result is sent, by a fresh single-thread instance (compiled
// at start-up) with the same model (~0.2 s), so one huge scan does not hold the memory for
// the rest of the session. Ordinary images (a few MP) stay far below it.
const RECYCLE_BYTES = 192 * 2 ** 20;
async function recycle() {
  const old = await engine;
  const s = await single;
  const fresh = await createEngine({ wasmModule: s.module, relaxed: s.relaxed });
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

async function load(msg) {
  // The old model goes first: if the new one fails (bad hash, bad file) nothing must keep
  // answering under the name the page now shows.
  if (clf) {
    clf.free();
    clf = null;
    modelBytes = null;
    modelSha256 = null;
  }
  if (!(msg.bytes instanceof ArrayBuffer)) throw new CsasnError(ERR.STATE, 'load: the model bytes are missing');
  const bytes = new Uint8Array(msg.bytes);
  const t2 = performance.now();
  // Integrity before use, here where the bytes are used: whoever downloaded them.
  await verifySha256(bytes, msg.sha256, 'the downloaded model file');
  const t3 = performance.now();
  await single.catch(() => {}); // settled during the load, never fetched after it
  const e = await engine;
  try {
    clf = await createClassifier(bytes, { engine: e });
  } catch (err) {
    throw new CsasnError(ERR.MODEL, `the model file could not be loaded: ${err.message}`);
  }
  modelBytes = bytes;
  modelSha256 = String(msg.sha256).toLowerCase();
  const t4 = performance.now();
  return {
    info: clf.info(),
    // wasmMs: worker start to engine compiled, engineMs: to engine instantiated (both overlap
    // the model download). threads: 2 with the threaded build (cross-origin isolated page),
    // else 1; warmup: the JIT warm-up so far (slices run, ms spent).
    timing: {
      wasmMs: wasmReadyAt - wasmStart, engineMs: engineReadyAt - wasmStart, verifyMs: t3 - t2, initMs: t4 - t3,
      bytes: bytes.length, threads: clf.threads, kernels: e.kernels, warmup: { ...warm },
      ...(threadsFallback ? { threadsFallback } : {}), ...(engineFallback ? { engineFallback } : {}),
    },
  };
}

function classify(msg) {
  warmStop = true;
  if (msg.image) image = new Uint8Array(msg.image);
  if (!clf) throw new CsasnError(ERR.STATE, 'no model is loaded yet');
  if (!image) throw new CsasnError(ERR.STATE, 'no image is open');
  try {
    const r = clf.classifySync(image, { roi: msg.roi || null, preview: !!msg.preview, frame: msg.frame || 1 });
    return { ...r, engineMemoryBytes: clf.memoryBytes() };
  } catch (e) {
    if (msg.image) image = null; // a file that fails is not kept as the current image
    throw e;
  }
}

const handlers = {
  async [MSG.START](msg) {
    await start(msg.module || null);
    return { type: MSG.STARTED };
  },
  async [MSG.LOAD](msg) {
    start(null);
    return { type: MSG.LOADED, ...(await load(msg)) };
  },
  async [MSG.CLASSIFY](msg) {
    const result = classify(msg);
    const transfer = [result.attention, result.mask, result.preview].filter(Boolean).map((t) => t.data.buffer);
    return { reply: { type: MSG.RESULT, result }, transfer, after: result.engineMemoryBytes > RECYCLE_BYTES ? recycleQuietly : null };
  },
  async [MSG.ADAPT](msg) {
    return adapt(msg);
  },
  async [MSG.REPORT](msg) {
    if (!clf) throw new CsasnError(ERR.STATE, 'no model is loaded yet');
    return { type: MSG.REPORTED, text: clf.report(msg.images || [], { sha256: modelSha256, date: msg.date, fhir: !!msg.fhir }) };
  },
  async [MSG.BENCH](msg) {
    if (!clf || !image) throw new CsasnError(ERR.STATE, 'load a model and open an image first');
    const ms = [];
    for (let i = 0; i < (msg.n | 0); i++) ms.push(clf.classifySync(image, { roi: msg.roi || null }).ms);
    return { type: MSG.BENCHED, ms };
  },
};

// On-device adaptation of the loaded model: the feature pass image by image, then the training
// in units (csasn.js createAdapter), with a progress message after each; cancel = the client
// terminates this worker.
async function adapt(msg) {
  if (!clf || !modelBytes) throw new CsasnError(ERR.STATE, 'load the base model first');
  const images = Array.isArray(msg.images) ? msg.images : [];
  const e = await engine;
  let a;
  try {
    a = await createAdapter(modelBytes, { classes: msg.classes, malignant: msg.malignant || [], ...(msg.options || {}) }, { engine: e });
  } catch (err) {
    throw new CsasnError(ERR.STATE, err.message);
  }
  const progress = (p) => postMessage({ type: MSG.ADAPT_PROGRESS, id: msg.id, ...p });
  try {
    const skipped = [];
    images.forEach((im, i) => {
      try {
        a.addImage(im.cls | 0, new Uint8Array(im.bytes), im.group == null ? null : String(im.group));
      } catch (err) {
        if (err.code !== ERR.IMAGE) throw err;
        skipped.push({ index: i, message: err.message });
      }
      progress({ phase: 'features', done: i + 1, total: images.length });
    });
    let r;
    do {
      r = a.step();
      progress({ phase: 'training', progress: r.progress });
    } while (!r.done);
    const bytes = a.write(msg.name || '', msg.date || '');
    return { reply: { type: MSG.ADAPTED, report: a.report(), bytes: bytes.buffer, skipped }, transfer: [bytes.buffer] };
  } finally {
    a.free();
  }
}

const recycleQuietly = () => recycle().catch((e) => console.warn(`csasn: could not recycle the engine, keeping it: ${e.message || e}`));

let chain = Promise.resolve();
self.onmessage = (ev) => {
  const msg = ev.data || {};
  chain = chain.then(async () => {
    try {
      const h = handlers[msg.type];
      if (!h) throw new CsasnError(ERR.STATE, `unknown request ${JSON.stringify(msg.type)}`);
      const out = await h(msg);
      const { reply, transfer = [], after = null } = out.reply ? out : { reply: out };
      postMessage({ ...reply, id: msg.id }, transfer);
      if (after) await after();
    } catch (e) {
      postMessage(errorReply(msg.id, e));
    }
  });
};
if (self.name !== STANDBY_NAME) start(null);
postMessage({ type: MSG.READY });
