// reportlib.cjs - what the report suites share: the csasn-report v1 schema check (src/REPORT.md),
// an independent recomputation of each nodule from its images, and the CLI runner.
'use strict';
const { execFileSync } = require('child_process');
const { CLI } = require('./testlib.cjs');

const VIEWS = ['transverse', 'longitudinal', 'other'];
const isP = (x) => typeof x === 'number' && x >= 0 && x <= 1;

// -> [] when `doc` follows the csasn-report v1 schema, else what does not.
function validateReport(doc) {
  const e = [];
  const need = (cond, m) => { if (!cond) e.push(m); };
  need(doc && doc.format === 'csasn-report' && doc.version === 1, 'format/version');
  if (!doc || !doc.model) return e.concat('no model');
  need(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(doc.date), 'date');
  const m = doc.model;
  need(typeof m.name === 'string' && m.name.length > 0, 'model.name');
  need(/^[0-9a-f]{64}$/.test(m.sha256), 'model.sha256');
  need(m.version === `sha256:${m.sha256.slice(0, 12)}`, 'model.version');
  need(Array.isArray(m.labels) && m.labels.length >= 2, 'model.labels');
  need(Array.isArray(m.malignant_labels) && m.malignant_labels.every((l) => m.labels.includes(l)), 'model.malignant_labels');
  need(m.operating_point === null || isP(m.operating_point), 'model.operating_point');
  for (const k of ['label_system', 'body_site']) need(typeof m[k] === 'string' && m[k].length > 0, `model.${k}`);
  for (const k of ['combination', 'intended_use', 'research_use']) need(typeof doc[k] === 'string' && doc[k].length > 40, k);
  need(Array.isArray(doc.nodules), 'nodules');
  const K = m.labels.length;
  const warnings = (w, where) => need(Array.isArray(w) && w.every((x) => typeof x.code === 'string' && typeof x.text === 'string'), `${where}.warnings`);
  const result = (o, where) => {
    need(Array.isArray(o.probs) && o.probs.length === K && o.probs.every(isP), `${where}.probs`);
    need(Math.abs(o.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${where}.probs sum`);
    need(m.labels.includes(o.top), `${where}.top`);
    need(o.malignancy === null ? m.operating_point === null : isP(o.malignancy), `${where}.malignancy`);
    need(o.above_operating_point === (o.malignancy === null ? null : o.malignancy >= m.operating_point), `${where}.above_operating_point`);
    need(o.size_mm === null || (typeof o.size_mm === 'number' && o.size_mm > 0), `${where}.size_mm`);
    warnings(o.warnings, where);
  };
  (doc.nodules || []).forEach((n, j) => {
    const w = `nodules[${j}]`;
    need(typeof n.label === 'string' && n.label.length > 0, `${w}.label`);
    need(typeof n.body_site === 'string', `${w}.body_site`);
    result(n, w);
    need(Array.isArray(n.images) && n.images.length >= 1, `${w}.images`);
    need(Array.isArray(n.views) && n.views.length === (n.images || []).length, `${w}.views`);
    (n.images || []).forEach((im, q) => {
      const wi = `${w}.images[${q}]`;
      need(typeof im.name === 'string' && im.name.length > 0, `${wi}.name`);
      need(VIEWS.includes(im.view) && im.view === n.views[q], `${wi}.view`);
      need(im.roi === null || ['x', 'y', 'w', 'h'].every((k) => Number.isInteger(im.roi[k])), `${wi}.roi`);
      need(Number.isInteger(im.image_w) && Number.isInteger(im.image_h), `${wi}.image size`);
      result(im, wi);
    });
  });
  return e;
}

const logit = (p) => { const q = Math.min(Math.max(p, 1e-7), 1 - 1e-7); return Math.log(q / (1 - q)); };

// A nodule recomputed from its images as src/report.c's comment defines it -> the worst
// difference from what the document says (the images' values are rounded to 6 decimals,
// so agreement is to about 1e-6).
function nodulesRecomputed(doc) {
  let worst = 0;
  const bad = [];
  doc.nodules.forEach((n, j) => {
    const K = n.probs.length, v = n.images.length;
    const lp = Array.from({ length: K }, (_, k) => n.images.reduce((s, im) => s + Math.log(Math.max(im.probs[k], 1e-7)), 0) / v);
    const mx = Math.max(...lp);
    const ex = lp.map((x) => Math.exp(x - mx));
    const z = ex.reduce((a, b) => a + b, 0);
    ex.forEach((x, k) => { worst = Math.max(worst, Math.abs(x / z - n.probs[k])); });
    if (n.malignancy !== null) {
      const lo = n.images.reduce((s, im) => s + logit(im.malignancy), 0) / v;
      worst = Math.max(worst, Math.abs(1 / (1 + Math.exp(-lo)) - n.malignancy));
    }
    const sizes = n.images.map((im) => im.size_mm).filter((s) => s !== null);
    if ((sizes.length ? Math.max(...sizes) : null) !== n.size_mm) bad.push(`nodule ${j} size`);
    if (n.top !== doc.model.labels[n.probs.indexOf(Math.max(...n.probs))]) bad.push(`nodule ${j} top`);
  });
  return { worst, bad };
}

// `csasn report` -> its stdout (throws on a non-zero exit). args: the command line after
// `report`.
function cliReport(args) {
  return execFileSync(CLI, ['report', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

module.exports = { validateReport, nodulesRecomputed, cliReport };
