// widget.js - <csasn-classifier>: the whole classifier UI as one embeddable element.
//
//   <script type="module" src="widget.js"></script>
//   <csasn-classifier manifest="weights/manifest.json" runtime="wasm/" model="thyroid-ddti">
//   </csasn-classifier>
//
// Attributes (each with a property of the same name that reflects it; changing one later
// takes effect at once):
//   model     manifest id (or file name) of the model to use; absent: the manifest's default.
//             Setting it switches the model (the open image is classified again).
//   manifest  URL of the model manifest (src/MANIFEST.md); default weights/manifest.json
//   runtime   folder holding the engine (client.js, worker.js, csasn.js, csasn.wasm, ...);
//             default wasm/
//   hide-notes  the host page shows the research-use and privacy notes itself (read once).
// URLs resolve against the page's URL. A portal on another origin embeds the page in an
// iframe instead (web workers must be same-origin; see embed.html).
// Events (bubbling and composed, so a listener on document hears them):
//   csasn-ready {info, timing}, csasn-result {result}, csasn-error {message, code}
//   (code: one of ERR in protocol.js).
// Methods: openFile(File), openBytes(ArrayBuffer, name), setRoi({x,y,w,h}|null),
//   report(images, {date, fhir}) (the exam report of the loaded model: client.js report()).
// Read-only: info (the loaded model), result (the shown result).
// State for tests and styling, on the element: data-state (starting, loading-model, ready,
// busy, model-error, error), data-model, data-roi, data-region (the region the model read),
// data-image-size, data-result-seq.
//
// Everything is drawn in a shadow root with its own adopted stylesheet (widget/styles.js):
// the page's CSS cannot restyle it, and it adds nothing to the page. The engine runs behind
// the client of the runtime (client.js: a worker); the picture shown is the engine's own
// preview of the bytes it classified (widget/preview.js), so the page decodes nothing.
//
// Privacy by construction: the image is read from the local file (picker, drop or paste) and
// handed to a same-origin worker; nothing here ever sends it anywhere. After the manifest, the
// runtime and the model have been fetched, the element makes no request.
import { adoptStyles } from './widget/styles.js';
import { buildView, showModels, showResult, threshold, fmtMB } from './widget/view.js';
import { drawOverlay } from './widget/overlay.js';
import { attachRoiInput, clampRoi } from './widget/roi.js';
import { showImage, hideImage, fitImage } from './widget/preview.js';

const MAX_FILE_BYTES = 256 * 1024 * 1024; // CSASN_MAX_IMAGE_BYTES (src/csasn.h), as the CLI and the API
const DEFAULTS = { runtime: 'wasm/', manifest: 'weights/manifest.json' };
const CANCELLED = 'cancelled'; // ERR.CANCELLED of protocol.js (loaded with the runtime)

class CsasnClassifier extends HTMLElement {
  static get observedAttributes() { return ['model', 'manifest', 'runtime']; }

  constructor() {
    super();
    this._shadow = this.attachShadow({ mode: 'open' });
    adoptStyles(this._shadow);
    this._v = null;           // the view (widget/view.js), built on first connection
    this._rt = null;          // the runtime's manifest reader: loadManifest, pickModel
    this._client = null;
    this._manifest = null;
    this._entry = null;       // manifest entry in use
    this._info = null;
    this._ready = false;      // the entry's model is loaded
    this._loading = false;
    this._startGen = 0;       // bumped by every (re)start: older async work is dropped
    this._modelGen = 0;       // bumped by every model load: results of the previous one are dropped
    this._image = null;       // {name, bytes: Uint8Array, w, h, pending, shown, preview}
    this._roi = null;         // {x,y,w,h} in image pixels, null = whole image
    this._drag = null;
    this._result = null;
    this._run = null;         // the classification in flight
    this._queued = false;     // a classification waiting for it (the newest region wins)
    this._resultSeq = 0;
  }

