// client.js - the csasn classifier behind a Web Worker, with the methods of the in-process
// one (csasn.js), so that a page never blocks on inference and never speaks to the worker
// itself. The widget, the page, the benchmark and the browser tests all go through it.
//
//   import { createClient } from './client.js';
//   const c = createClient();                                   // worker.js next to this file
//   const { info, timing } = await c.load(entry, { onProgress }); // a manifest entry (manifest.js)
//   const r = await c.classify(fileBytes, { roi, preview: true }); // result of csasn.js
//   const r2 = await c.classify(null, { roi });                 // again, on the same image
//   c.info(); c.cancel(); c.free();
//
// Every method rejects with a CsasnError (protocol.js) whose code says what went wrong.
//
// cancel() ends what is running at once: the worker is terminated (a classification of a
// 100-megapixel scan cannot be interrupted otherwise) and replaced by a standby worker that
// was started with the client, whose scripts are loaded and which gets the engine the first
// worker compiled and the model bytes kept here, so the replacement fetches nothing and a
// request made after cancel() never waits behind the cancelled one. The standby is renewed by
// the next load(); a cancel() before that starts a fresh worker, which fetches the scripts.
import { CsasnError, ERR, MSG, STANDBY_NAME, replyError } from './protocol.js';
import { fetchBytes } from './fetch.js';

function toU8(bytes, what) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new CsasnError(ERR.STATE, `${what} must be an ArrayBuffer or a typed array`);
}

// A copy whose buffer can be transferred (the caller keeps its own).
const transferable = (u8) => u8.slice().buffer;

/** options.workerUrl: worker.js (default: next to this file); options.standby: false to keep
 *  no standby worker (cancel() then starts a fresh worker, fetching its scripts);
 *  options.engine: 'auto' (default: relaxed SIMD where the browser runs it correctly, else
 *  simd128), 'relaxed' or 'simd128' (see worker.js); load() reports the one in use as
 *  timing.kernels. */
export function createClient(options = {}) {
  return new CsasnClient(options);
}

// One worker and the requests it has not answered.
class Port {
  constructor(url, name, onModule) {
    this.pending = new Map(); // id -> { resolve, reject }
    this.dead = null;         // CsasnError once the worker failed or was terminated
    this.model = false;       // the client's current model is loaded (or queued) here
    this.image = null;        // the client's image bytes last sent here
    this.worker = new Worker(url, { type: 'module', name });
    this.worker.onmessage = (ev) => {
      const m = ev.data || {};
      if (m.type === MSG.MODULE) return onModule(m.module);
      const p = this.pending.get(m.id);
      if (!p) return; // READY, or the reply to a request already given up
      if (m.type === MSG.ADAPT_PROGRESS) { // not the reply: the request goes on
        if (p.onProgress) { try { p.onProgress(m); } catch (e) { /* the page's callback */ } }
        return;
      }
      this.pending.delete(m.id);
      if (m.type === MSG.ERROR) p.reject(replyError(m));
      else p.resolve(m);
    };
    const fail = (why) => this.end(new CsasnError(ERR.INTERNAL, `the analysis engine failed (${why})`));
    this.worker.onerror = (e) => fail(e.message || 'worker error');
    this.worker.onmessageerror = () => fail('a reply could not be read');
  }

