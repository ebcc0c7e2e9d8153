// exam.js - one exam of several images: open many files (or a folder) at once, list them with
// their results, review one in the <csasn-classifier> above (its ROI can be adjusted there),
// group images into nodules (label + view), and produce the report (web/exam/report-view.js;
// JSON and FHIR downloads). Built only on the element's public API: openBytes, setRoi, the
// csasn-result / csasn-error events, info and report().
//
// The exam lives in this tab's memory only: nothing is sent, and nothing is stored unless the user
// ticks "Keep this exam if this tab reloads" (then the images, labels, views and regions go to
// the tab's own sessionStorage, which the browser drops with the tab); "Clear exam" empties both.
import { previewUrl } from './thumbs.js';
import { renderReport } from './report-view.js';

const VIEWS = [['transverse', 'Transverse'], ['longitudinal', 'Longitudinal'], ['other', 'Other']];
const pct = (p) => (p === null || p === undefined ? '—' : `${(100 * p).toFixed(1)}%`);
const isoNow = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

export class Exam {
  constructor(root, widget) {
    this.root = root;
    this.w = widget;
    this.items = [];        // { id, name, bytes, result, roi, preview, image, nodule, view, error }
    this.nextId = 1;
    this.current = null;    // the item the widget shows
    this.waiter = null;     // resolves with the next result / error of the widget
    this.busy = false;
    this.lastReport = null; // { json, fhir, doc } of the last "Create report"
    this.build();
    widget.addEventListener('csasn-result', (e) => this.onResult(e.detail.result));
    widget.addEventListener('csasn-error', (e) => this.onError(e.detail));
  }