  // ---- attributes and properties -----------------------------------------------------------
  get model() { return this.getAttribute('model'); }
  set model(v) { this._reflect('model', v); }
  get manifest() { return this.getAttribute('manifest'); }
  set manifest(v) { this._reflect('manifest', v); }
  get runtime() { return this.getAttribute('runtime'); }
  set runtime(v) { this._reflect('runtime', v); }
  get info() { return this._info ? JSON.parse(JSON.stringify(this._info)) : null; }
  get result() { return this._result; }

  // ---- exam report (web/exam/ builds on it): src/report.c in this element's worker, for the
  // model it has loaded, so the page's report is the bytes `csasn report` writes.
  report(images, options = {}) {
    if (!this._client || !this._ready) return Promise.reject(new Error('no model is loaded yet'));
    return this._client.report(images, options);
  }

  _reflect(name, v) {
    if (v === null || v === undefined) this.removeAttribute(name);
    else this.setAttribute(name, String(v));
  }

  attributeChangedCallback(name, old, value) {
    if (!this._v || !this.isConnected) return; // connectedCallback reads them
    if (name === 'model') this._selectModel(); // also when unchanged: retries a failed load
    else if (old !== value) this._start(name === 'runtime');
  }

  connectedCallback() {
    if (!this._v) {
      this._v = buildView({ notes: !this.hasAttribute('hide-notes') });
      this._shadow.append(this._v.root);
      this._bindView();
    }
    this._bindPage();
    this._start(true);
  }

  disconnectedCallback() {
    this._startGen++;
    this._modelGen++;
    this._unbindPage();
    if (this._client) this._client.free();
    this._client = null;
    this._rt = null;
    this._run = null;
  }

