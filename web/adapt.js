// adapt.js - the page's "Adapt to your data" view (src/ARCHITECTURE.md section 9): pick a
// folder of class sub-folders (or add files to a named class), see the counts, mark the
// malignant classes and a grouping, then adapt the chosen base model in the engine's worker
// (shell/client.js adapt()) with progress, ETA and cancel; read the cross-validated report,
// try the adapted model on an image, save it as a file. A local .csasn file can be opened
// too (checked by the engine's loader like any model). Everything stays in this tab: the
// images go to the worker only; every user-supplied string is shown as text.
import { createClient } from './wasm/client.js';
import { loadManifest } from './wasm/manifest.js';

const root = document.querySelector('[data-testid="adapt"]');
const $ = (id) => root.querySelector(`[data-testid="adapt-${id}"]`);
const IMAGE_RE = /\.(png|jpe?g|bmp|gif|pgm|ppm|pnm|dcm)$/i;

const state = {
  classes: new Map(),   // class name -> File[]
  client: null,
  manifest: null,
  running: false,
  adapted: null,        // { bytes, report, name }
  tryModel: null,       // what the try-an-image box classifies with: 'adapted' | 'local'
};

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = String(text);
  return e;
}

function status(msg, isError = false) {
  const s = $('status');
  s.textContent = msg;
  s.classList.toggle('adapt-error', isError);
}

function client() {
  if (!state.client) state.client = createClient();
  return state.client;
}

async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// ------------------------------------------------------------------- data

function addFiles(files, fixedClass = null) {
  for (const f of files) {
    let cls = fixedClass;
    if (!cls) {   // a folder pick: <root>/<class>/<file>
      const parts = (f.webkitRelativePath || '').split('/');
      if (parts.length < 3) continue;
      cls = parts[parts.length - 2];
    }
    if (!cls || f.name.startsWith('.') || !IMAGE_RE.test(f.name)) continue;
    if (!state.classes.has(cls)) state.classes.set(cls, []);
    state.classes.get(cls).push(f);
  }
  renderCounts();
}

function renderCounts() {
  const t = $('counts');
  t.replaceChildren();
  const head = el('tr');
  for (const h of ['Class', 'Images', 'Malignant']) head.append(el('th', {}, h));
  t.append(head);
  const names = [...state.classes.keys()].sort();
  for (const name of names) {
    const tr = el('tr');
    tr.append(el('td', { 'data-testid': 'adapt-count-class' }, name));
    const n = state.classes.get(name).length;
    tr.append(el('td', {}, n < 10 ? `${n} (fewer than 10: too few to say much)` : n));
    const td = el('td');
    const cb = el('input', { type: 'checkbox', 'aria-label': `${name} is malignant`, 'data-testid': 'adapt-malignant' });
    cb.dataset.cls = name;
    if (/malig|carcinoma|cancer|ptc|ftc|mtc|atc/i.test(name)) cb.checked = true;
    td.append(cb);
    tr.append(td);
    t.append(tr);
  }
  $('start').disabled = state.running || names.length < 2;
}

// --------------------------------------------------------------- adapting

