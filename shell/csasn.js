// csasn.js - the JavaScript API of the csasn engine, the same in node and in the browser.
//
//   import { createClassifier } from './csasn.js';
//   const c = await createClassifier(modelBytes, { wasmBinary });
//   const r = await c.classify(imageBytes, { roi: { x, y, w, h } });
//   // r = { labels, probs, logits, top, label, malignancy, attention, mask, image, roi, ms, model }
//   // ({ preview: true } adds r.preview, the engine's gray picture of the image)
//   c.info(); c.free();
//
//   // or: one engine for several models (the worker does this), warmed up while a model loads
//   const e = await createEngine({ wasmModule, threads });   // threads: csasn-mt.* (2 threads)
//   e.warmup(1);
//   const c2 = await createClassifier(modelBytes, { engine: e });
//
// `make wasm` copies this file next to the Emscripten glue (build/wasm/csasn.mjs), so the
// relative import below holds there. The glue never fetches anything itself: the caller
// hands it the .wasm bytes (`wasmBinary`), which is what makes it load in node 20 (emcc
// 3.1.6 cannot resolve its own .wasm from an ES module in node) and lets the browser worker
// fetch, cache and time the binary like any other asset. Without `wasmBinary` the file next
// to this one is read (fetch in a browser, fs in node).
//
// Every failure is a CsasnError (protocol.js) whose code says what failed. Every call into
// wasm is synchronous; the methods return promises so callers can treat a
// worker-hosted classifier (client.js) and an in-process one the same way. One classifier
// serves one call at a time, like the C model it wraps.
import createCsasnModule from './csasn.mjs';
import { fetchBytes } from './fetch.js';
import { CsasnError, ERR } from './protocol.js';

// Word offsets of csasn_wasm_result (shell/exports.c): every field is 4 bytes. The order is
// the struct's; createEngine() compares each with the engine's offsetof() before use.
const R = {
  nClasses: 0, top: 1, hasMalignancy: 2, malignancy: 3, probs: 4, logits: 5,
  attention: 6, attH: 7, attW: 8, mask: 9, maskH: 10, maskW: 11, imageW: 12, imageH: 13,
};
const RESULT_BYTES = 14 * 4;
/** The layout this file reads: field -> byte offset, plus the struct size (tests print it). */
export const RESULT_LAYOUT = Object.freeze({ ...Object.fromEntries(Object.entries(R).map(([k, w]) => [k, 4 * w])), sizeof: RESULT_BYTES });

// csasn_wasm_result_layout(): the engine's offsetof() of every field in declaration order,
// then sizeof. Any difference means this file would read one field as another. Exported for
// tests/test_wasm_node.cjs, which also shows it refusing a drifted layout.
export function checkResultLayout(mod) {
  const names = Object.keys(R);
  const n = names.length + 1;
  const p = mod._csasn_wasm_alloc(4 * n);
  if (!p) throw new CsasnError(ERR.INTERNAL, 'out of memory checking the result layout');
  let got, total;
  try {
    total = mod._csasn_wasm_result_layout(p, n);
    got = Array.from(mod.HEAP32.slice(p >> 2, (p >> 2) + n));
  } finally {
    mod._csasn_wasm_free(p);
  }
  const want = [...names.map((k) => 4 * R[k]), RESULT_BYTES];
  const bad = [];
  if (total !== n) bad.push(`${total} values for ${n}`);
  names.forEach((k, i) => { if (got[i] !== want[i]) bad.push(`${k} at ${got[i]}, read at ${want[i]}`); });
  if (got[n - 1] !== RESULT_BYTES) bad.push(`sizeof ${got[n - 1]}, read as ${RESULT_BYTES}`);
  if (bad.length) throw new CsasnError(ERR.INTERNAL, `engine and csasn.js disagree on csasn_wasm_result: ${bad.join('; ')}`);
  return got;
}

const INT32_MIN = -2147483648, INT32_MAX = 2147483647;
// CSASN_MAX_IMAGE_BYTES of src/csasn.h: the one image-size limit of the CLI, this API and the page.
export const MAX_IMAGE_BYTES = 256 * 1024 * 1024;

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function toU8(bytes, what) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new CsasnError(ERR.STATE, `${what} must be an ArrayBuffer or a typed array`);
}

async function defaultWasmBinary(name) {
  const url = new URL(name, import.meta.url);
  if (url.protocol === 'file:') {
    const fs = await import('node:fs/promises');
    return new Uint8Array(await fs.readFile(url));
  }
  return fetchBytes(url, { what: 'the engine' });
}

