// widget.js - <csasn-classifier>: the whole classifier UI as one embeddable element.
//
//   <link rel="stylesheet" href="widget.css">            (added automatically if missing)
//   <script type="module" src="widget.js"></script>
//   <csasn-classifier manifest="weights/manifest.json" runtime="wasm/" model="thyroid-ddti">
//   </csasn-classifier>
//
// Attributes: manifest (URL of the model manifest), runtime (folder holding worker.js,
// csasn.js, csasn.mjs, csasn.wasm), model (manifest id to start with; default: the
// manifest's default), hide-notes (the host page shows the research-use and privacy notes
// itself). URLs resolve against the page's URL. A portal on another origin embeds
// the page in an iframe instead (web workers must be same-origin; see embed.html).
//
// Privacy by construction: the image is read from the local file (picker, drop or paste) and
// handed to a same-origin worker by postMessage; nothing here ever sends it anywhere. After
// the manifest, the runtime and the model have been fetched, the element makes no request.
//
// Events: csasn-ready {info}, csasn-result {result}, csasn-error {message, code}.
// Methods: openFile(File), openBytes(ArrayBuffer, name), setRoi({x,y,w,h}|null),
//          bench(n) -> worker-side ms per classification of the current image.

const MAX_FILE_BYTES = 256 * 1024 * 1024; // CSASN_MAX_IMAGE_BYTES (src/csasn.h), as the CLI and the API
const PREVIEW_MAX_PIXELS = 16e6; // larger scans are shown downscaled (the engine sees all pixels)
const ACCEPT = 'image/png,image/jpeg,image/bmp,image/gif,image/x-portable-graymap,image/x-portable-pixmap,.png,.jpg,.jpeg,.bmp,.gif,.pgm,.ppm,.pnm';

const fmtPct = (p) => (p * 100).toFixed(1) + '%';
const fmtMB = (n) => (n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0) + ' MB';
const fmtMs = (ms) => (ms < 10 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

// Binary PGM/PPM (P5/P6, 8 or 16 bit) and ASCII (P2/P3): browsers cannot show them, so the
// preview decodes them here. The engine decodes the same bytes independently for inference.
function decodePNM(u8) {
  let i = 2;
  const kind = u8[1] - 48; // 2,3,5,6
  const tok = () => {
    for (;;) {
      while (i < u8.length && /\s/.test(String.fromCharCode(u8[i]))) i++;
      if (u8[i] === 35) { while (i < u8.length && u8[i] !== 10 && u8[i] !== 13) i++; continue; }
      break;
    }
    let s = '';
    while (i < u8.length && !/\s/.test(String.fromCharCode(u8[i]))) s += String.fromCharCode(u8[i++]);
    return s;
  };
  const w = parseInt(tok(), 10), h = parseInt(tok(), 10), maxv = parseInt(tok(), 10);
  if (!(w > 0 && h > 0 && maxv > 0 && maxv < 65536) || w * h > 100e6) throw new Error('bad PNM header');
  const ch = kind === 3 || kind === 6 ? 3 : 1;
  const out = new ImageData(w, h);
  const d = out.data, n = w * h;
  const scale = 255 / maxv;
  if (kind === 5 || kind === 6) {
    i++; // the single whitespace after maxval
    const bps = maxv > 255 ? 2 : 1;
    if (i + n * ch * bps > u8.length) throw new Error('truncated PNM');
    for (let p = 0; p < n; p++) {
      for (let c = 0; c < 3; c++) {
        const q = i + (p * ch + (ch === 3 ? c : 0)) * bps;
        const v = bps === 2 ? (u8[q] << 8) | u8[q + 1] : u8[q];
        d[p * 4 + c] = Math.round(v * scale);
      }
      d[p * 4 + 3] = 255;
    }
  } else {
    for (let p = 0; p < n; p++) {
      const vals = [];
      for (let c = 0; c < ch; c++) vals.push(parseInt(tok(), 10));
      if (vals.some((v) => !(v >= 0))) throw new Error('truncated PNM');
      for (let c = 0; c < 3; c++) d[p * 4 + c] = Math.round(vals[ch === 3 ? c : 0] * scale);
      d[p * 4 + 3] = 255;
    }
  }
  return out;
}

async function decodePreview(u8) {
  if (u8.length > 2 && u8[0] === 80 && u8[1] >= 50 && u8[1] <= 54 && u8[1] !== 52) {
    const id = decodePNM(u8);
    return { source: await createImageBitmap(id), w: id.width, h: id.height };
  }
  const blob = new Blob([u8]);
  let bmp;
  try {
    // Engine coordinates ignore EXIF orientation (stb_image does), so the preview must too.
    bmp = await createImageBitmap(blob, { imageOrientation: 'none', premultiplyAlpha: 'none' });
  } catch {
    bmp = await createImageBitmap(blob);
  }
  return { source: bmp, w: bmp.width, h: bmp.height };
}

// Perceptually ordered heat colours for the attention overlay (dark blue -> cyan -> green ->
// yellow -> red), alpha growing with the value so low attention leaves the image visible.
const HEAT = [[0, 30, 60, 200], [0.3, 0, 170, 230], [0.55, 60, 220, 120], [0.78, 250, 220, 40], [1, 240, 40, 30]];
function heat(v) {
  for (let k = 1; k < HEAT.length; k++) {
    if (v <= HEAT[k][0] || k === HEAT.length - 1) {
      const [a, ...ca] = HEAT[k - 1], [b, ...cb] = HEAT[k];
      const t = Math.min(1, Math.max(0, (v - a) / (b - a)));
      return ca.map((c, j) => Math.round(c + (cb[j] - c) * t));
    }
  }
  return [0, 0, 0];
}

function mapToCanvas(map, colour) {
  const c = document.createElement('canvas');
  c.width = map.w;
  c.height = map.h;
  const g = c.getContext('2d');
  const img = g.createImageData(map.w, map.h);
  let lo = Infinity, hi = -Infinity;
  for (const v of map.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi - lo > 1e-6 ? hi - lo : 1;
  for (let i = 0; i < map.data.length; i++) {
    const [r, gg, b, a] = colour(map.data[i], (map.data[i] - lo) / span);
    img.data.set([r, gg, b, a], i * 4);
  }
  g.putImageData(img, 0, 0);
  return c;
}

// Lesion mask -> outline: the probability map is upsampled bilinearly (pixel centres, as
// PyTorch's align_corners=False), thresholded at 0.5, and drawn as a crisp contour over a faint
// fill, so the attention colours underneath stay readable.
function maskOutline(map) {
  const f = Math.max(1, Math.round(384 / Math.max(map.w, map.h)));
  const W = map.w * f, H = map.h * f;
  const inside = new Uint8Array(W * H);
  const at = (x, y) => map.data[Math.min(map.h - 1, Math.max(0, y)) * map.w + Math.min(map.w - 1, Math.max(0, x))];
  for (let y = 0; y < H; y++) {
    const sy = (y + 0.5) / f - 0.5, y0 = Math.floor(sy), ty = sy - y0;
    for (let x = 0; x < W; x++) {
      const sx = (x + 0.5) / f - 0.5, x0 = Math.floor(sx), tx = sx - x0;
      const v = (at(x0, y0) * (1 - tx) + at(x0 + 1, y0) * tx) * (1 - ty) + (at(x0, y0 + 1) * (1 - tx) + at(x0 + 1, y0 + 1) * tx) * ty;
      inside[y * W + x] = v >= 0.5 ? 1 : 0;
    }
  }
  const c = document.createElement('canvas');
  c.width = W;
  c.height = H;
  const g = c.getContext('2d');
  const img = g.createImageData(W, H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!inside[i]) continue;
      // 2 px wide: an inside pixel within two steps of an outside one (or of the border).
      const edge = x < 2 || y < 2 || x >= W - 2 || y >= H - 2 || !inside[i - 1] || !inside[i + 1] || !inside[i - W] ||
        !inside[i + W] || !inside[i - 2] || !inside[i + 2] || !inside[i - 2 * W] || !inside[i + 2 * W];
      img.data.set(edge ? [190, 242, 100, 255] : [190, 242, 100, 34], i * 4);
    }
  }
  g.putImageData(img, 0, 0);
  return c;
}