  build() {
    const r = this.root;
    r.classList.add('exam');
    this.files = el('input', { type: 'file', id: 'exam-files', multiple: true, accept: 'image/*,.pgm,.ppm', class: 'visually-hidden', 'data-testid': 'exam-files', onchange: (e) => this.addFiles(e.target.files) });
    this.folder = el('input', { type: 'file', id: 'exam-folder', webkitdirectory: true, class: 'visually-hidden', 'data-testid': 'exam-folder', onchange: (e) => this.addFiles(e.target.files) });
    this.status = el('p', { class: 'exam-status', role: 'status', 'aria-live': 'polite', 'data-testid': 'exam-status', text: 'No images in this exam yet.' });
    this.tbody = el('tbody');
    this.table = el('table', { class: 'exam-table', 'data-testid': 'exam-list' },
      el('caption', { text: 'Images of this exam' }),
      el('thead', {}, el('tr', {}, ...['Image', 'File', 'Top class', 'Malignancy', 'Size', 'Nodule', 'View', 'Actions'].map((h) => el('th', { scope: 'col', text: h })))),
      this.tbody);
    this.table.hidden = true;
    this.reportBox = el('section', { class: 'exam-report', id: 'exam-report', 'aria-labelledby': 'exam-report-title', 'data-testid': 'exam-report', hidden: true });
    this.nodules = el('datalist', { id: 'exam-nodule-names' });
    r.append(
      el('h2', { id: 'exam-title', text: 'Exam: several images and nodules' }),
      el('p', { class: 'exam-help', text: 'Open all the images of one exam at once. Each is analysed here, in this tab; give images of the same nodule the same nodule label (for example "right lobe, nodule 1") and say which view each is. The exam is kept in this tab\'s memory only and is never sent anywhere.' }),
      el('div', { class: 'exam-actions' },
        el('label', { for: 'exam-files', class: 'btn', text: 'Open images…' }), this.files,
        el('label', { for: 'exam-folder', class: 'btn btn-ghost', text: 'Open a folder…' }), this.folder,
        this.reportBtn = el('button', { type: 'button', class: 'btn', 'data-testid': 'exam-make-report', disabled: true, onclick: () => this.makeReport(), text: 'Create report' }),
        this.clearBtn = el('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'exam-clear', disabled: true, onclick: () => this.clear(), text: 'Clear exam' }),
        el('label', { class: 'exam-keep' },
          this.keep = el('input', { type: 'checkbox', 'data-testid': 'exam-keep', onchange: () => this.persist() }),
          document.createTextNode(' Keep this exam if this tab reloads (this tab\'s own storage, never sent)'))),
      this.status, this.nodules, this.table, this.reportBox);
    // the file pickers are hidden inputs behind labels: keyboard users reach the labels
    for (const lab of r.querySelectorAll('label.btn')) {
      lab.tabIndex = 0;
      lab.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); document.getElementById(lab.htmlFor).click(); }
      });
    }
  }

  say(t) { this.status.textContent = t; }

  // sessionStorage, only while "keep" is ticked: the bytes (base64) and what the user set.
  persist() {
    const KEY = 'csasn-exam';
    try {
      if (!this.keep.checked) { sessionStorage.removeItem(KEY); return; }
      const b64 = (u8) => { let s = ''; for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000)); return btoa(s); };
      const saved = this.items.filter((i) => i.bytes).map((i) => ({ name: i.name, nodule: i.nodule, view: i.view, roi: i.roi, bytes: b64(i.bytes) }));
      sessionStorage.setItem(KEY, JSON.stringify({ version: 1, items: saved }));
    } catch (e) {
      this.say(`This exam is too large to keep in the tab's storage (${e.name}); it stays in memory only.`);
    }
  }

  async restore() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem('csasn-exam') || 'null'); } catch { saved = null; }
    if (!saved || saved.version !== 1 || !Array.isArray(saved.items) || !saved.items.length) return;
    this.keep.checked = true;
    const files = saved.items.map((s) => {
      const bin = atob(s.bytes);
      const u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      const f = new File([u8], s.name);
      f.csasnSaved = s;
      return f;
    });
    await this.addFiles(files);
  }

  // The widget's next answer for the image it was just given.
  nextAnswer() {
    return new Promise((resolve) => { this.waiter = resolve; });
  }

  onResult(r) {
    const it = this.current;
    if (it) {
      it.result = r;
      // the user's box only: without one the engine picks the region itself (whole image, or a
      // DICOM file's tissue region), as `csasn report` does for an image given without --roi
      it.roi = r.roi && r.roi_source === 'user' ? { ...r.roi } : null;
      it.image = r.image;
      if (r.preview) it.preview = r.preview;
      it.error = null;
      this.renderRow(it);
      this.markStale();
    }
    if (this.waiter) { const w = this.waiter; this.waiter = null; w({ ok: true }); }
  }

  onError(d) {
    if (this.current && this.waiter) this.current.error = d.message;
    if (this.waiter) { const w = this.waiter; this.waiter = null; w({ ok: false, message: d.message }); }
  }

  // The widget's model is loaded (images given before would not be analysed).
  whenReady() {
    if (this.w.info) return Promise.resolve();
    return new Promise((resolve) => this.w.addEventListener('csasn-ready', () => resolve(), { once: true }));
  }

  async addFiles(list) {
    const files = Array.from(list || []).filter((f) => f.size > 0);
    if (!files.length || this.busy) return;
    this.busy = true;
    if (!this.w.info) {
      this.say('Waiting for the model to load…');
      await this.whenReady();
    }
    const fresh = [];
    for (const f of files) {
      const sv = f.csasnSaved || null; // a restored item brings what the user had set
      const it = { id: this.nextId++, name: f.name, file: f, bytes: null, result: null, roi: sv ? sv.roi : null, preview: null, image: null, nodule: sv ? sv.nodule || '' : '', view: sv ? sv.view || 'other' : 'other', error: null };
      this.items.push(it);
      fresh.push(it);
    }
    this.table.hidden = false;
    this.clearBtn.disabled = false;
    for (const it of fresh) this.renderRow(it);
    let done = 0;
    for (const it of fresh) {
      this.say(`Analysing ${it.name} (${++done} of ${fresh.length})…`);
      try {
        it.bytes = new Uint8Array(await it.file.arrayBuffer());
      } catch (e) {
        it.error = `could not be read: ${e.message}`;
        this.renderRow(it);
        continue;
      }
      await this.analyse(it, it.roi);
    }
    this.updateNoduleNames();
    this.persist();
    this.busy = false;
    const ok = this.items.filter((i) => i.result).length;
    this.say(`${this.items.length} image(s) in this exam, ${ok} analysed. Give images of one nodule the same label, then create the report.`);
    this.reportBtn.disabled = !ok;
  }

  async analyse(it, roi) {
    this.current = it;
    const ans = this.nextAnswer();
    this.w.openBytes(it.bytes.buffer.slice(0), it.name);
    let a = await ans;
    if (a.ok && roi) {
      const again = this.nextAnswer();
      this.w.setRoi(roi);
      a = await again;
    }
    if (!a.ok) { it.error = a.message; it.result = null; }
    this.renderRow(it);
    this.markSelected();
    return a.ok;
  }

  async review(it) {
    if (this.busy || !it.bytes) return;
    this.busy = true;
    this.say(`Reviewing ${it.name}: adjust its region of interest in the classifier above.`);
    await this.analyse(it, it.roi);
    this.busy = false;
    this.say(`${it.name} is shown in the classifier above: draw or adjust its region there; this row follows.`);
    this.w.scrollIntoView({ block: 'start' });
    this.w.focus({ preventScroll: true });
  }

  remove(it) {
    this.items = this.items.filter((x) => x !== it);
    if (this.current === it) this.current = null;
    const row = this.tbody.querySelector(`tr[data-id="${it.id}"]`);
    if (row) row.remove();
    this.say(`${it.name} removed from the exam; ${this.items.length} image(s) left.`);
    this.markStale();
    if (!this.items.length) this.clear();
  }

  clear() {
    this.items = [];
    this.current = null;
    this.tbody.textContent = '';
    this.table.hidden = true;
    this.reportBox.hidden = true;
    this.reportBox.textContent = '';
    this.lastReport = null;
    this.reportBtn.disabled = true;
    this.clearBtn.disabled = true;
    this.files.value = '';
    this.folder.value = '';
    this.nodules.textContent = '';
    try { sessionStorage.removeItem('csasn-exam'); } catch { /* storage unavailable */ }
    this.keep.checked = false;
    this.say('The exam is empty: every image and result has been dropped from this tab.');
  }

  markSelected() {
    for (const tr of this.tbody.querySelectorAll('tr')) {
      const on = this.current && Number(tr.dataset.id) === this.current.id;
      tr.classList.toggle('is-current', !!on);
      if (on) tr.setAttribute('aria-current', 'true'); else tr.removeAttribute('aria-current');
    }
  }

  markStale() {
    if (this.keep && this.keep.checked && !this.busy) this.persist();
    if (this.lastReport && !this.reportBox.hidden) {
      const n = this.reportBox.querySelector('[data-testid=report-stale]');
      if (n) n.hidden = false;
    }
  }

  updateNoduleNames() {
    const names = [...new Set(this.items.map((i) => i.nodule).filter(Boolean))];
    this.nodules.textContent = '';
    for (const n of names) this.nodules.append(el('option', { value: n }));
  }

  renderRow(it) {
    let tr = this.tbody.querySelector(`tr[data-id="${it.id}"]`);
    const fresh = !tr;
    if (fresh) {
      tr = el('tr', { 'data-id': it.id, 'data-testid': 'exam-row', 'data-name': it.name });
      this.tbody.append(tr);
    }
    const r = it.result;
    const url = previewUrl(it, 64);
    const label = `${it.name}${r ? `: ${r.label}` : ''}`;
    const nodule = el('input', {
      type: 'text', value: it.nodule, list: 'exam-nodule-names', 'aria-label': `Nodule label of ${it.name}`, 'data-testid': 'exam-nodule',
      placeholder: 'e.g. right lobe, nodule 1', onchange: (e) => { it.nodule = e.target.value.trim(); this.updateNoduleNames(); this.markStale(); },
    });
    const view = el('select', { 'aria-label': `View of ${it.name}`, 'data-testid': 'exam-view', onchange: (e) => { it.view = e.target.value; this.markStale(); } },
      ...VIEWS.map(([v, t]) => el('option', { value: v, selected: v === it.view, text: t })));
    const size = r && typeof r.lesion_mm === 'number' ? `${r.lesion_mm.toFixed(1)} mm` : '—';
    tr.textContent = '';
    tr.append(
      el('td', {}, url ? el('img', { src: url, alt: `Preview of ${it.name} with its region of interest`, width: 64, height: 64, class: 'exam-thumb' }) : el('span', { class: 'exam-thumb-empty', text: it.error ? '!' : '…', 'aria-hidden': 'true' })),
      el('th', { scope: 'row', class: 'exam-name', text: it.name }),
      el('td', { 'data-testid': 'exam-top', text: it.error ? `Error: ${it.error}` : r ? `${r.label} (${pct(r.probs[r.top])})` : 'waiting…' }),
      el('td', { 'data-testid': 'exam-malignancy', text: r ? pct(r.malignancy) : '—' }),
      el('td', { text: size }),
      el('td', {}, nodule),
      el('td', {}, view),
      el('td', { class: 'exam-row-actions' },
        el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'exam-review', disabled: !it.bytes || !!it.error, 'aria-label': `Review ${label}`, onclick: () => this.review(it), text: 'Review' }),
        el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'exam-remove', 'aria-label': `Remove ${it.name} from the exam`, onclick: () => this.remove(it), text: 'Remove' })));
    this.markSelected();
  }

  // What report() needs of each analysed image, in list order.
  reportImages() {
    return this.items.filter((i) => i.result).map((i) => ({
      name: i.name, nodule: i.nodule || null, view: i.view, roi: i.roi, probs: i.result.probs, malignancy: i.result.malignancy,
      image: i.image, sizeMm: typeof i.result.lesion_mm === 'number' ? i.result.lesion_mm : null,
    }));
  }

  async makeReport(date = isoNow()) {
    const images = this.reportImages();
    if (!images.length) return null;
    this.say('Creating the report…');
    try {
      const json = await this.w.report(images, { date });
      const fhir = await this.w.report(images, { date, fhir: true });
      const doc = JSON.parse(json);
      this.lastReport = { json, fhir, doc };
      renderReport(this.reportBox, doc, this.items.filter((i) => i.result), {
        download: (kind) => this.download(kind),
        print: () => window.print(),
      });
      this.reportBox.hidden = false;
      this.reportBox.querySelector('h2').focus();
      this.say(`Report created: ${doc.nodules.length} nodule(s) from ${images.length} image(s).`);
      return this.lastReport;
    } catch (e) {
      this.say(`The report could not be created: ${e.message}`);
      return null;
    }
  }

  download(kind) {
    if (!this.lastReport) return;
    const text = kind === 'fhir' ? this.lastReport.fhir : this.lastReport.json;
    const type = kind === 'fhir' ? 'application/fhir+json' : 'application/json';
    const stamp = this.lastReport.doc.date.replace(/[:]/g, '');
    const a = el('a', { href: URL.createObjectURL(new Blob([text], { type })), download: `csasn-report-${stamp}${kind === 'fhir' ? '.fhir' : ''}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
}

const widget = document.querySelector('csasn-classifier');
const root = document.getElementById('exam');
if (widget && root) {
  window.csasnExam = new Exam(root, widget);
  window.csasnExam.restore();
}