function fmtSeconds(s) {
  if (!isFinite(s) || s < 0) return '';
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

async function start() {
  const names = [...state.classes.keys()].sort();
  if (names.length < 2) return status('Adaptation needs at least two classes.', true);
  const malignant = [...root.querySelectorAll('[data-testid="adapt-malignant"]')].filter((c) => c.checked).map((c) => c.dataset.cls);
  let groupRe = null;
  const g = $('group').value.trim();
  if (g) {
    try { groupRe = new RegExp(g); } catch (e) { return status(`The grouping is not a valid regular expression: ${e.message}`, true); }
  }
  const entry = state.manifest && state.manifest.models.find((m) => m.id === $('base').value);
  if (!entry) return status('Choose a base model.', true);
  state.running = true;
  state.adapted = null;
  $('start').disabled = true;
  $('cancel').disabled = false;
  $('use').disabled = $('save').disabled = true;
  $('report').replaceChildren();
  const bar = $('progress');
  bar.value = 0;
  try {
    status('Loading the base model…');
    const c = client();
    await c.load(entry);
    status('Reading the images…');
    const images = [];
    for (const [ci, name] of names.entries()) {
      for (const f of state.classes.get(name)) {
        let group = null;
        if (groupRe) {
          const m = groupRe.exec(f.name);
          if (m) group = m[1] !== undefined ? m[1] : m[0];
        }
        images.push({ cls: ci, bytes: new Uint8Array(await f.arrayBuffer()), group });
      }
    }
    const t0 = performance.now();
    let featEnd = null;
    const r = await c.adapt({ classes: names, malignant, images, folds: 5, views: 2, name: `${entry.id}-adapted`,
      date: new Date().toISOString().slice(0, 10) }, {
      onProgress: (m) => {
        const now = performance.now();
        if (m.phase === 'features') {
          const el_ = (now - t0) / 1000, eta = el_ / m.done * (m.total - m.done);
          bar.value = 0.7 * m.done / m.total;   // the feature pass is most of the time
          status(`Feature pass: image ${m.done} of ${m.total}, about ${fmtSeconds(eta)} left for this step`);
        } else {
          if (featEnd === null) featEnd = now;
          const el_ = (now - featEnd) / 1000, eta = m.progress > 0 ? el_ / m.progress * (1 - m.progress) : NaN;
          bar.value = 0.7 + 0.3 * m.progress;
          status(`Training and cross-validation: ${Math.round(100 * m.progress)} %, about ${fmtSeconds(eta)} left`);
        }
      },
    });
    bar.value = 1;
    state.adapted = { bytes: r.bytes, report: r.report, name: `${entry.id}-adapted` };
    renderReport(r.report, r.skipped, images.length);
    status(`Done in ${fmtSeconds((performance.now() - t0) / 1000)}. Nothing left this tab.`);
    $('use').disabled = $('save').disabled = false;
  } catch (e) {
    status(e.code === 'cancelled' ? 'Cancelled.' : `Adaptation failed: ${e.message}`, e.code !== 'cancelled');
  } finally {
    state.running = false;
    $('cancel').disabled = true;
    $('start').disabled = state.classes.size < 2;
  }
}

function cell(v, ci) {
  if (v === null || v === undefined) return '–';
  const s = v.toFixed(2);
  return ci && ci[0] !== null ? `${s} (${ci[0].toFixed(2)}–${ci[1].toFixed(2)})` : s;
}

function renderReport(rep, skipped, total) {
  const box = $('report');
  box.replaceChildren();
  box.append(el('h3', {}, `Cross-validated estimate (${rep.folds}-fold, ${rep.images} images, ${rep.groups} groups)`));
  const sum = el('p', { 'data-testid': 'adapt-summary' });
  sum.textContent = `Macro-F1 ${cell(rep.macro_f1, rep.macro_f1_ci)}, balanced accuracy ${cell(rep.balanced_accuracy, rep.balanced_accuracy_ci)}` +
    (rep.malignancy_auc !== undefined ? `, malignancy AUC ${cell(rep.malignancy_auc, rep.malignancy_auc_ci)}` : '') + ' (95 % intervals)';
  box.append(sum);
  const t = el('table', { 'data-testid': 'adapt-report-table' });
  const h = el('tr');
  for (const x of ['Class', 'Images', 'Recall', 'Precision', 'AUC (one vs rest)']) h.append(el('th', {}, x));
  t.append(h);
  for (const c of rep.classes) {
    const tr = el('tr');
    tr.append(el('td', {}, c.label), el('td', {}, c.images), el('td', {}, cell(c.recall, c.recall_ci)),
      el('td', {}, cell(c.precision, c.precision_ci)), el('td', {}, cell(c.auc, c.auc_ci)));
    t.append(tr);
  }
  box.append(t);
  box.append(el('h4', {}, 'Confusion matrix (rows: true class, columns: predicted)'));
  const cm = el('table', { 'data-testid': 'adapt-confusion' });
  const ch = el('tr');
  ch.append(el('th', {}, ''));
  for (const c of rep.classes) ch.append(el('th', {}, c.label));
  cm.append(ch);
  rep.confusion.forEach((row, i) => {
    const tr = el('tr');
    tr.append(el('th', {}, rep.classes[i].label));
    for (const v of row) tr.append(el('td', {}, v));
    cm.append(tr);
  });
  box.append(cm);
  const warn = [...rep.warnings.map((w) => (w.class ? `${w.class}: ${w.message}` : w.message))];
  if (skipped.length) warn.push(`${skipped.length} of ${total} files could not be read and were skipped.`);
  for (const k of rep.heads_left_out || []) warn.push(`Left out of the adapted model: ${k}.`);
  if (warn.length) {
    const ul = el('ul', { class: 'adapt-warnings', 'data-testid': 'adapt-warnings' });
    for (const w of warn) ul.append(el('li', {}, w));
    box.append(ul);
  }
}

// ------------------------------------------------- use, save, open, try

async function useBytes(bytes, label) {
  const c = client();
  const r = await c.load({ data: bytes.slice(), sha256: await sha256Hex(bytes) });
  $('try-model').textContent = `${r.info.name} (${label}): ${r.info.labels.join(', ')}`;
  $('try').hidden = false;
  return r;
}

async function tryImage(file) {
  const out = $('try-result');
  out.replaceChildren();
  try {
    const r = await client().classify(new Uint8Array(await file.arrayBuffer()));
    const info = client().info();
    const t = el('table');
    info.labels.forEach((l, i) => {
      const tr = el('tr');
      tr.append(el('td', {}, l), el('td', { 'data-testid': 'adapt-try-prob' }, `${(100 * r.probs[i]).toFixed(1)} %`));
      t.append(tr);
    });
    out.append(t);
    if (r.malignancy !== null && r.malignancy !== undefined && !Number.isNaN(r.malignancy)) out.append(el('p', {}, `Malignancy ${(100 * r.malignancy).toFixed(1)} %`));
  } catch (e) {
    out.append(el('p', { class: 'adapt-error' }, e.message));
  }
}

async function init() {
  if (!root) return;
  $('folder').addEventListener('change', (e) => { addFiles(e.target.files); e.target.value = ''; });
  $('add').addEventListener('click', () => {
    const name = $('class-name').value.trim();
    const files = $('files').files;
    if (!name) return status('Give the class a name first.', true);
    addFiles(files, name);
    $('files').value = '';
  });
  $('clear').addEventListener('click', () => { state.classes.clear(); renderCounts(); });
  $('start').addEventListener('click', () => { start(); });
  $('cancel').addEventListener('click', () => { if (state.client) state.client.cancel(); });
  $('save').addEventListener('click', () => {
    if (!state.adapted) return;
    const a = el('a', { download: `${state.adapted.name}.csasn` });
    a.href = URL.createObjectURL(new Blob([state.adapted.bytes], { type: 'application/octet-stream' }));
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  $('use').addEventListener('click', async () => {
    if (!state.adapted) return;
    try { await useBytes(state.adapted.bytes, 'adapted locally'); } catch (e) { status(e.message, true); }
  });
  $('open').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    try {
      await useBytes(new Uint8Array(await f.arrayBuffer()), "local file, not from this site's manifest");
      status(`Opened ${f.name}.`);
    } catch (err) {
      status(`That model file was refused: ${err.message}`, true);
    }
    e.target.value = '';
  });
  $('try-image').addEventListener('change', (e) => { if (e.target.files[0]) tryImage(e.target.files[0]); e.target.value = ''; });
  try {
    state.manifest = await loadManifest('weights/manifest.json');
    const sel = $('base');
    for (const m of state.manifest.models) sel.append(el('option', { value: m.id }, m.title || m.id));
  } catch (e) {
    status(`The model list could not be read: ${e.message}`, true);
  }
  renderCounts();
}

init();
