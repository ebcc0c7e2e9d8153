// csasn.js - the JavaScript API of the csasn engine, the same in node and in the browser.
//
//   import { createClassifier } from './csasn.js';
//   const c = await createClassifier(modelBytes, { wasmBinary });
//   const r = await c.classify(imageBytes, { roi: { x, y, w, h } });
//   // r = { labels, probs, logits, top, label, malignancy, attention, mask, image, roi, ms, model,
//   //       region: { x, y, w, h } the part of the image the model read (its region rule),
//   //       descriptors: [{ name, labels, probs, top, label }] one per descriptor head }
//   // ({ preview: true } adds r.preview, the engine's gray picture of the image)
//   c.info(); c.free();
//
//   // or: one engine for several models (the worker does this), warmed up while a model loads
//   const e = await createEngine({ wasmModule, threads });   // threads: csasn-mt.* (2 threads)
//   // relaxed: csasn-relaxed.* (csasn-relaxed-mt.* with threads), the kernels' multiply-adds
//   // fused (f32x4.relaxed_madd); used only if relaxedSimdSupported() and after its self-test
//   const best = await createBestEngine({ kind: 'auto' });  // or 'relaxed' / 'simd128'
//   best.kernels; // "wasm-relaxed-simd" or "wasm-simd128"
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
  // region geometry and descriptor heads
  regionX: 14, regionY: 15, regionW: 16, regionH: 17, nDescriptors: 18, descriptors: 19,
  // the input: format, frame, the box classified, sizes in mm, warnings (DICOM)
  format: 20, frame: 21, frames: 22, roiX: 23, roiY: 24, roiW: 25, roiH: 26, roiSource: 27,
  hasSpacing: 28, spacingX: 29, spacingY: 30, roiMmW: 31, roiMmH: 32, hasLesion: 33,
  lesionPxLong: 34, lesionPxShort: 35, lesionMmLong: 36, lesionMmShort: 37, modality: 38,
  manufacturer: 39, nWarnings: 40, warning0: 41, warning1: 42, warning2: 43, warning3: 44,
};
const RESULT_BYTES = 45 * 4;
// Word offsets of csasn_descriptor (src/csasn.h), the entries result.descriptors points at.
const D = { name: 0, nLabels: 1, labels: 2, probs: 3, top: 4 };
const DESCRIPTOR_BYTES = 5 * 4;
/** The same for one descriptor head's entry. */
export const DESCRIPTOR_LAYOUT = Object.freeze({ ...Object.fromEntries(Object.entries(D).map(([k, w]) => [k, 4 * w])), sizeof: DESCRIPTOR_BYTES });
/** The layout this file reads: field -> byte offset, plus the struct size (tests print it). */
export const RESULT_LAYOUT = Object.freeze({ ...Object.fromEntries(Object.entries(R).map(([k, w]) => [k, 4 * w])), sizeof: RESULT_BYTES });

// csasn_wasm_result_layout(): the engine's offsetof() of every field in declaration order,
// then sizeof. Any difference means this file would read one field as another. Exported for
// tests/test_wasm_node.cjs, which also shows it refusing a drifted layout.
export function checkResultLayout(mod) {
  const got = checkLayout(mod, '_csasn_wasm_result_layout', 'csasn_wasm_result', R, RESULT_BYTES);
  // csasn_descriptor likewise (an engine without descriptor heads has no such export: refused)
  checkLayout(mod, '_csasn_wasm_descriptor_layout', 'csasn_descriptor', D, DESCRIPTOR_BYTES);
  return got;
}