/** Instantiates the engine and loads a model. Rejects with the loader's message.
 *  options.wasmBinary: the bytes of csasn.wasm, or
 *  options.wasmModule: an already compiled WebAssembly.Module of it (the worker compiles once,
 *  while the model downloads, and reuses it for every model it loads).
 *  options.threads: true to use the threaded build (csasn-mt.mjs/.wasm, 2 threads, identical
 *  results) instead; it needs SharedArrayBuffer, i.e. a cross-origin isolated page, and then
 *  wasmBinary / wasmModule must be those of csasn-mt.wasm.
 *  options.engine: an engine from createEngine() to load the model into (no new instance;
 *  the other options are then ignored, and free() leaves the engine running). */
export async function createClassifier(modelBytes, options = {}) {
  const model = toU8(modelBytes, 'model');
  const engine = options.engine || await createEngine(options);
  return new Classifier(engine, model, !options.engine);
}

/** Instantiates the engine alone (same options as createClassifier): the worker does it while
 *  the model downloads, warms it up, then loads each model it is given into it. */
export async function createEngine(options = {}) {
  let create = createCsasnModule;
  if (options.threads) {
    if (typeof SharedArrayBuffer === 'undefined') {
      throw new CsasnError(ERR.INTERNAL, 'the threaded engine needs SharedArrayBuffer (a cross-origin isolated page)');
    }
    create = (await import('./csasn-mt.mjs')).default;
  }
  const quiet = () => {};
  const cfg = { print: quiet, printErr: quiet };
  let instantiateFailed = new Promise(() => {});
  if (options.wasmModule) {
    const wm = options.wasmModule;
    let fail;
    instantiateFailed = new Promise((_, reject) => { fail = reject; });
    cfg.instantiateWasm = (imports, receive) => {
      WebAssembly.instantiate(wm, imports).then((inst) => receive(inst, wm), fail);
      return {}; // exports arrive through receive()
    };
  } else {
    cfg.wasmBinary = options.wasmBinary ? toU8(options.wasmBinary, 'wasmBinary')
      : await defaultWasmBinary(options.threads ? './csasn-mt.wasm' : './csasn.wasm');
  }
  // The glue's own promise never settles if instantiation fails inside the hook.
  const mod = await Promise.race([create(cfg), instantiateFailed]);
  const engine = new Engine(mod, options.threads ? 2 : 1);
  try {
    engine.resultLayout = checkResultLayout(mod);
  } catch (e) {
    engine.close();
    throw e;
  }
  return engine;
}

class Engine {
  constructor(mod, threads) {
    this._m = mod;
    this.threads = threads;
  }

  /** Runs every hot kernel on scratch data `rounds` times, so that the JIT optimises them
   *  before the first real image (V8 starts wasm in a baseline tier). Synchronous: call it in
   *  short slices between other work. */
  warmup(rounds = 1) {
    if (!this._m) throw new CsasnError(ERR.STATE, 'this engine has been closed');
    return this._m._csasn_wasm_warmup(rounds) === 0;
  }

  /** Ends the threaded build's helper Worker (it holds the shared memory); unusable afterwards. */
  close() {
    if (this._m && this._m.PThread) this._m.PThread.terminateAllThreads();
    this._m = null;
  }
}

class Classifier {
  constructor(engine, model, ownsEngine) {
    if (!engine._m) throw new CsasnError(ERR.STATE, 'this engine has been closed');
    const mod = engine._m;
    this._m = mod;
    this._engine = engine;
    this._ownsEngine = ownsEngine;
    this.threads = engine.threads;
    this._decoder = new TextDecoder('utf-8');
    const t0 = now();
    const buf = this._copyIn(model);
    let handle;
    try {
      handle = mod._csasn_wasm_load(buf, model.length);
    } finally {
      mod._csasn_wasm_free(buf); // the loader repacks the weights; the file copy is not kept
    }
    if (!handle) {
      const e = new CsasnError(ERR.MODEL, this._lastError() || 'model load failed');
      if (ownsEngine) engine.close();
      throw e;
    }
    this._h = handle;
    this.loadMs = now() - t0;
    this._info = this._readInfo();
    this.inputSize = this._info.inputSize;
  }

  _copyIn(u8) {
    const p = this._m._csasn_wasm_alloc(u8.length);
    if (!p) throw new CsasnError(ERR.INTERNAL, `out of memory copying ${u8.length} bytes into the engine`);
    this._m.HEAPU8.set(u8, p); // HEAPU8 is re-read: memory may have grown in alloc
    return p;
  }

