// test_report.cjs - the exam report (src/report.c): `csasn report` writes a valid csasn-report
// v1 document and a FHIR R4 Bundle that passes the R4 rules of tests/fhir_r4.cjs; nodules are
// what their images say; bad input gets a clear error; and the wasm build (csasn.js report(),
// what the page's worker calls) writes the same bytes as the CLI for the same results.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync, execFileSync } = require('child_process');
const { pathToFileURL } = require('url');
const { ROOT, DATA, CLI, check, runMain } = require('./testlib.cjs');
const { validateBundle } = require('./fhir_r4.cjs');
const { validateReport, nodulesRecomputed, cliReport } = require('./reportlib.cjs');

const DATE = '2026-12-02T10:00:00Z';

// DDTI nodules with several images (labels.csv: case_id, nodule_part), first n of them,
// plus single-image ones: -> [{ path, nodule, view }]
function ddtiExam(nMulti, nSingle) {
  const lines = fs.readFileSync(path.join(DATA, 'ddti/labels.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const rows = lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i], v]))).filter((r) => r.binary_label !== '');
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.case_id}/${r.nodule_part}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const out = [];
  let m = 0, s = 0;
  for (const [k, g] of groups) {
    if (g.length > 1 && m < nMulti) {
      m++;
      g.forEach((r, i) => out.push({ path: path.join(DATA, 'ddti', r.image), nodule: `case ${k.replace('/', ', nodule ')}`, view: i === 0 ? 'transverse' : i === 1 ? 'longitudinal' : 'other' }));
    } else if (g.length === 1 && s < nSingle) {
      s++;
      out.push({ path: path.join(DATA, 'ddti', g[0].image), nodule: null, view: null });
    }
  }
  return out;
}

function argsFor(items) {
  const a = [];
  for (const it of items) {
    if (it.nodule) a.push('--nodule', it.nodule);
    if (it.view) a.push('--view', it.view);
    if (it.roi) a.push('--roi', `${it.roi.x},${it.roi.y},${it.roi.w},${it.roi.h}`);
    a.push(it.path);
  }
  return a;
}

async function main() {
  spawnSync('make', ['-s', 'all', 'wasm'], { cwd: ROOT, stdio: 'ignore', env: { ...process.env, NODE_PATH: '/usr/share/nodejs' } });
  const model = path.join(ROOT, 'weights/thyroid-ddti.csasn');
  const items = ddtiExam(4, 3);
  items[1].roi = { x: 30, y: 20, w: 220, h: 250 };
  const args = ['--model', model, '--date', DATE, ...argsFor(items)];

  const text = cliReport(args);
  let doc = null;
  try { doc = JSON.parse(text); } catch (e) { /* reported below */ }
  check('cli report: JSON', !!doc, text.slice(0, 200));
  const errs = doc ? validateReport(doc) : ['unparsable'];
  check('cli report: follows the csasn-report v1 schema', errs.length === 0, errs.join('; '));
  const nMulti = new Set(items.filter((i) => i.nodule).map((i) => i.nodule)).size;
  check('cli report: images grouped into nodules by label', doc && doc.nodules.length === nMulti + 3 && doc.nodules.reduce((s, n) => s + n.images.length, 0) === items.length,
    doc && doc.nodules.map((n) => n.images.length).join(','));
  // 5e-6: the images' values are printed to 6 decimals, the nodule is combined from the unrounded ones
  const rc = doc ? nodulesRecomputed(doc) : { worst: 1, bad: ['no doc'] };
  check('cli report: nodule = mean log-odds / geometric mean of its views', rc.worst < 5e-6 && rc.bad.length === 0, `worst ${rc.worst}, ${rc.bad.join(';')}`);
  check('cli report: date injected, model sha256 = csasn info', doc && doc.date === DATE &&
    doc.model.sha256 === JSON.parse(execFileSync(CLI, ['info', '--model', model], { encoding: 'utf8' })).sha256);
  check('cli report: label system says DDTI / Kwak-style, not ACR TR1-TR5', doc && /Kwak-style/.test(doc.model.label_system) && /not the ACR TI-RADS levels TR1-TR5/.test(doc.model.label_system));
  const flat = doc ? doc.nodules.flatMap((n) => n.images) : [];
  const byName = (p) => flat.find((im) => im.name === path.basename(p));
  check('cli report: ROI kept per image', doc && byName(items[1].path).roi && byName(items[1].path).roi.w === 220 && byName(items[0].path).roi === null);

  const fhirText = cliReport(['--fhir', ...args]);
  let fhir = null;
  try { fhir = JSON.parse(fhirText); } catch (e) { /* below */ }
  const ferr = fhir ? validateBundle(fhir) : ['unparsable'];
  check('cli --fhir: Bundle passes the R4 rules (tests/fhir_r4.cjs)', ferr.length === 0, ferr.slice(0, 5).join('; '));
  // the checker itself: a wrong type and an unknown element are caught by the schema and the rules
  const broken = JSON.parse(fhirText);
  broken.entry[1].resource.valueQuantity.value = '12';
  broken.entry[1].resource.status = 'draft';
  const be = validateBundle(broken);
  check('FHIR checker refuses a broken Bundle (schema and rules)', be.some((e) => e.startsWith('schema:')) && be.some((e) => /not in the required value set/.test(e)), be.slice(0, 3).join('; '));
  const obs = fhir ? fhir.entry.map((e) => e.resource).filter((r) => r.resourceType === 'Observation') : [];
  const rep = fhir ? fhir.entry.map((e) => e.resource).find((r) => r.resourceType === 'DiagnosticReport') : null;
  const dev = fhir ? fhir.entry.map((e) => e.resource).find((r) => r.resourceType === 'Device') : null;
  check('cli --fhir: DiagnosticReport preliminary, one Observation per nodule', rep && rep.status === 'preliminary' && doc && obs.length === doc.nodules.length && rep.result.length === obs.length);
  check('cli --fhir: malignancy in % equals the JSON report', doc && obs.every((o, j) => o.valueQuantity.code === '%' && Math.abs(o.valueQuantity.value - 100 * doc.nodules[j].malignancy) < 1e-9));
  check('cli --fhir: per-class probabilities and top class as components', doc && obs.every((o, j) => {
    const n = doc.nodules[j];
    const top = o.component[0].valueCodeableConcept.coding[0].code === n.top;
    const probs = n.probs.every((p, k) => Math.abs(o.component[1 + k].valueQuantity.value - 100 * p) < 1e-9);
    return top && probs && /label system/.test(o.component[0].code.text);
  }));
  check('cli --fhir: Device names the model, version and SHA-256', dev && doc && dev.deviceName[0].name === doc.model.name && dev.version.some((v) => v.value === doc.model.sha256) && dev.version.some((v) => v.value === doc.model.version));
  check('cli --fhir: research-use note', dev && /Research use only/.test(dev.note[0].text) && obs.every((o) => /Research use only/.test(o.note[0].text)) && rep && /Research use only/.test(rep.conclusion));
  check('cli --fhir: deterministic (same inputs, same bytes)', cliReport(['--fhir', ...args]) === fhirText);
  const other = cliReport(['--fhir', '--model', model, '--date', '2026-12-03T10:00:00Z', ...argsFor(items)]);
  check('cli --fhir: another date gives other resource ids', JSON.parse(other).entry[0].fullUrl !== fhir.entry[0].fullUrl);

  // bad input: one clear message each, exit 2 (usage) or 1 (an image the engine refuses)
  const bad = [
    [['--date', '2026-13-01T00:00:00Z', items[0].path], 2, /date/],
    [['--view', 'sagittal', items[0].path], 1, /view must be/],
    [[items[0].path, '--nodule', 'x'], 2, /must come before an IMAGE/],
    [['--roi', '1,2,3', items[0].path], 2, /bad --roi/],
    [['--size-mm', '-3', items[0].path], 2, /size-mm/],
    [[path.join(ROOT, 'README.md')], 1, /README.md/],
    [['/nonexistent.png'], 2, /cannot open/],
    [[], 2, /at least one IMAGE/],
  ];
  for (const [a, code, re] of bad) {
    const r = spawnSync(CLI, ['report', '--model', model, ...a], { encoding: 'utf8' });
    check(`cli report refuses ${a.join(' ') || '(no image)'}`, r.status === code && re.test(r.stderr) && r.stdout === '', `status ${r.status}, ${r.stderr.trim()}`);
  }
  const withSize = JSON.parse(cliReport(['--model', model, '--date', DATE, '--nodule', 'n', '--size-mm', '12.34', items[0].path, '--nodule', 'n', '--size-mm', '8', items[1].path]));
  check('cli report: nodule size = largest diameter over its views', withSize.nodules[0].size_mm === 12.3 && withSize.nodules[0].images[1].size_mm === 8);

  // The page's path: csasn.js report() in the wasm build, given exactly the CLI's results
  // (classify prints float32 with 9 significant digits, which round-trips), must write the
  // CLI's bytes; the breast model too.
  const { createClassifier } = await import(pathToFileURL(path.join(ROOT, 'build/wasm/csasn.js')).href);
  for (const [mname, exam] of [['thyroid-ddti', items], ['breast-busi', busiExam()]]) {
    const mfile = path.join(ROOT, 'weights', `${mname}.csasn`);
    const bytes = fs.readFileSync(mfile);
    const sha = require('crypto').createHash('sha256').update(bytes).digest('hex');
    const c = await createClassifier(bytes);
    const imgs = exam.map((it) => {
      const a = ['classify', '--model', mfile];
      if (it.roi) a.push('--roi', `${it.roi.x},${it.roi.y},${it.roi.w},${it.roi.h}`);
      const j = JSON.parse(execFileSync(CLI, [...a, it.path], { encoding: 'utf8' }));
      return { name: path.basename(it.path), nodule: it.nodule, view: it.view, roi: it.roi || null, probs: j.probs, malignancy: j.malignancy, image: { w: j.image_w, h: j.image_h } };
    });
    const cliArgs = ['--model', mfile, '--date', DATE, ...argsFor(exam)];
    for (const fhirMode of [false, true]) {
      const w = c.report(imgs, { sha256: sha, date: DATE, fhir: fhirMode });
      const n = cliReport(fhirMode ? ['--fhir', ...cliArgs] : cliArgs);
      check(`wasm report() = cli report, byte for byte (${mname}${fhirMode ? ', FHIR' : ''})`, w === n, `${w.length} vs ${n.length} bytes`);
    }
    let refused = null;
    try { c.report(imgs, { sha256: 'xyz', date: DATE }); } catch (e) { refused = e.message; }
    check(`wasm report() refuses a bad digest (${mname})`, /SHA-256/.test(refused || ''), refused);
    c.free();
  }
}

function busiExam() {
  const dir = path.join(DATA, 'busi/images');
  const pick = (cls, n) => fs.readdirSync(path.join(dir, cls)).sort().slice(0, n).map((f) => path.join(dir, cls, f));
  return [...pick('benign', 2), ...pick('malignant', 2)].map((p, i) => ({ path: p, nodule: i < 2 ? 'left breast, lesion 1' : null, view: i === 1 ? 'longitudinal' : null }));
}

runMain('test_report', main);