let nextId = 1;

class CsasnClassifier extends HTMLElement {
  constructor() {
    super();
    this._pending = new Map(); // request id -> {resolve, reject, onProgress}
    this._models = [];
    this._model = null;        // manifest entry in use
    this._info = null;
    this._image = null;        // {name, bytes:Uint8Array, w, h, preview, seq}
    this._imageSeq = 0;
    this._roi = null;          // {x,y,w,h} in image pixels, null = whole image
    this._result = null;
    this._busy = false;
    this._queued = null;       // a classification waiting for the busy one to finish
    this._drag = null;
    this._resultSeq = 0;
    this._ready = false;
  }

  connectedCallback() {
    if (this._built) return;
    this._built = true;
    this._ensureStyles();
    this._render();
    this._bind();
    this._start().catch((e) => this._fatal(e.message));
  }

  disconnectedCallback() {
    if (this._worker) this._worker.terminate();
    this._worker = null;
    if (this._onPaste) document.removeEventListener('paste', this._onPaste);
    if (this._onWinResize) window.removeEventListener('resize', this._onWinResize);
    if (this._ro) this._ro.disconnect();
    this._built = false;
  }

  _ensureStyles() {
    const href = new URL('widget.css', import.meta.url).href;
    if ([...document.querySelectorAll('link[rel="stylesheet"]')].some((l) => l.href === href)) return;
    document.head.append(el('link', { rel: 'stylesheet', href }));
  }