  _str(p) {
    if (!p) return null;
    const h = this._m.HEAPU8;
    let e = p;
    while (h[e] !== 0) e++;
    // slice, not subarray: TextDecoder refuses views of the threaded build's shared memory
    return this._decoder.decode(h.slice(p, e));
  }

  _lastError() {
    return this._str(this._m._csasn_wasm_error());
  }

  _alive() {
    if (!this._h) throw new CsasnError(ERR.STATE, 'this classifier has been freed');
  }

  _readInfo() {
    const m = this._m, h = this._h;
    const n = m._csasn_wasm_num_classes(h);
    const labels = [], malignant = [];
    for (let i = 0; i < n; i++) {
      labels.push(this._str(m._csasn_wasm_label(h, i)));
      malignant.push(!!m._csasn_wasm_label_is_malignant(h, i));
    }
    let meta = null;
    const js = this._str(m._csasn_wasm_info_json(h));
    if (js) {
      try { meta = JSON.parse(js); } catch { meta = null; }
    }
    return { name: this._str(m._csasn_wasm_name(h)), labels, malignant, inputSize: m._csasn_wasm_input_size(h), meta };
  }

  // Copies a result out of wasm memory (its buffers are reused by the next call).
  _readResult(p, ms, roi) {
    const m = this._m, w = p >> 2;
    const I = m.HEAP32, F = m.HEAPF32;
    const n = I[w + R.nClasses];
    const f32 = (ptr, len) => (ptr ? F.slice(ptr >> 2, (ptr >> 2) + len) : null);
    const probs = Array.from(f32(I[w + R.probs], n));
    const logits = Array.from(f32(I[w + R.logits], n));
    const top = I[w + R.top];
    const attH = I[w + R.attH], attW = I[w + R.attW];
    const maskH = I[w + R.maskH], maskW = I[w + R.maskW];
    const att = f32(I[w + R.attention], attH * attW);
    const mask = f32(I[w + R.mask], maskH * maskW);
    return {
      labels: this._info.labels.slice(),
      probs,
      logits,
      top,
      label: this._info.labels[top],
      malignancy: I[w + R.hasMalignancy] ? F[w + R.malignancy] : null,
      attention: att ? { w: attW, h: attH, data: att } : null,
      mask: mask ? { w: maskW, h: maskH, data: mask } : null,
      image: { w: I[w + R.imageW], h: I[w + R.imageH] },
      roi,
      ms,
      model: this._info.name,
    };
  }

  /** Image bytes (PNG, JPEG, BMP, GIF, PGM/PPM) -> result. roi in pixels of the upright image
   *  (the EXIF orientation applied, as browsers show it); result.image is its size.
   *  options.preview: true adds result.preview = { w, h, data: Uint8Array[h*w] }, the engine's
   *  own gray picture of the whole image (csasn_preview, src/csasn.h): w = h, each axis
   *  resampled on its own, so it is shown stretched to result.image.w : result.image.h. */
  async classify(imageBytes, options = {}) {
    return this.classifySync(imageBytes, options);
  }