  send(msg, transfer = [], onProgress = null) {
    if (this.dead) return Promise.reject(this.dead);
    const id = Port.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  end(err) {
    if (!this.dead) this.dead = err;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
Port.nextId = 1;

class CsasnClient {
  constructor(options) {
    this._url = options.workerUrl ? new URL(options.workerUrl) : new URL('./worker.js', import.meta.url);
    if (options.engine && options.engine !== 'auto') this._url.searchParams.set('engine', String(options.engine));
    this._wantStandby = options.standby !== false;
    this._module = null;   // { module, relaxed }: the compiled single-thread engine, posted by the first worker
    this._model = null;    // { data: Uint8Array, sha256, info }: the loaded model, kept for a replacement worker
    this._image = null;    // Uint8Array: the current image
    this._download = null; // AbortController of the model download in progress
    this._freed = false;
    this._loads = 0;       // load() calls so far: a superseded one rejects
    this._active = this._spawn(null);
    this._standby = null;  // started by load(), while the model downloads
  }

  _spawn(name) {
    return new Port(this._url, name || 'csasn', (m) => { this._module = this._module || m; });
  }

  _renewStandby() {
    if (this._wantStandby && (!this._standby || this._standby.dead)) this._standby = this._spawn(STANDBY_NAME);
  }

  _alive() {
    if (this._freed) throw new CsasnError(ERR.STATE, 'this client has been freed');
  }

  /** Downloads a model (a manifest entry { url, sha256, bytes } of manifest.js, or
   *  { data: bytes, sha256 }), has the worker check its SHA-256 and load it. The previous model
   *  is dropped first. -> { info, timing }: timing from the worker (protocol.js LOADED) plus
   *  downloadMs. onProgress(loaded, total) while downloading. A later load() or cancel()
   *  rejects this one with code 'cancelled'. */
  async load(source, { onProgress } = {}) {
    this._alive();
    const seq = ++this._loads;
    if (this._download) this._download.abort();
    this._model = null;
    this._active.model = false;
    this._renewStandby();
    const t0 = performance.now();
    let data;
    if (source && source.data) {
      data = toU8(source.data, 'model');
    } else {
      if (!source || !source.url) throw new CsasnError(ERR.STATE, 'load: give a manifest entry (url, sha256) or { data, sha256 }');
      // ?v=<sha256> makes the URL content-addressed: the server lets the browser cache it for
      // good (tools/serve.mjs), and a new file in the manifest is a new URL.
      const url = new URL(source.url);
      if (source.sha256) url.searchParams.set('v', String(source.sha256).slice(0, 16));
      const ctl = new AbortController();
      this._download = ctl;
      try {
        data = await fetchBytes(url.href, { what: 'the model', onProgress, expectBytes: source.bytes, signal: ctl.signal });
      } finally {
        if (this._download === ctl) this._download = null;
      }
    }
    if (seq !== this._loads) throw new CsasnError(ERR.CANCELLED, 'the model load was cancelled');
    const t1 = performance.now();
    const port = this._active;
    port.model = true;
    const r = await port.send({ type: MSG.LOAD, bytes: transferable(data), sha256: source.sha256 });
    if (this._active !== port || seq !== this._loads) throw new CsasnError(ERR.CANCELLED, 'the model load was cancelled');
    this._model = { data, sha256: source.sha256, info: r.info };
    return { info: r.info, timing: { ...r.timing, downloadMs: t1 - t0 } };
  }

  // The active worker with the current model in its queue (a replacement worker gets it from
  // the kept bytes; its reply is what the next request sees, so it is not awaited here).
  _ready() {
    const port = this._active;
    if (!port.model && this._model) {
      port.model = true;
      port.send({ type: MSG.LOAD, bytes: transferable(this._model.data), sha256: this._model.sha256 }).catch(() => {});
    }
    return port;
  }

  /** Image bytes (null: the current image) -> the result of csasn.js's classify, plus
   *  engineMemoryBytes. options: roi {x,y,w,h} in image pixels or null, preview: true to add
   *  result.preview (the engine's own picture of the image, see csasn.js). */
  async classify(image, { roi = null, preview = false, frame = 1 } = {}) {
    this._alive();
    if (image !== null && image !== undefined) this._image = toU8(image, 'image');
    if (!this._image) throw new CsasnError(ERR.STATE, 'no image is open');
    const port = this._ready();
    const msg = { type: MSG.CLASSIFY, roi: roi ? { x: roi.x, y: roi.y, w: roi.w, h: roi.h } : null, preview: !!preview, frame };
    const transfer = [];
    if (port.image !== this._image) {
      msg.image = transferable(this._image);
      transfer.push(msg.image);
      port.image = this._image;
    }
    try {
      return (await port.send(msg, transfer)).result;
    } catch (e) {
      if (msg.image && port.image === this._image) port.image = null; // the worker drops a file that failed
      if (e.code === ERR.IMAGE && msg.image) this._image = null;   // and this one is no image to re-run
      throw e;
    }
  }

  /** n classifications of the current image timed inside the worker -> ms[]. */
  async bench(n = 30, { roi = null } = {}) {
    this._alive();
    if (!this._image) throw new CsasnError(ERR.STATE, 'no image is open');
    const port = this._ready();
    if (port.image !== this._image) await this.classify(null, { roi });
    return (await port.send({ type: MSG.BENCH, n, roi })).ms;
  }

  /** On-device adaptation of the loaded model in the worker (protocol.js ADAPT): spec
   *  { classes, malignant, images: [{ cls, bytes, group }], folds, views, epochs, seed, name,
   *  date } -> { report, bytes (Uint8Array of the new .csasn), skipped }. onProgress(m) gets
   *  { phase: 'features', done, total } and { phase: 'training', progress }. cancel() ends it
   *  (the worker is replaced; it rejects with code 'cancelled'). The images are copied, so
   *  the caller's buffers stay usable. */
  async adapt(spec, { onProgress } = {}) {
    this._alive();
    if (!this._model) throw new CsasnError(ERR.STATE, 'load the base model first');
    const port = this._ready();
    const images = (spec.images || []).map((im) => ({ cls: im.cls | 0, bytes: toU8(im.bytes, 'image').slice().buffer,
                                                     group: im.group == null ? null : String(im.group) }));
    const msg = { type: MSG.ADAPT, classes: Array.from(spec.classes || [], String), malignant: Array.from(spec.malignant || [], String),
                  images, options: { folds: spec.folds | 0, views: spec.views | 0, epochs: spec.epochs | 0, seed: spec.seed | 0 },
                  name: spec.name || '', date: spec.date || '' };
    const r = await port.send(msg, images.map((im) => im.bytes), onProgress || null);
    return { report: r.report, bytes: new Uint8Array(r.bytes), skipped: r.skipped };
  }

  /** The exam report of the loaded model, built in the worker by src/report.c (the bytes
   *  `csasn report` writes for the same inputs). images: [{ name, nodule, view, roi, probs,
   *  malignancy, image: {w, h}, sizeMm }]; options: { date: YYYY-MM-DDThh:mm:ssZ (default now),
   *  fhir: true for the FHIR R4 Bundle } -> the document's text. */
  async report(images, { date = null, fhir = false } = {}) {
    this._alive();
    if (!this._model) throw new CsasnError(ERR.STATE, 'no model is loaded');
    const d = date || new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const plain = (images || []).map((im) => ({
      name: im.name, nodule: im.nodule || null, view: im.view || null, roi: im.roi || null,
      probs: Array.from(im.probs || []), malignancy: im.malignancy ?? null,
      image: im.image ? { w: im.image.w, h: im.image.h } : null, sizeMm: typeof im.sizeMm === 'number' ? im.sizeMm : null,
    }));
    return (await this._ready().send({ type: MSG.REPORT, images: plain, date: d, fhir: !!fhir })).text;
  }

  /** { name, labels, malignant, inputSize, meta } of the loaded model (csasn.js info()). */
  info() {
    this._alive();
    if (!this._model) throw new CsasnError(ERR.STATE, 'no model is loaded');
    return JSON.parse(JSON.stringify(this._model.info));
  }

  /** Requests not answered yet (a download counts as one). */
  get pending() {
    return this._active.pending.size + (this._download ? 1 : 0);
  }

  /** Ends every request in flight (each rejects with code 'cancelled') by replacing the
   *  worker; false when there was nothing to cancel. */
  cancel() {
    this._alive();
    const downloading = !!this._download;
    if (downloading) {
      this._download.abort();
      this._loads++; // the load() awaiting it must not send what it got
    }
    if (!this._active.pending.size) return downloading;
    this._active.end(new CsasnError(ERR.CANCELLED, 'cancelled'));
    let next = this._standby && !this._standby.dead ? this._standby : null;
    this._standby = null;
    if (next) {
      // Its START goes first; requests sent after it queue behind it in the worker.
      next.send({ type: MSG.START, module: this._module }).catch(() => {});
    } else {
      next = this._spawn(null);
    }
    this._active = next;
    return true;
  }

  /** Ends both workers; every request in flight rejects with code 'cancelled'. */
  free() {
    if (this._freed) return;
    this._freed = true;
    if (this._download) this._download.abort();
    const err = new CsasnError(ERR.CANCELLED, 'the client was freed');
    this._active.end(err);
    if (this._standby) this._standby.end(err);
    this._model = null;
    this._image = null;
  }
}

export { CsasnClient };
export { CsasnError, ERR } from './protocol.js';
