// report-view.js - the printable exam report, drawn from the csasn-report document itself
// (src/report.c wrote it in the worker), so every number printed is the one in the JSON and
// FHIR downloads. Print CSS (web/style.css, @media print) keeps only this section and repeats
// the research-use statement and the model's identity on every page.
import { previewUrl, mapUrl } from './thumbs.js';

const pct = (p) => (p === null || p === undefined ? 'not available' : `${(100 * p).toFixed(1)}%`);

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

function probTable(doc, probs, caption) {
  return el('table', { class: 'report-probs' },
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Class' }), el('th', { scope: 'col', text: 'Probability' }))),
    el('tbody', {}, ...doc.model.labels.map((l, k) => el('tr', { 'data-label': l }, el('th', { scope: 'row', text: l }), el('td', { 'data-testid': 'report-prob', 'data-prob': probs[k], text: pct(probs[k]) })))));
}

function warnings(list) {
  if (!list.length) return null;
  return el('ul', { class: 'report-warnings', 'aria-label': 'Warnings' }, ...list.map((w) => el('li', { 'data-code': w.code, text: w.text })));
}

export function renderReport(box, doc, items, { download, print }) {
  const m = doc.model;
  const byName = new Map();
  for (const it of items) {
    if (!byName.has(it.name)) byName.set(it.name, []);
    byName.get(it.name).push(it);
  }
  const date = new Date(doc.date);
  box.textContent = '';
  box.append(
    el('div', { class: 'report-tools no-print' },
      el('button', { type: 'button', class: 'btn', 'data-testid': 'report-print', onclick: print, text: 'Print or save as PDF…' }),
      el('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'report-download-json', onclick: () => download('json'), text: 'Download JSON' }),
      el('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'report-download-fhir', onclick: () => download('fhir'), text: 'Download FHIR R4' }),
      el('p', { class: 'report-stale', role: 'status', 'data-testid': 'report-stale', hidden: true, text: 'The exam has changed since this report was made: create it again.' })),
    // repeated on every printed page (position: fixed in print)
    el('div', { class: 'report-running', 'data-testid': 'report-running' },
      el('strong', { text: 'Research use only — not a diagnosis. ' }),
      document.createTextNode(`Model ${m.name} (${m.version}), SHA-256 ${m.sha256}. ${doc.date}.`)),
    el('h2', { id: 'exam-report-title', tabindex: '-1', text: 'Ultrasound exam report (CSASN model)' }),
    el('dl', { class: 'report-meta' },
      el('dt', { text: 'Date' }), el('dd', { 'data-testid': 'report-date', text: `${doc.date} (${date.toUTCString()})` }),
      el('dt', { text: 'Model' }), el('dd', { 'data-testid': 'report-model', text: `${m.name}, version ${m.version}` }),
      el('dt', { text: 'Model file SHA-256' }), el('dd', { class: 'mono', 'data-testid': 'report-sha', text: m.sha256 }),
      el('dt', { text: 'Label system' }), el('dd', { 'data-testid': 'report-labels', text: m.label_system }),
      el('dt', { text: 'Malignancy operating point' }), el('dd', { text: m.operating_point === null ? 'this model has no malignancy output' : `${pct(m.operating_point)}: at or above it a nodule is called suspicious` }),
      el('dt', { text: 'How views combine' }), el('dd', { text: doc.combination })),
    el('p', { class: 'report-research', 'data-testid': 'report-research', text: doc.research_use }),
    el('p', { class: 'report-intended', text: doc.intended_use }));
  doc.nodules.forEach((n, j) => {
    const sec = el('section', { class: 'report-nodule', 'data-testid': 'report-nodule', 'aria-labelledby': `report-nodule-${j}` },
      el('h3', { id: `report-nodule-${j}`, text: `Nodule ${j + 1}: ${n.label}` }),
      el('p', { class: 'report-summary' },
        el('span', { 'data-testid': 'report-nodule-top', text: `Top class ${n.top}` }), document.createTextNode(' · '),
        el('span', { 'data-testid': 'report-nodule-malignancy', 'data-prob': n.malignancy === null ? '' : n.malignancy, text: `malignancy ${pct(n.malignancy)}` }),
        document.createTextNode(n.above_operating_point === null ? '' : n.above_operating_point ? ' (at or above the operating point: suspicious)' : ' (below the operating point)'),
        document.createTextNode(` · size ${n.size_mm === null ? 'not measured (no calibration)' : `${n.size_mm.toFixed(1)} mm`}`),
        document.createTextNode(` · ${n.images.length} view(s): ${n.views.join(', ')}`)),
      warnings(n.warnings),
      n.images.length > 1 ? probTable(doc, n.probs, `Combined class probabilities of nodule ${j + 1}`) : null);
    n.images.forEach((im) => {
      const q = byName.get(im.name);
      const it = q && q.length ? q.shift() : null;
      const res = it && it.result;
      const figs = el('div', { class: 'report-figs' });
      if (it) {
        const u = previewUrl(it, 140);
        if (u) figs.append(el('figure', {}, el('img', { src: u, alt: `${im.name} with its region of interest`, width: 140 }), el('figcaption', { text: 'Image and region' })));
        const h = res && mapUrl(res.attention, 'heat', 90);
        if (h) figs.append(el('figure', {}, el('img', { src: h, alt: `Attention map of ${im.name}`, width: 90, height: 90 }), el('figcaption', { text: 'Heat map' })));
        const mk = res && mapUrl(res.mask, 'mask', 90);
        if (mk) figs.append(el('figure', {}, el('img', { src: mk, alt: `Lesion mask of ${im.name}`, width: 90, height: 90 }), el('figcaption', { text: 'Mask' })));
      }
      sec.append(el('div', { class: 'report-image', 'data-testid': 'report-image', 'data-name': im.name },
        el('h4', { text: `${im.name} — ${im.view} view` }),
        el('div', { class: 'report-row' }, figs, probTable(doc, im.probs, `Class probabilities of ${im.name}`)),
        el('p', {},
          document.createTextNode(`Region ${im.roi ? `x ${im.roi.x}, y ${im.roi.y}, ${im.roi.w} × ${im.roi.h} px` : 'whole image'} of ${im.image_w} × ${im.image_h} px · top class ${im.top} · `),
          el('span', { 'data-testid': 'report-image-malignancy', 'data-prob': im.malignancy === null ? '' : im.malignancy, text: `malignancy ${pct(im.malignancy)}` }),
          document.createTextNode(im.above_operating_point === null ? '' : im.above_operating_point ? ' (at or above the operating point)' : ' (below the operating point)'),
          document.createTextNode(` · size ${im.size_mm === null ? 'not measured' : `${im.size_mm.toFixed(1)} mm`}`)),
        warnings(im.warnings)));
    });
    box.append(sec);
  });
}