  classifySync(imageBytes, options = {}) {
    this._alive();
    const img = toU8(imageBytes, 'image');
    const roi = options.roi || null;
    if (roi) {
      // The engine takes int32: anything else would wrap on the way in (2^32 + 10 -> 10).
      for (const k of ['x', 'y', 'w', 'h']) {
        const v = roi[k];
        if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) {
          throw new CsasnError(ERR.STATE, `roi.${k} must be an integer in [${INT32_MIN}, ${INT32_MAX}] (got ${v})`);
        }
      }
    }
    if (img.length > MAX_IMAGE_BYTES) {
      // Refused before the copy into wasm memory, with the engine's own words.
      throw new CsasnError(ERR.IMAGE, `image is ${img.length} bytes: over the ${MAX_IMAGE_BYTES / 1048576} MiB limit`);
    }
    const m = this._m;
    const buf = this._copyIn(img);
    let p, ms;
    try {
      const t0 = now();
      p = roi ? m._csasn_wasm_classify(this._h, buf, img.length, 1, roi.x, roi.y, roi.w, roi.h)
              : m._csasn_wasm_classify(this._h, buf, img.length, 0, 0, 0, 0, 0);
      ms = now() - t0;
    } finally {
      m._csasn_wasm_free(buf);
    }
    if (!p) throw new CsasnError(ERR.IMAGE, this._lastError() || 'classification failed');
    const r = this._readResult(p, ms, roi ? { x: roi.x, y: roi.y, w: roi.w, h: roi.h } : null);
    if (options.preview) r.preview = this._preview(img, r.image.w, r.image.h);
    return r;
  }

  // The engine's preview of bytes it has just decoded (w x h image): the decode runs again,
  // through the same code, so the picture is exactly the classified one.
  _preview(img, w, h) {
    const m = this._m;
    const side = m._csasn_wasm_preview_side(w, h);
    const buf = this._copyIn(img);
    const out = m._csasn_wasm_alloc(side * side);
    try {
      if (!out) throw new CsasnError(ERR.INTERNAL, `out of memory for a ${side}x${side} preview`);
      if (m._csasn_wasm_preview(buf, img.length, side, out) !== 0) throw new CsasnError(ERR.IMAGE, this._lastError() || 'preview failed');
      return { w: side, h: side, data: m.HEAPU8.slice(out, out + side * side) };
    } finally {
      m._csasn_wasm_free(buf);
      if (out) m._csasn_wasm_free(out);
    }
  }

  /** Forward pass on a preprocessed input Float32Array [3][S][S] (planar, normalised). */
  async forward(input) {
    return this.forwardSync(input);
  }

  forwardSync(input) {
    this._alive();
    const S = this.inputSize;
    if (!(input instanceof Float32Array) || input.length !== 3 * S * S) {
      throw new CsasnError(ERR.STATE, `forward expects a Float32Array of 3*${S}*${S} = ${3 * S * S} values`);
    }
    const m = this._m;
    const buf = this._copyIn(new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
    let p, ms;
    try {
      const t0 = now();
      p = m._csasn_wasm_forward(this._h, buf);
      ms = now() - t0;
    } finally {
      m._csasn_wasm_free(buf);
    }
    if (!p) throw new CsasnError(ERR.INTERNAL, this._lastError() || 'forward pass failed');
    return this._readResult(p, ms, null);
  }

  /** A copy of an intermediate tensor of the last pass ("input", "fused", ...), or null. */
  debugTensor(name) {
    this._alive();
    const m = this._m;
    const enc = new TextEncoder().encode(name + '\0');
    const np = this._copyIn(enc);
    const sp = m._csasn_wasm_alloc(20);
    try {
      const p = m._csasn_wasm_debug_tensor(this._h, np, sp);
      const s = m.HEAP32.slice(sp >> 2, (sp >> 2) + 5);
      if (!p) return null;
      const shape = Array.from(s.subarray(0, s[4]));
      const n = shape.reduce((a, b) => a * b, 1);
      return { shape, data: m.HEAPF32.slice(p >> 2, (p >> 2) + n) };
    } finally {
      m._csasn_wasm_free(np);
      m._csasn_wasm_free(sp);
    }
  }

  setProfiling(on) {
    this._alive();
    this._m._csasn_wasm_set_profiling(this._h, on ? 1 : 0);
  }

  profile() {
    this._alive();
    const s = this._str(this._m._csasn_wasm_profile_json(this._h));
    return s ? JSON.parse(s) : null;
  }

  /** { name, labels, malignant: bool[], inputSize, meta: the file's metadata } */
  info() {
    this._alive();
    return JSON.parse(JSON.stringify(this._info));
  }

  /** Bytes of wasm memory (grows, never shrinks): stability tests watch it. */
  memoryBytes() {
    return this._m.HEAPU8.length;
  }

  free() {
    if (this._h) {
      this._m._csasn_wasm_model_free(this._h);
      this._h = 0;
      // An engine made for this classifier alone goes with it (the threaded build's helper
      // Worker holds the shared memory: left running, every model switch would keep one).
      if (this._ownsEngine) this._engine.close();
    }
  }
}

// ------------------------------------------------------------------ adaptation
// On-device adaptation (csasn_adapt_* in src/csasn.h, src/ARCHITECTURE.md section 6): the
// worker feeds the images one by one (addImage: the feature pass of one image, all views),
// then calls step() until done (one epoch of one fold per call, so it can report progress and
// be cancelled between calls), reads the cross-validated report and writes the new file.

/** baseBytes: the base model's file. spec: { classes: string[], malignant?: string[],
 *  folds?, views?, epochs?, seed? }. options: as createClassifier (wasmBinary, engine). */
export async function createAdapter(baseBytes, spec, options = {}) {
  const base = toU8(baseBytes, 'model');
  const engine = options.engine || await createEngine(options);
  return new Adapter(engine, base, spec || {}, !options.engine);
}