  // ---- wiring ---------------------------------------------------------------------------
  _bindView() {
    const v = this._v;
    v.file.addEventListener('change', () => {
      const f = v.file.files && v.file.files[0];
      if (f) this.openFile(f);
      v.file.value = ''; // choosing the same file again must fire change again
    });
    v.openBtn.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); v.file.click(); }
    });
    v.reset.addEventListener('click', () => this.setRoi(null));
    v.attToggle.addEventListener('change', () => this._drawOverlay());
    v.maskToggle.addEventListener('change', () => this._drawOverlay());
    v.select.addEventListener('change', () => { this.model = v.select.value; });
    const st = v.stage;
    st.addEventListener('dragover', (e) => { e.preventDefault(); st.classList.add('cz-drop'); });
    st.addEventListener('dragleave', () => st.classList.remove('cz-drop'));
    st.addEventListener('drop', (e) => {
      e.preventDefault();
      st.classList.remove('cz-drop');
      const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) this.openFile(f);
      else this._showError('Nothing to open: drop an image file (PNG, JPEG, BMP, GIF or PGM).', 'image');
    });
    v.empty.addEventListener('click', () => v.file.click());
    attachRoiInput(v.overlay, {
      image: () => (this._image && this._image.shown ? this._image : null),
      roi: () => this._roi,
      onDrag: (d) => { this._drag = d; this._drawOverlay(); },
      onPreview: (r) => { this._roi = r; this._drawOverlay(); },
      onRoi: (r) => this.setRoi(r),
    });
  }

  // Listeners outside the element, removed when it leaves the page.
  _bindPage() {
    this._onPaste = (e) => {
      if (document.querySelectorAll('csasn-classifier').length > 1 && !this.contains(document.activeElement)) return;
      const items = e.clipboardData ? [...e.clipboardData.items] : [];
      const it = items.find((i) => i.kind === 'file');
      if (!it) return;
      e.preventDefault();
      const f = it.getAsFile();
      if (f) this.openFile(f, f.name || 'pasted image');
    };
    document.addEventListener('paste', this._onPaste);
    // Re-fit the image when the stage's width changes (window resize, layout switch).
    this._ro = new ResizeObserver(() => {
      const w = this._v.stage.clientWidth;
      if (w === this._stageW) return;
      this._stageW = w;
      this._fit();
    });
    this._ro.observe(this._v.stage);
    this._onWinResize = () => this._fit();
    window.addEventListener('resize', this._onWinResize);
  }

  _unbindPage() {
    document.removeEventListener('paste', this._onPaste);
    window.removeEventListener('resize', this._onWinResize);
    if (this._ro) this._ro.disconnect();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  // ---- runtime, manifest, model ------------------------------------------------------------
  // (Re)reads the manifest, and the runtime too when newRuntime, then loads the model.
  async _start(newRuntime) {
    const gen = ++this._startGen;
    this._modelGen++;
    this._preempt();
    if (newRuntime && this._client) {
      this._client.free();
      this._client = null;
      this._rt = null;
    }
    this._manifest = null;
    this._entry = null;
    this._ready = false;
    this._loading = false;
    this.setAttribute('data-state', 'starting');
    this._setStatus('Loading model list…');
    try {
      const base = document.baseURI;
      if (!this._rt) {
        const runtime = new URL(this.getAttribute('runtime') || DEFAULTS.runtime, base);
        const manifestJs = import(new URL('manifest.js', runtime).href);
        manifestJs.catch(() => {}); // (its failure is reported below, when awaited)
        const client = await import(new URL('client.js', runtime).href);
        if (gen !== this._startGen) return;
        if (!this._client) this._client = client.createClient(); // its worker compiles the engine while the rest loads
        const manifest = await manifestJs;
        if (gen !== this._startGen) return;
        this._rt = { loadManifest: manifest.loadManifest, pickModel: manifest.pickModel };
      }
      const url = new URL(this.getAttribute('manifest') || DEFAULTS.manifest, base);
      const man = await this._rt.loadManifest(url.href);
      if (gen !== this._startGen) return;
      this._manifest = man;
      showModels(this._v, man.models);
      this._v.select.disabled = false;
      this._selectModel();
    } catch (e) {
      if (gen === this._startGen) this._fatal(e.message, e.code);
    }
  }

  _selectModel() {
    if (!this._manifest) return;
    const want = this.getAttribute('model');
    const m = want ? this._rt.pickModel(this._manifest, want) : this._manifest.models.find((x) => x.isDefault);
    if (!m) {
      // Nothing keeps answering under a model the element no longer names.
      this._modelGen++;
      this._preempt();
      this._entry = null;
      this._ready = false;
      this._loading = false;
      this._info = null;
      this._result = null;
      this._showResult(null);
      this._drawOverlay();
      this._v.select.value = '';
      this.setAttribute('data-state', 'model-error');
      const msg = `There is no model "${want}" in the model list.`;
      this._v.modelError.textContent = msg;
      this._v.modelError.hidden = false;
      this._setStatus('No model loaded. Choose another model above.');
      this._emit('csasn-error', { message: msg, code: 'manifest' });
      return;
    }
    if (m === this._entry && (this._ready || this._loading)) return;
    this._loadModel(m);
  }

  async _loadModel(m) {
    const v = this._v;
    const gen = ++this._modelGen; // results of the previous model are dropped
    this._preempt();
    this._entry = m;
    this._ready = false;
    this._loading = true;
    this._info = null;
    this.setAttribute('data-state', 'loading-model');
    this.setAttribute('data-model', m.id);
    v.select.value = m.id;
    v.select.disabled = true;
    this._clearError();
    v.modelError.hidden = true;
    if (m.cardUrl) { v.card.href = m.cardUrl.href; v.card.hidden = false; } else v.card.hidden = true;
    v.card.setAttribute('aria-label', `Model card for ${m.title} (opens in a new tab)`);
    v.modelMeta.textContent = '';
    this._result = null;
    this._showResult(null); // the shown result belongs to the previous model
    this._drawOverlay();
    this._setStatus(`Loading ${m.title}…`);
    v.progressBox.hidden = false;
    v.progress.removeAttribute('value'); // indeterminate until the size is known
    v.progressText.textContent = 'Downloading model…';
    const t0 = performance.now();
    try {
      const r = await this._client.load(m, {
        onProgress: (loaded, total) => {
          if (gen !== this._modelGen) return;
          if (total) {
            v.progress.value = Math.min(1, loaded / total);
            v.progressText.textContent = `Downloading model ${fmtMB(loaded)} of ${fmtMB(total)}`;
          } else v.progressText.textContent = `Downloading model ${fmtMB(loaded)}`;
        },
      });
      if (gen !== this._modelGen) return;
      this._loading = false;
      this._info = r.info;
      this._loadTiming = { ...r.timing, totalMs: performance.now() - t0 };
      this._ready = true;
      v.progressBox.hidden = true;
      v.select.disabled = false;
      v.modelMeta.textContent = `${r.info.labels.length} classes · ${r.info.inputSize} px · ${fmtMB(r.timing.bytes)} · SHA-256 verified`;
      v.modelMeta.title = `${r.info.name}: ${r.info.labels.join(', ')}`;
      this.setAttribute('data-state', 'ready');
      this._setStatus(this._image ? 'Analysing…' : 'Ready. Open an image to analyse it.');
      this._emit('csasn-ready', { info: this.info, timing: this._loadTiming });
      if (this._image) this._classify(); // same image, new model
    } catch (e) {
      if (gen !== this._modelGen || e.code === CANCELLED) return;
      this._loading = false;
      v.progressBox.hidden = true;
      v.select.disabled = false;
      this.setAttribute('data-state', 'model-error');
      const msg = e.code === 'integrity' ? `Model "${m.title}" refused: ${e.message}` : `Model "${m.title}" could not be loaded: ${e.message}`;
      this._setStatus('No model loaded. Choose another model above.');
      v.modelError.textContent = msg;
      v.modelError.hidden = false;
      this._emit('csasn-error', { message: msg, code: e.code });
    }
  }

  // ---- images -----------------------------------------------------------------------------
  async openFile(file, name) {
    if (file.size > MAX_FILE_BYTES) {
      this._clearImage();
      this._showError(`"${file.name}" is ${fmtMB(file.size)}; files above ${fmtMB(MAX_FILE_BYTES)} are not accepted.`, 'image');
      return;
    }
    let buf;
    try {
      buf = await file.arrayBuffer();
    } catch (e) {
      this._showError(`"${file.name}" could not be read: ${e.message}`, 'image');
      return;
    }
    return this.openBytes(buf, name || file.name);
  }

  openBytes(buf, name = 'image') {
    const bytes = new Uint8Array(buf.slice(0));
    this._preempt(); // the image being analysed is of no interest any more
    this._clearError();
    this._roi = null;
    this._result = null;
    this.removeAttribute('data-roi');
    // Shown once the engine has accepted it, from the engine's own preview.
    this._image = { name, bytes, w: 0, h: 0, pending: true, shown: false, preview: null };
    return this._classify();
  }

  setRoi(roi) {
    const img = this._image;
    if (!img || !img.shown) return;
    this._roi = roi ? clampRoi(roi, img.w, img.h) : null;
    this._v.reset.disabled = !this._roi;
    this._drawOverlay();
    this._classify();
  }

  _clearImage() {
    this._image = null;
    this._result = null;
    this._roi = null;
    hideImage(this._v);
    this._v.reset.disabled = true;
    this.removeAttribute('data-roi');
    this.removeAttribute('data-image-size');
    this._showResult(null);
  }

  // Ends the classification in flight (the client replaces its worker at once, without a
  // request), for a new image or model that makes its answer useless.
  _preempt() {
    if (!this._run) return;
    this._run = null;
    this._queued = false;
    this._client.cancel();
    this._v.busy.hidden = true;
  }

  // Runs the engine on the current image and region. While one run is in flight, later
  // region changes collapse into one (the newest region wins), so dragging never queues up work.
  async _classify() {
    const img = this._image;
    if (!img || !this._client) return;
    if (!this._ready) {
      // The model load classifies it when it lands.
      if (!this._loading) this._showError('No model is loaded: choose a model above.', 'state');
      return;
    }
    if (this._run) {
      this._queued = true;
      return;
    }
    const run = (this._run = {});
    const gen = this._modelGen;
    const roi = this._roi ? { ...this._roi } : null;
    this._v.busy.hidden = false;
    this.setAttribute('data-state', 'busy');
    this._setStatus('Analysing…');
    try {
      const r = await this._client.classify(img.bytes, { roi, preview: !img.shown });
      if (this._run !== run || this._image !== img || gen !== this._modelGen) return;
      img.w = r.image.w;
      img.h = r.image.h;
      img.pending = false;
      if (!img.shown) {
        img.preview = r.preview || null;
        img.shown = true;
        this.setAttribute('data-image-size', `${img.w},${img.h}`);
        showImage(this._v, img);
        this._fit();
      }
      this._result = r;
      this._showResult(r);
      this._drawOverlay();
      if (!this._firstResultAt) {
        this._firstResultAt = performance.now();
        this.setAttribute('data-first-result-ms', this._firstResultAt.toFixed(1));
      }
      this._emit('csasn-result', { result: r });
    } catch (e) {
      if (this._run !== run || e.code === CANCELLED) return;
      if (this._image === img && gen === this._modelGen) {
        if (e.code === 'image' || img.pending) {
          const name = img.name;
          this._clearImage();
          this._showError(`"${name}" could not be analysed: ${e.message}.`, e.code || 'image');
        } else this._showError(e.message, e.code);
      }
    } finally {
      if (this._run === run) {
        this._run = null;
        this._v.busy.hidden = true;
        this.setAttribute('data-state', this._ready ? 'ready' : 'loading-model');
        if (!this._queued && this._image && !this._image.pending) this._setStatus(`Result for ${this._image.name}`);
        else if (!this._image) this._setStatus(this._ready ? 'Ready. Open an image to analyse it.' : 'No model loaded.');
        if (this._queued) {
          this._queued = false;
          this._classify();
        }
      }
    }
  }

  // ---- drawing ------------------------------------------------------------------------------
  _fit() {
    const img = this._image;
    if (!img || !img.shown) return;
    fitImage(this._v, img);
    this._drawOverlay();
  }

  _drawOverlay() {
    const img = this._image;
    if (!img || !img.shown || this._v.canvases.hidden) return;
    drawOverlay(this._v.overlay, {
      image: img, result: this._result, roi: this._roi, drag: this._drag,
      attention: this._v.attToggle.checked, mask: this._v.maskToggle.checked,
    });
  }

  _showResult(r) {
    showResult(this._v, r, this._info, threshold(this._info));
    if (!r) {
      this.removeAttribute('data-result-seq');
      return;
    }
    this.setAttribute('data-roi', r.roi ? `${r.roi.x},${r.roi.y},${r.roi.w},${r.roi.h}` : 'full');
    // the region the model read (its region rule applied to the box), outlined on the image
    if (r.region) this.setAttribute('data-region', `${r.region.x},${r.region.y},${r.region.w},${r.region.h}`);
    else this.removeAttribute('data-region');
    this.setAttribute('data-result-seq', String(++this._resultSeq));
  }

  // ---- status and errors ------------------------------------------------------------------
  _setStatus(t) { this._v.status.textContent = t; }

  _showError(msg, code) {
    this._v.error.textContent = msg;
    this._v.error.hidden = false;
    this._v.error.setAttribute('data-code', code);
    this._emit('csasn-error', { message: msg, code });
  }

  _clearError() {
    this._v.error.hidden = true;
    this._v.error.textContent = '';
  }

  _fatal(msg, code) {
    this.setAttribute('data-state', 'error');
    this._setStatus('Unavailable.');
    this._v.progressBox.hidden = true;
    this._v.modelError.textContent = `The classifier could not start: ${msg}`;
    this._v.modelError.hidden = false;
    this._emit('csasn-error', { message: msg, code: code || 'internal' });
  }
}

/** Measurement hooks of one element for the benchmark (tools/bench.cjs through web/app.js),
 *  kept off the element's own surface: run(n) = engine ms of n classifications of the open
 *  image inside the worker; roundTrips(n) = page-measured ms of n classify requests (engine +
 *  messaging); loadTiming = the worker's split of the last model load. */
export function benchHooks(el) {
  return {
    run: (n = 30) => el._client.bench(n, { roi: el._roi }),
    roundTrips: async (n = 30) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await el._client.classify(null, { roi: el._roi });
        out.push(performance.now() - t0);
      }
      return out;
    },
    get loadTiming() { return el._loadTiming || null; },
  };
}

if (!customElements.get('csasn-classifier')) customElements.define('csasn-classifier', CsasnClassifier);
export { CsasnClassifier };