  // ---- DOM ------------------------------------------------------------------------------
  _render() {
    const uid = 'cz' + Math.random().toString(36).slice(2, 8);
    this.classList.add('cz');
    this.setAttribute('data-state', 'starting');
    this.replaceChildren();

    // Model bar
    this.$select = el('select', { id: uid + '-model', 'data-testid': 'model-select', disabled: true });
    this.$card = el('a', { class: 'cz-link', 'data-testid': 'model-card', target: '_blank', rel: 'noopener', hidden: true, text: 'Model card' });
    this.$modelMeta = el('span', { class: 'cz-modelmeta', 'data-testid': 'model-meta' });
    this.$progress = el('progress', { max: '1', value: '0', 'data-testid': 'model-progress', 'aria-label': 'Model download' });
    this.$progressText = el('span', { class: 'cz-progress-text' });
    this.$progressBox = el('div', { class: 'cz-progress', hidden: true }, this.$progress, this.$progressText);
    this.$modelError = el('div', { class: 'cz-error cz-model-error', role: 'alert', 'data-testid': 'model-error', hidden: true });
    const bar = el('div', { class: 'cz-bar' },
      el('label', { for: uid + '-model', class: 'cz-bar-label', text: 'Model' }), this.$select, this.$card,
      this.$modelMeta, this.$progressBox);

    // Viewer
    this.$file = el('input', { type: 'file', id: uid + '-file', accept: ACCEPT, class: 'cz-sr', tabindex: '-1', 'data-testid': 'file-input' }); // reached through the Open image button
    const openBtn = el('label', { for: uid + '-file', class: 'cz-btn cz-btn-primary', tabindex: '0', role: 'button', 'data-testid': 'open-button' });
    openBtn.append(el('span', { 'aria-hidden': 'true', class: 'cz-ico', text: '⤒' }), ' Open image…');
    this.$openBtn = openBtn;
    this.$reset = el('button', { type: 'button', class: 'cz-btn', 'data-testid': 'roi-reset', disabled: true, text: 'Reset region' });
    this.$reset.title = 'Forget the drawn region and analyse the whole image';
    this.$attToggle = el('input', { type: 'checkbox', id: uid + '-att', 'data-testid': 'toggle-attention', checked: true });
    this.$maskToggle = el('input', { type: 'checkbox', id: uid + '-mask', 'data-testid': 'toggle-mask', checked: true });
    this.$maskLabel = el('label', { for: uid + '-mask', class: 'cz-toggle', hidden: true }, this.$maskToggle, ' Lesion mask');
    const tools = el('div', { class: 'cz-tools' }, this.$file, openBtn, this.$reset,
      el('label', { for: uid + '-att', class: 'cz-toggle' }, this.$attToggle, ' Attention map'), this.$maskLabel);

    this.$canvas = el('canvas', { class: 'cz-image', 'data-testid': 'image-canvas', 'aria-hidden': 'true' });
    this.$overlay = el('canvas', {
      class: 'cz-overlay', 'data-testid': 'roi-canvas', tabindex: '0', role: 'img',
      'aria-label': 'Ultrasound image. Drag to select the region to analyse; arrow keys move the region, Shift with arrow keys resizes it, Escape resets it.',
    });
    this.$canvases = el('div', { class: 'cz-canvases', hidden: true }, this.$canvas, this.$overlay);
    const empty = el('div', { class: 'cz-empty' },
      el('div', { class: 'cz-empty-icon', 'aria-hidden': 'true', text: '◎' }),
      el('p', { class: 'cz-empty-title', text: 'Open an ultrasound image' }),
      el('p', { text: 'Drop a file here, paste it (Ctrl+V) or use Open image.' }),
      el('p', { class: 'cz-muted', text: 'PNG, JPEG, BMP, GIF or PGM. The image is analysed on this device and never uploaded.' }));
    this.$empty = empty;
    this.$busy = el('div', { class: 'cz-busy', hidden: true, 'aria-hidden': 'true' }, el('span', { class: 'cz-spinner' }), ' Analysing…');
    this.$stage = el('div', { class: 'cz-stage', 'data-testid': 'dropzone' }, empty, this.$canvases, this.$busy);
    this.$error = el('div', { class: 'cz-error', role: 'alert', 'data-testid': 'error', hidden: true });
    this.$imageInfo = el('p', { class: 'cz-imageinfo', 'data-testid': 'image-info' });
    this.$hint = el('p', { class: 'cz-hint', text: 'Drag a rectangle around the nodule to analyse just that region. Keyboard: focus the image, arrows move the region, Shift+arrows resize, Esc resets.' });
    const viewer = el('section', { class: 'cz-card cz-viewer', 'aria-label': 'Image and region of interest' },
      tools, this.$stage, this.$error, this.$imageInfo, this.$hint);

    // Results
    this.$status = el('p', { class: 'cz-status', 'data-testid': 'status', role: 'status', text: 'Starting…' });
    this.$topLabel = el('div', { class: 'cz-top-label', 'data-testid': 'top-label' });
    this.$topProb = el('div', { class: 'cz-top-prob', 'data-testid': 'top-prob' });
    this.$top = el('div', { class: 'cz-top', hidden: true },
      el('div', { class: 'cz-kicker', text: 'Most likely class' }), this.$topLabel, this.$topProb);
    this.$maligValue = el('span', { class: 'cz-malig-value', 'data-testid': 'malignancy-value' });
    this.$maligFill = el('span', { class: 'cz-meter-fill' });
    this.$maligTick = el('span', { class: 'cz-meter-tick', title: 'operating point' });
    this.$maligNote = el('p', { class: 'cz-muted cz-small' });
    this.$malig = el('div', { class: 'cz-malig', 'data-testid': 'malignancy', hidden: true },
      el('div', { class: 'cz-malig-head' }, el('span', { text: 'Malignancy risk' }), this.$maligValue),
      el('div', { class: 'cz-meter', role: 'presentation' }, this.$maligFill, this.$maligTick), this.$maligNote);
    this.$probs = el('ol', { class: 'cz-probs', 'data-testid': 'probs', 'aria-label': 'Probability of each class' });
    this.$probsBox = el('div', { class: 'cz-probs-box', hidden: true },
      el('h3', { class: 'cz-h', text: 'Class probabilities' }), this.$probs);
    this.$latency = el('span', { 'data-testid': 'latency' });
    this.$roiText = el('span', { 'data-testid': 'roi-text' });
    this.$meta = el('p', { class: 'cz-meta', hidden: true }, 'Inference ', this.$latency, ' on this device · Region ', this.$roiText);
    this.$legendMask = el('span', { class: 'cz-legend-item', hidden: true },
      el('span', { class: 'cz-legend-swatch', 'aria-hidden': 'true' }), el('span', { class: 'cz-small cz-muted', text: 'Lesion outline (mask ≥ 50%)' }));
    this.$legend = el('div', { class: 'cz-legend', hidden: true },
      el('span', { class: 'cz-legend-item' }, el('span', { class: 'cz-legend-bar', 'aria-hidden': 'true' }),
        el('span', { class: 'cz-small cz-muted', text: 'Attention: low → high (relative, within the region)' })),
      this.$legendMask);
    this.$placeholder = el('div', { class: 'cz-placeholder' },
      el('p', { text: 'The result appears here:' }),
      el('ul', {}, el('li', { text: 'the probability of every class of the selected model,' }),
        el('li', { text: 'the malignancy risk, where the model estimates it,' }),
        el('li', { text: 'an attention map showing where the model looked,' }),
        el('li', { text: 'the lesion outline, where the model segments it.' })));
    const results = el('section', { class: 'cz-card cz-results', 'aria-label': 'Result', 'aria-live': 'polite' },
      this.$status, this.$placeholder, this.$top, this.$malig, this.$probsBox, this.$meta, this.$legend);

    const foot = el('p', { class: 'cz-foot' },
      el('strong', { text: 'Research use only — not a diagnosis.' }),
      ' Results must be interpreted by a qualified clinician. Images are processed on this device and never leave it.');

    // A page that shows its own notes (index.html) sets hide-notes; an embed keeps them.
    if (this.hasAttribute('hide-notes')) foot.hidden = true;
    this.append(bar, this.$modelError, el('div', { class: 'cz-grid' }, viewer, results), foot);
  }