class Adapter {
  constructor(engine, base, spec, ownsEngine) {
    if (!engine._m) throw new CsasnError(ERR.STATE, 'this engine has been closed');
    const m = engine._m;
    this._m = m;
    this._engine = engine;
    this._ownsEngine = ownsEngine;
    this._enc = new TextEncoder();
    this._dec = new TextDecoder('utf-8');
    const classes = Array.from(spec.classes || [], String);
    const malignant = Array.from(spec.malignant || [], String);
    this.classes = classes;
    const pb = this._copyIn(base), pc = this._cstr(classes.join('\n')), pm = this._cstr(malignant.join('\n'));
    let h;
    try {
      h = m._csasn_wasm_adapt_new(pb, base.length, pc, pm, spec.folds | 0, spec.views | 0, spec.epochs | 0, (spec.seed >>> 0) || 0);
    } finally {
      m._csasn_wasm_free(pb);
      m._csasn_wasm_free(pc);
      m._csasn_wasm_free(pm);
    }
    if (!h) {
      const e = new CsasnError(ERR.MODEL, this._err() || 'adaptation could not start');
      if (ownsEngine) engine.close();
      throw e;
    }
    this._h = h;
  }

  _copyIn(u8) {
    const p = this._m._csasn_wasm_alloc(u8.length);
    if (!p) throw new CsasnError(ERR.INTERNAL, `out of memory copying ${u8.length} bytes into the engine`);
    this._m.HEAPU8.set(u8, p);
    return p;
  }

  _cstr(s) {
    const b = this._enc.encode(s);
    const p = this._m._csasn_wasm_alloc(b.length + 1);
    if (!p) throw new CsasnError(ERR.INTERNAL, 'out of memory');
    this._m.HEAPU8.set(b, p);
    this._m.HEAPU8[p + b.length] = 0;
    return p;
  }

  _str(p) {
    if (!p) return null;
    const h = this._m.HEAPU8;
    let e = p;
    while (h[e] !== 0) e++;
    return this._dec.decode(h.slice(p, e));
  }

  _err() { return this._str(this._m._csasn_wasm_error()); }

  _alive() {
    if (!this._h) throw new CsasnError(ERR.STATE, 'this adaptation has been freed');
  }

  /** The feature pass of one image of class index cls; group: patient (or null). Throws
   *  CsasnError(image) for an unreadable image, which is then not added. */
  addImage(cls, imageBytes, group = null) {
    this._alive();
    const img = toU8(imageBytes, 'image');
    const m = this._m, pb = this._copyIn(img), pg = group == null ? 0 : this._cstr(String(group));
    let r;
    try {
      r = m._csasn_wasm_adapt_add_image(this._h, cls | 0, pg, pb, img.length);
    } finally {
      m._csasn_wasm_free(pb);
      if (pg) m._csasn_wasm_free(pg);
    }
    if (r !== 0) throw new CsasnError(ERR.IMAGE, this._err() || 'image refused');
  }

  count(cls) { this._alive(); return this._m._csasn_wasm_adapt_count(this._h, cls | 0); }

  /** One unit of training -> { progress (0..1), done }. */
  step() {
    this._alive();
    const r = this._m._csasn_wasm_adapt_step(this._h);
    if (r < 0) throw new CsasnError(ERR.STATE, this._err() || 'adaptation failed');
    return { progress: this._m._csasn_wasm_adapt_progress(), done: r === 1 };
  }

  /** The cross-validated report (src/csasn.h csasn_adapt_report_json), null before done. */
  report() {
    this._alive();
    const s = this._str(this._m._csasn_wasm_adapt_report(this._h));
    return s ? JSON.parse(s) : null;
  }

  /** The adapted .csasn file as a Uint8Array. date: "YYYY-MM-DD" recorded in its provenance. */
  write(name = '', date = '') {
    this._alive();
    const m = this._m, pn = this._cstr(name), pd = this._cstr(date);
    let p;
    try {
      p = m._csasn_wasm_adapt_write(this._h, pn, pd);
    } finally {
      m._csasn_wasm_free(pn);
      m._csasn_wasm_free(pd);
    }
    if (!p) throw new CsasnError(ERR.STATE, this._err() || 'writing the adapted model failed');
    const n = m._csasn_wasm_adapt_written_len();
    const out = m.HEAPU8.slice(p, p + n);
    m._csasn_wasm_free(p);
    return out;
  }

  free() {
    if (this._h) {
      this._m._csasn_wasm_adapt_free(this._h);
      this._h = 0;
      if (this._ownsEngine) this._engine.close();
    }
  }
}