function checkLayout(mod, fn, what, words, bytes) {
  const names = Object.keys(words);
  const n = names.length + 1;
  if (typeof mod[fn] !== 'function') throw new CsasnError(ERR.INTERNAL, `engine and csasn.js disagree on ${what}: the engine has no ${fn.slice(1)}`);
  const p = mod._csasn_wasm_alloc(4 * n);
  if (!p) throw new CsasnError(ERR.INTERNAL, 'out of memory checking the result layout');
  let got, total;
  try {
    total = mod[fn](p, n);
    got = Array.from(mod.HEAP32.slice(p >> 2, (p >> 2) + n));
  } finally {
    mod._csasn_wasm_free(p);
  }
  const want = [...names.map((k) => 4 * words[k]), bytes];
  const bad = [];
  if (total !== n) bad.push(`${total} values for ${n}`);
  names.forEach((k, i) => { if (got[i] !== want[i]) bad.push(`${k} at ${got[i]}, read at ${want[i]}`); });
  if (got[n - 1] !== bytes) bad.push(`sizeof ${got[n - 1]}, read as ${bytes}`);
  if (bad.length) throw new CsasnError(ERR.INTERNAL, `engine and csasn.js disagree on ${what}: ${bad.join('; ')}`);
  return got;
}

const INT32_MIN = -2147483648, INT32_MAX = 2147483647;
// CSASN_MAX_IMAGE_BYTES of src/csasn.h: the one image-size limit of the CLI, this API and the page.
export const MAX_IMAGE_BYTES = 256 * 1024 * 1024;

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

// The NUL-terminated UTF-8 string at p in the engine's memory (null for p = 0).
function cString(mod, p, decoder = new TextDecoder('utf-8')) {
  if (!p) return null;
  const h = mod.HEAPU8;
  let e = p;
  while (h[e] !== 0) e++;
  // slice, not subarray: TextDecoder refuses views of the threaded build's shared memory
  return decoder.decode(h.slice(p, e));
}

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

// The smallest module that uses a relaxed-SIMD instruction: () -> v128 returning
// f32x4.relaxed_madd(v128.const 0, v128.const 0, v128.const 0). A runtime without relaxed SIMD
// (node 20 without --experimental-wasm-relaxed-simd, older browsers) does not validate it.
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,       // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,             // types: () -> v128
  0x03, 0x02, 0x01, 0x00,                               // one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00,                         // code: one body of 59 bytes, no locals
  0xfd, 0x0c, ...new Array(16).fill(0), 0xfd, 0x0c, ...new Array(16).fill(0),
  0xfd, 0x0c, ...new Array(16).fill(0),                 // three v128.const 0
  0xfd, 0x85, 0x02,                                     // f32x4.relaxed_madd (0xfd 0x105)
  0x0b,                                                 // end
]);

/** Whether this runtime can run the relaxed-SIMD engine at all (it may still fail its
 *  self-test: createEngine({ relaxed: true }) runs it). */