  _bind() {
    this.$file.addEventListener('change', () => {
      const f = this.$file.files && this.$file.files[0];
      if (f) this.openFile(f);
      this.$file.value = ''; // choosing the same file again must fire change again
    });
    this.$openBtn.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.$file.click(); }
    });
    this.$reset.addEventListener('click', () => this.setRoi(null));
    this.$attToggle.addEventListener('change', () => this._drawOverlay());
    this.$maskToggle.addEventListener('change', () => this._drawOverlay());
    this.$select.addEventListener('change', () => {
      const m = this._models.find((x) => x.id === this.$select.value);
      if (m) this._loadModel(m).catch(() => {});
    });

    const st = this.$stage;
    st.addEventListener('dragover', (e) => { e.preventDefault(); st.classList.add('cz-drop'); });
    st.addEventListener('dragleave', () => st.classList.remove('cz-drop'));
    st.addEventListener('drop', (e) => {
      e.preventDefault();
      st.classList.remove('cz-drop');
      const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) this.openFile(f);
      else this._showError('Nothing to open: drop an image file (PNG, JPEG, BMP, GIF or PGM).');
    });
    this.$empty.addEventListener('click', () => this.$file.click());

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

    const ov = this.$overlay;
    ov.addEventListener('pointerdown', (e) => {
      if (!this._image || e.button !== 0) return;
      e.preventDefault();
      ov.focus();
      ov.setPointerCapture(e.pointerId);
      const p = this._toImage(e);
      this._drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
      this._drawOverlay();
    });
    ov.addEventListener('pointermove', (e) => {
      if (!this._drag) return;
      const p = this._toImage(e);
      this._drag.x1 = p.x;
      this._drag.y1 = p.y;
      this._drawOverlay();
    });
    const end = (e) => {
      if (!this._drag) return;
      const p = this._toImage(e);
      const d = this._drag;
      this._drag = null;
      d.x1 = p.x;
      d.y1 = p.y;
      const roi = this._dragRoi(d);
      if (roi) this.setRoi(roi);
      else this._drawOverlay(); // a click, not a drag: keep the current region
    };
    ov.addEventListener('pointerup', end);
    ov.addEventListener('pointercancel', () => { this._drag = null; this._drawOverlay(); });
    ov.addEventListener('keydown', (e) => this._onKey(e));
    // Re-fit the image when the stage's width changes (window resize, layout switch).
    this._ro = new ResizeObserver(() => {
      const w = this.$stage.clientWidth;
      if (w === this._stageW) return;
      this._stageW = w;
      this._layout();
    });
    this._ro.observe(this.$stage);
    this._onWinResize = () => this._layout();
    window.addEventListener('resize', this._onWinResize);
  }

  // Pointer -> image pixels (fractional, clamped to the image). The canvas is shown at the
  // image's aspect ratio with no border or padding, so its client rect maps linearly.
  _toImage(e) {
    const r = this.$overlay.getBoundingClientRect();
    const { w, h } = this._image;
    const x = ((e.clientX - r.left) / r.width) * w;
    const y = ((e.clientY - r.top) / r.height) * h;
    return { x: Math.min(w, Math.max(0, x)), y: Math.min(h, Math.max(0, y)) };
  }

  // Drag rectangle -> integer ROI: corners rounded to the nearest pixel edge. Anything
  // smaller than 4x4 pixels is a click, not a region.
  _dragRoi(d) {
    const x0 = Math.round(Math.min(d.x0, d.x1)), x1 = Math.round(Math.max(d.x0, d.x1));
    const y0 = Math.round(Math.min(d.y0, d.y1)), y1 = Math.round(Math.max(d.y0, d.y1));
    if (x1 - x0 < 4 || y1 - y0 < 4) return null;
    return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
  }

  _onKey(e) {
    if (!this._image) return;
    const { w: W, h: H } = this._image;
    if (e.key === 'Escape') { e.preventDefault(); this.setRoi(null); return; }
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const d = dirs[e.key];
    if (!d) return;
    e.preventDefault();
    const step = Math.max(1, Math.round(Math.max(W, H) * 0.02));
    let r = this._roi ? { ...this._roi } : { x: Math.round(W * 0.25), y: Math.round(H * 0.25), w: Math.round(W * 0.5), h: Math.round(H * 0.5) };
    if (this._roi) {
      if (e.shiftKey) { r.w = Math.max(4, r.w + d[0] * step); r.h = Math.max(4, r.h + d[1] * step); }
      else { r.x += d[0] * step; r.y += d[1] * step; }
    }
    r.w = Math.min(r.w, W);
    r.h = Math.min(r.h, H);
    r.x = Math.min(Math.max(0, r.x), W - r.w);
    r.y = Math.min(Math.max(0, r.y), H - r.h);
    this._roi = r;
    this._drawOverlay();
    clearTimeout(this._keyTimer);
    this._keyTimer = setTimeout(() => this.setRoi(this._roi), 200); // classify once typing pauses
  }

  // ---- worker -----------------------------------------------------------------------------
  _call(msg, transfer = [], onProgress = null) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, onProgress });
      this._worker.postMessage({ ...msg, id }, transfer);
    });
  }

  _onWorker(ev) {
    const m = ev.data || {};
    if (m.type === 'ready') return;
    const p = this._pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') { if (p.onProgress) p.onProgress(m.loaded, m.total); return; }
    this._pending.delete(m.id);
    if (m.type === 'error') {
      const err = new Error(m.message);
      err.code = m.code;
      p.reject(err);
    } else p.resolve(m);
  }

  async _start() {
    const base = document.baseURI;
    this._runtime = new URL(this.getAttribute('runtime') || 'wasm/', base);
    this._manifestUrl = new URL(this.getAttribute('manifest') || 'weights/manifest.json', base);
    this._worker = new Worker(new URL('worker.js', this._runtime), { type: 'module', name: 'csasn' });
    this._worker.onmessage = (ev) => this._onWorker(ev);
    this._worker.onerror = (e) => this._fatal(`the analysis engine failed to start (${e.message || 'worker error'})`);

    this._setStatus('Loading model list…');
    let manifest;
    try {
      const res = await fetch(this._manifestUrl, { cache: 'no-cache', credentials: 'same-origin' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      manifest = await res.json();
    } catch (e) {
      throw new Error(`the model list (${this._manifestUrl.pathname}) could not be loaded: ${e.message}`);
    }
    this._models = this._parseManifest(manifest);
    if (!this._models.length) throw new Error('the model manifest lists no models');
    this.$select.replaceChildren(...this._models.map((m) => el('option', { value: m.id, text: m.title })));
    const want = this.getAttribute('model');
    const first = (want && this._models.find((m) => m.id === want || m.file === want)) || this._models.find((m) => m.isDefault) || this._models[0];
    this.$select.value = first.id;
    this.$select.disabled = false;
    await this._loadModel(first).catch(() => {});
  }

  // Accepts {default, models:[{id, name|title, file, sha256, bytes, card, ...}]}; a few
  // alternative spellings are tolerated so a hand-edited manifest still works.
  _parseManifest(j) {
    const list = Array.isArray(j) ? j : Array.isArray(j.models) ? j.models : [];
    const def = j && !Array.isArray(j) ? j.default : null;
    return list.map((e) => {
      const file = e.file || e.path || e.url;
      // id: explicit, else the file name without extension (short, URL-friendly for ?model=).
      const id = e.id || (file ? String(file).split('/').pop().replace(/\.csasn$/i, '') : e.name);
      return {
        id,
        file,
        title: e.title || e.display_name || e.name || id,
        sha256: e.sha256 || '',
        bytes: e.bytes || e.size || 0,
        card: e.card || e.model_card || null,
        description: e.description || '',
        task: e.task || '',
        isDefault: !!e.default || (def != null && (def === id || def === file)),
        url: file ? new URL(file, this._manifestUrl) : null,
        cardUrl: (e.card || e.model_card) ? new URL(e.card || e.model_card, this._manifestUrl) : null,
      };
    }).filter((m) => m.url);
  }

  async _loadModel(m) {
    this._ready = false;
    this._modelGen = (this._modelGen || 0) + 1; // results of the previous model are dropped
    this._model = m;
    this.setAttribute('data-state', 'loading-model');
    this.setAttribute('data-model', m.id);
    this.$select.value = m.id;
    this.$select.disabled = true;
    this._clearError();
    this.$modelError.hidden = true;
    if (m.cardUrl) { this.$card.href = m.cardUrl.href; this.$card.hidden = false; } else this.$card.hidden = true;
    this.$card.textContent = 'Model card';
    this.$card.setAttribute('aria-label', `Model card for ${m.title} (opens in a new tab)`);
    this.$modelMeta.textContent = '';
    this._result = null;
    this._renderResult(null); // the shown result belongs to the previous model
    this._drawOverlay();
    this._setStatus(`Loading ${m.title}…`);
    this.$progressBox.hidden = false;
    this.$progress.removeAttribute('value'); // indeterminate until the size is known
    this.$progressText.textContent = 'Downloading model…';
    // ?v=<sha256> makes the URL content-addressed: the server lets the browser cache it for
    // good, and a new file in the manifest is a new URL.
    const url = new URL(m.url);
    if (m.sha256) url.searchParams.set('v', m.sha256.slice(0, 16));
    const t0 = performance.now();
    try {
      const r = await this._call({ type: 'load', url: url.href, sha256: m.sha256, expectBytes: m.bytes }, [], (loaded, total) => {
        if (total) {
          this.$progress.value = Math.min(1, loaded / total);
          this.$progressText.textContent = `Downloading model ${fmtMB(loaded)} of ${fmtMB(total)}`;
        } else this.$progressText.textContent = `Downloading model ${fmtMB(loaded)}`;
      });
      if (this._model !== m) return; // another model was picked meanwhile
      this._info = r.info;
      this._loadTiming = { ...r.timing, totalMs: performance.now() - t0 };
      this._ready = true;
      this.$progressBox.hidden = true;
      this.$select.disabled = false;
      const nCls = r.info.labels.length;
      this.$modelMeta.textContent = `${nCls} classes · ${r.info.inputSize} px · ${fmtMB(r.timing.bytes)} · SHA-256 verified`;
      this.$modelMeta.title = `${r.info.name}: ${r.info.labels.join(', ')}`;
      this.setAttribute('data-state', 'ready');
      this._setStatus(this._image ? 'Analysing…' : 'Ready. Open an image to analyse it.');
      this.dispatchEvent(new CustomEvent('csasn-ready', { detail: { info: r.info, timing: this._loadTiming } }));
      if (this._image) this._classify(); // same image, new model
    } catch (e) {
      if (this._model !== m) return;
      this.$progressBox.hidden = true;
      this.$select.disabled = false;
      this.setAttribute('data-state', 'model-error');
      const msg = e.code === 'integrity' ? `Model "${m.title}" refused: ${e.message}` : `Model "${m.title}" could not be loaded: ${e.message}`;
      this._setStatus('No model loaded. Choose another model above.');
      this.$modelError.textContent = msg;
      this.$modelError.hidden = false;
      this.dispatchEvent(new CustomEvent('csasn-error', { detail: { message: msg, code: e.code } }));
      throw e;
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
    const seq = ++this._imageSeq;
    const bytes = new Uint8Array(buf.slice(0));
    this._clearError();
    this._roi = null;
    this._result = null;
    this.removeAttribute('data-roi');
    // The browser decodes its preview only after the engine has accepted the file: the
    // engine checks sizes and limits first, so a hostile header never reaches the browser's
    // decoder.
    this._image = { name, bytes, w: 0, h: 0, seq, pending: true, shown: false, preview: null };
    return this._classify(true);
  }

  setRoi(roi) {
    if (!this._image) return;
    if (roi) {
      const { w: W, h: H } = this._image;
      const x = Math.max(0, Math.min(W - 1, roi.x | 0)), y = Math.max(0, Math.min(H - 1, roi.y | 0));
      roi = { x, y, w: Math.max(1, Math.min(W - x, roi.w | 0)), h: Math.max(1, Math.min(H - y, roi.h | 0)) };
    }
    this._roi = roi;
    this.$reset.disabled = !roi;
    this._drawOverlay();
    this._classify();
  }

  _clearImage() {
    this._imageSeq++;
    this._image = null;
    this._result = null;
    this._roi = null;
    this.$canvases.hidden = true;
    this.$empty.hidden = false;
    this.$reset.disabled = true;
    this.$imageInfo.textContent = '';
    this.removeAttribute('data-roi');
    this.removeAttribute('data-image-size');
    this._renderResult(null);
  }

  // Runs the engine on the current image and region. While one run is in flight, later
  // requests collapse into one (the newest region wins), so dragging never queues up work.
  async _classify(newImage = false) {
    const img = this._image;
    if (!img) return;
    const roi = this._roi ? { ...this._roi } : null;
    if (this._busy) {
      this._queued = { newImage: newImage || (this._queued && this._queued.newImage), seq: img.seq };
      return;
    }
    if (!this._ready && !newImage) return; // the model load will classify when it lands
    this._busy = true;
    const gen = this._modelGen;
    this.$busy.hidden = false;
    this.setAttribute('data-state', 'busy');
    this._setStatus('Analysing…');
    try {
      const msg = { type: 'classify', roi };
      const transfer = [];
      if (newImage) {
        const copy = img.bytes.slice(0);
        msg.image = copy.buffer;
        transfer.push(copy.buffer);
      }
      const r = await this._call(msg, transfer);
      if (this._image === img && gen === this._modelGen) {
        img.w = r.result.image.w;
        img.h = r.result.image.h;
        img.pending = false;
        if (!img.shown) {
          img.preview = await decodePreview(img.bytes).catch(() => null);
          if (this._image !== img) return;
          img.shown = true;
          this._showImage();
        }
        this._result = r.result;
        this._renderResult(r.result);
        this._drawOverlay();
        if (!this._firstResultAt) {
          this._firstResultAt = performance.now();
          this.setAttribute('data-first-result-ms', this._firstResultAt.toFixed(1));
        }
        this.dispatchEvent(new CustomEvent('csasn-result', { detail: { result: r.result } }));
      }
    } catch (e) {
      if (this._image === img && gen === this._modelGen) {
        if (e.code === 'image' || img.pending) {
          const name = img.name;
          this._clearImage();
          this._showError(`"${name}" could not be analysed: ${e.message}.`, e.code || 'image');
        } else this._showError(e.message, e.code);
      }
    } finally {
      this._busy = false;
      this.$busy.hidden = true;
      this.setAttribute('data-state', this._ready ? 'ready' : 'loading-model');
      if (!this._queued && this._image && !this._image.pending) this._setStatus(`Result for ${this._image.name}`);
      else if (!this._image) this._setStatus(this._ready ? 'Ready. Open an image to analyse it.' : 'No model loaded.');
      const q = this._queued;
      this._queued = null;
      if (q && this._image) this._classify(q.newImage && q.seq === this._image.seq);
    }
  }

  _showImage() {
    const img = this._image;
    this.$empty.hidden = true;
    this.$canvases.hidden = false;
    this.setAttribute('data-image-size', `${img.w},${img.h}`);
    // The canvas keeps the image's aspect ratio (CSS width 100%, height auto).
    const scale = Math.min(1, Math.sqrt(PREVIEW_MAX_PIXELS / (img.w * img.h)));
    const cw = Math.max(1, Math.round(img.w * scale)), ch = Math.max(1, Math.round(img.h * scale));
    for (const c of [this.$canvas, this.$overlay]) { c.width = cw; c.height = ch; }
    const g = this.$canvas.getContext('2d');
    g.fillStyle = '#000';
    g.fillRect(0, 0, cw, ch);
    if (img.preview) {
      g.imageSmoothingQuality = 'high';
      g.drawImage(img.preview.source, 0, 0, cw, ch);
    } else {
      g.fillStyle = '#9aa4b2';
      g.font = `${Math.max(12, cw / 30)}px system-ui, sans-serif`;
      g.textAlign = 'center';
      g.fillText('Preview not available in this browser', cw / 2, ch / 2);
    }
    this.$imageInfo.textContent = `${img.name} · ${img.w} × ${img.h} px`;
    this._layout();
  }

  // Display size: as large as the stage is wide, but never taller than most of the window,
  // so the whole image (and any region on it) stays on screen. Both canvases get the same
  // CSS box; pointer mapping reads it back with getBoundingClientRect.
  _layout() {
    const img = this._image;
    if (!img || !img.shown || this.$canvases.hidden) return;
    const avail = Math.max(50, this.$stage.clientWidth);
    const maxH = Math.max(260, Math.min(window.innerHeight * 0.7, 760));
    const s = Math.min(avail / img.w, maxH / img.h);
    const w = Math.max(1, Math.floor(img.w * s)), h = Math.max(1, Math.floor(img.h * s));
    for (const c of [this.$canvas, this.$overlay]) {
      c.style.width = w + 'px';
      c.style.height = h + 'px';
    }
    this._drawOverlay();
  }

  _drawOverlay() {
    const img = this._image;
    const c = this.$overlay;
    if (!img || this.$canvases.hidden || !c.width) return;
    const g = c.getContext('2d');
    const sx = c.width / img.w, sy = c.height / img.h;
    const px = c.width / Math.max(1, c.getBoundingClientRect().width); // canvas px per CSS px
    g.clearRect(0, 0, c.width, c.height);
    const res = this._result;
    const rr = (res && res.roi) || { x: 0, y: 0, w: img.w, h: img.h };
    const R = { x: rr.x * sx, y: rr.y * sy, w: rr.w * sx, h: rr.h * sy };
    g.imageSmoothingEnabled = true;
    if (res && res.attention && this.$attToggle.checked) {
      if (!res._attCanvas) res._attCanvas = mapToCanvas(res.attention, (_, t) => [...heat(t), Math.round(30 + 125 * t)]);
      g.drawImage(res._attCanvas, R.x, R.y, R.w, R.h);
    }
    if (res && res.mask && this.$maskToggle.checked) {
      if (!res._maskCanvas) res._maskCanvas = maskOutline(res.mask);
      g.drawImage(res._maskCanvas, R.x, R.y, R.w, R.h);
    }
    const roi = this._drag ? null : this._roi;
    if (roi) {
      const Q = { x: roi.x * sx, y: roi.y * sy, w: roi.w * sx, h: roi.h * sy };
      g.fillStyle = 'rgba(5, 10, 20, 0.5)';
      g.beginPath();
      g.rect(0, 0, c.width, c.height);
      g.rect(Q.x, Q.y, Q.w, Q.h);
      g.fill('evenodd');
      g.lineWidth = 2 * px;
      g.strokeStyle = '#38bdf8';
      g.setLineDash([]);
      g.strokeRect(Q.x, Q.y, Q.w, Q.h);
    }
    if (this._drag) {
      const d = this._drag;
      g.lineWidth = 2 * px;
      g.strokeStyle = '#fbbf24';
      g.setLineDash([6 * px, 4 * px]);
      g.strokeRect(Math.min(d.x0, d.x1) * sx, Math.min(d.y0, d.y1) * sy, Math.abs(d.x1 - d.x0) * sx, Math.abs(d.y1 - d.y0) * sy);
    }
  }

  _renderResult(r) {
    if (!r) {
      this.$top.hidden = this.$malig.hidden = this.$probsBox.hidden = this.$meta.hidden = this.$legend.hidden = true;
      this.$maskLabel.hidden = true;
      this.$placeholder.hidden = false;
      this.$probs.replaceChildren();
      this.removeAttribute('data-result-seq');
      return;
    }
    const malignantSet = new Set((this._info ? this._info.labels.filter((_, i) => this._info.malignant[i]) : []));
    const order = r.probs.map((p, i) => i).sort((a, b) => r.probs[b] - r.probs[a]);
    this.$probs.replaceChildren(...order.map((i) => {
      const fill = el('span', { class: 'cz-fill' });
      fill.style.width = (r.probs[i] * 100).toFixed(2) + '%';
      const li = el('li', { class: 'cz-prob' + (i === r.top ? ' cz-prob-top' : ''), 'data-testid': 'prob-row', 'data-label': r.labels[i], 'data-prob': String(r.probs[i]) },
        el('span', { class: 'cz-prob-name' }, r.labels[i], malignantSet.has(r.labels[i]) && !/malignan/i.test(r.labels[i]) ? el('span', { class: 'cz-tag', title: 'counted as malignant by this model', text: 'malignant' }) : null),
        el('span', { class: 'cz-prob-bar', 'aria-hidden': 'true' }, fill),
        el('span', { class: 'cz-prob-pct', 'data-testid': 'prob-value', text: fmtPct(r.probs[i]) }));
      li.setAttribute('aria-label', `${r.labels[i]}: ${fmtPct(r.probs[i])}`);
      return li;
    }));
    this.$placeholder.hidden = true;
    this.$topLabel.textContent = r.label;
    this.$topProb.textContent = `${fmtPct(r.probs[r.top])} probability`;
    this.$top.hidden = false;
    this.$top.classList.toggle('cz-top-malignant', malignantSet.has(r.label));
    if (r.malignancy !== null && r.malignancy !== undefined) {
      const thr = this._threshold();
      this.$maligValue.textContent = fmtPct(r.malignancy);
      this.$maligFill.style.width = (r.malignancy * 100).toFixed(2) + '%';
      this.$maligTick.style.left = (thr * 100).toFixed(2) + '%';
      this.$malig.classList.toggle('cz-high', r.malignancy >= thr);
      this.$maligNote.textContent = `${r.malignancy >= thr ? 'At or above' : 'Below'} the model's operating point of ${fmtPct(thr)} (see the model card for its sensitivity and specificity).`;
      this.$malig.hidden = false;
    } else this.$malig.hidden = true;
    this.$probsBox.hidden = false;
    this.$latency.textContent = fmtMs(r.ms);
    this.$roiText.textContent = r.roi ? `${r.roi.w} × ${r.roi.h} px at (${r.roi.x}, ${r.roi.y})` : `whole image (${r.image.w} × ${r.image.h} px)`;
    this.$meta.hidden = false;
    this.$legend.hidden = !r.attention && !r.mask;
    this.$legendMask.hidden = !r.mask;
    this.$maskLabel.hidden = !r.mask;
    this.$reset.disabled = !r.roi;
    if (r.roi) this.setAttribute('data-roi', `${r.roi.x},${r.roi.y},${r.roi.w},${r.roi.h}`);
    else this.setAttribute('data-roi', 'full');
    this.setAttribute('data-result-seq', String(++this._resultSeq));
  }

  _threshold() {
    const meta = (this._info && this._info.meta) || {};
    const t = meta['csasn.malignancy_threshold'] ?? meta.malignancy_threshold ?? (meta.csasn && meta.csasn.malignancy_threshold);
    return typeof t === 'number' && t > 0 && t < 1 ? t : 0.5;
  }

  // ---- status and errors ------------------------------------------------------------------
  _setStatus(t) { this.$status.textContent = t; }

  _showError(msg, code = 'error') {
    this.$error.textContent = msg;
    this.$error.hidden = false;
    this.$error.setAttribute('data-code', code);
    this.dispatchEvent(new CustomEvent('csasn-error', { detail: { message: msg, code } }));
  }

  _clearError() {
    this.$error.hidden = true;
    this.$error.textContent = '';
  }

  _fatal(msg) {
    this.setAttribute('data-state', 'error');
    this._setStatus('Unavailable.');
    this.$progressBox.hidden = true;
    this.$modelError.textContent = `The classifier could not start: ${msg}`;
    this.$modelError.hidden = false;
    this.dispatchEvent(new CustomEvent('csasn-error', { detail: { message: msg, code: 'fatal' } }));
  }

  // ---- measurement hooks (tools/bench, tests) ----------------------------------------------
  get info() { return this._info; }
  get lastResult() { return this._result; }
  get loadTiming() { return this._loadTiming; }

  async bench(n = 30) {
    const r = await this._call({ type: 'bench', n, roi: this._roi });
    return r.ms;
  }

  // n sequential classify round trips measured on the page (includes messaging).
  async roundTrips(n = 30) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await this._call({ type: 'classify', roi: this._roi });
      out.push(performance.now() - t0);
    }
    return out;
  }
}

if (!customElements.get('csasn-classifier')) customElements.define('csasn-classifier', CsasnClassifier);
export { CsasnClassifier };