export function relaxedSimdSupported() {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

// The engine files: simd128 (every browser with wasm SIMD) or relaxed, one thread or two.
export const engineFile = (relaxed, threads) => `./csasn${relaxed ? '-relaxed' : ''}${threads ? '-mt' : ''}`;

/** Instantiates the engine alone (same options as createClassifier): the worker does it while
 *  the model downloads, warms it up, then loads each model it is given into it.
 *  options.relaxed: the relaxed-SIMD build (wasmBinary / wasmModule must then be its .wasm);
 *  it runs its kernels' known-answer self-test first and rejects if the runtime fails it. */
export async function createEngine(options = {}) {
  let create = createCsasnModule;
  if (options.threads && typeof SharedArrayBuffer === 'undefined') {
    throw new CsasnError(ERR.INTERNAL, 'the threaded engine needs SharedArrayBuffer (a cross-origin isolated page)');
  }
  if (options.relaxed && !relaxedSimdSupported()) {
    throw new CsasnError(ERR.INTERNAL, 'this runtime has no relaxed SIMD (WebAssembly.validate refused a relaxed opcode)');
  }
  const file = engineFile(!!options.relaxed, !!options.threads);
  if (options.threads || options.relaxed) {
    // The file names are spelled out so that bundlers can see them.
    const glue = options.relaxed ? (options.threads ? import('./csasn-relaxed-mt.mjs') : import('./csasn-relaxed.mjs'))
      : import('./csasn-mt.mjs');
    create = (await glue).default;
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
      : await defaultWasmBinary(file + '.wasm');
  }
  // The glue's own promise never settles if instantiation fails inside the hook.
  const mod = await Promise.race([create(cfg), instantiateFailed]);
  const engine = new Engine(mod, options.threads ? 2 : 1);
  try {
    engine.resultLayout = checkResultLayout(mod);
    engine.kernels = cString(mod, mod._csasn_wasm_kernels_name());
    if (options.relaxed && mod._csasn_wasm_selftest() !== 0) {
      throw new CsasnError(ERR.INTERNAL, cString(mod, mod._csasn_wasm_error()) || 'the relaxed-SIMD engine failed its self-test');
    }
  } catch (e) {
    engine.close();
    throw e;
  }
  return engine;
}

/** The fastest engine this runtime runs correctly. options.kind: 'auto' (default: relaxed
 *  when supported and its self-test passes, else simd128), 'relaxed' (that or a rejection) or
 *  'simd128'. Pass options.wasmBinaries = { relaxed, simd128 } (bytes) to skip the file reads;
 *  the other createEngine options (threads) apply. The engine's .fallback says why auto did
 *  not take the relaxed one, when it did not. */
export async function createBestEngine(options = {}) {
  const kind = options.kind || 'auto';
  if (!['auto', 'relaxed', 'simd128'].includes(kind)) {
    throw new CsasnError(ERR.STATE, `the engine kind must be 'auto', 'relaxed' or 'simd128', not ${JSON.stringify(kind)}`);
  }
  const bins = options.wasmBinaries || {};
  let fallback = null;
  if (kind === 'relaxed' || (kind === 'auto' && relaxedSimdSupported())) {
    try {
      return await createEngine({ ...options, relaxed: true, wasmBinary: bins.relaxed });
    } catch (e) {
      if (kind === 'relaxed') throw e;
      fallback = String((e && e.message) || e);
    }
  } else if (kind === 'auto') {
    fallback = 'no relaxed SIMD in this runtime';
  }
  const e = await createEngine({ ...options, relaxed: false, wasmBinary: bins.simd128 });
  if (fallback) e.fallback = fallback;
  return e;
}

class Engine {
  constructor(mod, threads) {
    this._m = mod;
    this.threads = threads;
    this.kernels = null; // "wasm-simd128" or "wasm-relaxed-simd"
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
    return cString(this._m, p, this._decoder);
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
    // region rule and descriptor heads (csasn_model_info_json adds "region"; the heads are file keys)
    const region = meta && meta.region ? meta.region : { mode: 'stretch', margin: 0, fill: 0 };
    const heads = meta && Array.isArray(meta['heads.descriptors']) ? meta['heads.descriptors'] : [];
    const descriptors = heads.map((name) => ({ name, labels: meta['descriptor.' + name] || [] }));
    return { name: this._str(m._csasn_wasm_name(h)), labels, malignant, inputSize: m._csasn_wasm_input_size(h), meta, region, descriptors };
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
    // region geometry and descriptor heads
    const regionW = I[w + R.regionW], regionH = I[w + R.regionH];
    const region = regionW > 0 ? { x: I[w + R.regionX], y: I[w + R.regionY], w: regionW, h: regionH } : null;
    const descriptors = [];
    const nd = I[w + R.nDescriptors], dp = I[w + R.descriptors] >> 2;
    for (let i = 0; i < nd && dp; i++) {
      const e = dp + i * (DESCRIPTOR_BYTES >> 2);
      const nl = I[e + D.nLabels], lp = I[e + D.labels] >> 2;
      const labels = [];
      for (let k = 0; k < nl; k++) labels.push(this._str(I[lp + k]));
      const dtop = I[e + D.top];
      descriptors.push({ name: this._str(I[e + D.name]), labels, probs: Array.from(f32(I[e + D.probs], nl)), top: dtop, label: labels[dtop] });
    }
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
      region,
      descriptors,
      ms,
      model: this._info.name,
      ...this._readInput(w, roi),
    };
  }

  // The input block of the result: the engine's floats rounded to 6 significant digits, which
  // is what the CLI prints ("%.6g" of the same float), so both show the same numbers.
  _readInput(w, roi) {
    const m = this._m, I = m.HEAP32, F = m.HEAPF32;
    const r6 = (v) => +v.toPrecision(6);
    const pair = (has, a, b) => (has ? [r6(F[w + a]), r6(F[w + b])] : null);
    const str = (p) => (p ? this._str(p) : '');
    const hasSpacing = !!I[w + R.hasSpacing], hasLesion = !!I[w + R.hasLesion];
    const warnings = [];
    for (let i = 0; i < Math.min(4, I[w + R.nWarnings]); i++) warnings.push(str(I[w + R.warning0 + i]));
    return {
      format: str(I[w + R.format]),
      frame: I[w + R.frame],
      frames: I[w + R.frames],
      // roi: the box classified (the caller's clipped, a DICOM tissue region, or the whole
      // image); result.region is what the model read around it (its region geometry).
      roi: I[w + R.roiW] > 0 ? { x: I[w + R.roiX], y: I[w + R.roiY], w: I[w + R.roiW], h: I[w + R.roiH] } : roi,
      roi_source: ['whole', 'user', 'tissue'][I[w + R.roiSource]] || 'whole',
      spacing_mm: pair(hasSpacing, R.spacingX, R.spacingY),
      roi_mm: pair(hasSpacing, R.roiMmW, R.roiMmH),
      lesion_px: pair(hasLesion, R.lesionPxLong, R.lesionPxShort),
      lesion_mm: pair(hasLesion && hasSpacing, R.lesionMmLong, R.lesionMmShort),
      warnings,
      modality: str(I[w + R.modality]) || null,
      manufacturer: str(I[w + R.manufacturer]) || null,
    };
  }

  /** Image bytes (PNG, JPEG, BMP, GIF, PGM/PPM, DICOM) -> result. roi in pixels of the upright image
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
    // DICOM cine: the frame, counting from 1 as DICOM does
    const frame = options.frame === undefined || options.frame === null ? 1 : options.frame;
    if (!Number.isInteger(frame) || frame < 1 || frame > INT32_MAX) {
      throw new CsasnError(ERR.STATE, `frame must be an integer from 1 (DICOM frames count from 1; got ${frame})`);
    }
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
      p = roi ? m._csasn_wasm_classify_ex(this._h, buf, img.length, 1, roi.x, roi.y, roi.w, roi.h, frame)
              : m._csasn_wasm_classify_ex(this._h, buf, img.length, 0, 0, 0, 0, 0, frame);
      ms = now() - t0;
    } finally {
      m._csasn_wasm_free(buf);
    }
    if (!p) throw new CsasnError(ERR.IMAGE, this._lastError() || 'classification failed');
    const r = this._readResult(p, ms, roi ? { x: roi.x, y: roi.y, w: roi.w, h: roi.h } : null);
    if (options.preview) r.preview = this._preview(img, r.image.w, r.image.h, frame);
    return r;
  }

  // The engine's preview of bytes it has just decoded (w x h image): the decode runs again,
  // through the same code, so the picture is exactly the classified one.
  _preview(img, w, h, frame = 1) {
    const m = this._m;
    const side = m._csasn_wasm_preview_side(w, h);
    const buf = this._copyIn(img);
    const out = m._csasn_wasm_alloc(side * side);
    try {
      if (!out) throw new CsasnError(ERR.INTERNAL, `out of memory for a ${side}x${side} preview`);
      if (m._csasn_wasm_preview_frame(buf, img.length, frame, side, out) !== 0) throw new CsasnError(ERR.IMAGE, this._lastError() || 'preview failed');
      return { w: side, h: side, data: m.HEAPU8.slice(out, out + side * side) };
    } finally {
      m._csasn_wasm_free(buf);
      if (out) m._csasn_wasm_free(out);
    }
  }

  /** The region { x, y, w, h } of a w x h upright image that the model reads for roi (null: the
   *  whole image): what classify() reports as result.region, without classifying. */
  region(imageW, imageH, roi = null) {
    this._alive();
    const m = this._m;
    const out = m._csasn_wasm_alloc(16);
    if (!out) throw new CsasnError(ERR.INTERNAL, 'out of memory');
    try {
      const rc = roi ? m._csasn_wasm_region(this._h, imageW, imageH, 1, roi.x, roi.y, roi.w, roi.h, out)
                     : m._csasn_wasm_region(this._h, imageW, imageH, 0, 0, 0, 0, 0, out);
      if (rc !== 0) throw new CsasnError(ERR.IMAGE, this._lastError() || 'bad region');
      const v = m.HEAP32.slice(out >> 2, (out >> 2) + 4);
      return { x: v[0], y: v[1], w: v[2], h: v[3] };
    } finally {
      m._csasn_wasm_free(out);
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

  // ---- exam report (src/report.c through shell/exports.c): the same C as `csasn report`.
  /** images: [{ name, nodule?, view?, roi?, probs, malignancy, image: {w, h}, sizeMm? }] (probs and
   *  malignancy as classify() returned them); options: { sha256 (of this model file), date
   *  (YYYY-MM-DDThh:mm:ssZ), fhir: true for the FHIR R4 Bundle } -> the document's text. */
  report(images, { sha256, date, fhir = false } = {}) {
    this._alive();
    if (!Array.isArray(images)) throw new CsasnError(ERR.STATE, 'report: images must be an array');
    const m = this._m;
    const enc = new TextEncoder();
    const held = [];
    const cstr = (s) => {
      if (s === null || s === undefined) return 0;
      const p = this._copyIn(enc.encode(String(s) + '\0'));
      held.push(p);
      return p;
    };
    let r = 0;
    try {
      r = m._csasn_wasm_report_new(this._h, cstr(sha256 || ''), cstr(date || ''));
      if (!r) throw new CsasnError(ERR.STATE, this._lastError() || 'report failed');
      for (const im of images) {
        const probs = Float32Array.from(im.probs || []);
        const pp = this._copyIn(new Uint8Array(probs.buffer));
        held.push(pp);
        const roi = im.roi || null;
        if (roi) {
          for (const k of ['x', 'y', 'w', 'h']) {
            if (!Number.isInteger(roi[k]) || roi[k] < INT32_MIN || roi[k] > INT32_MAX) throw new CsasnError(ERR.STATE, `report: ${im.name}: roi.${k} must be an int32 (got ${roi[k]})`);
          }
        }
        const hasM = im.malignancy !== null && im.malignancy !== undefined;
        const size = typeof im.sizeMm === 'number' ? im.sizeMm : NaN;
        const rc = m._csasn_wasm_report_add(r, cstr(im.name || ''), cstr(im.nodule || null), cstr(im.view || null),
          roi ? 1 : 0, roi ? roi.x : 0, roi ? roi.y : 0, roi ? roi.w : 0, roi ? roi.h : 0,
          pp, probs.length, hasM ? 1 : 0, hasM ? im.malignancy : 0, im.image ? im.image.w : 0, im.image ? im.image.h : 0, size);
        if (rc !== 0) throw new CsasnError(ERR.STATE, `${im.name}: ${this._lastError()}`);
      }
      const out = m._csasn_wasm_report_json(r, fhir ? 1 : 0);
      if (!out) throw new CsasnError(ERR.INTERNAL, this._lastError() || 'report failed');
      return this._str(out);
    } finally {
      if (r) m._csasn_wasm_report_free(r);
      for (const p of held) m._csasn_wasm_free(p);
    }
  }

  /** { name, labels, malignant: bool[], inputSize, meta: the file's metadata,
   *    region: { mode, margin, fill }, descriptors: [{ name, labels }] } */
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
// On-device adaptation (csasn_adapt_* in src/csasn.h, src/ARCHITECTURE.md section 9): the
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
