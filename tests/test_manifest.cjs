// test_manifest.cjs - the model manifest contract (src/MANIFEST.md): its one writer
// (tools/manifest.py) and its one reader (shell/manifest.js) agree with each other, with the
// schema's tables and with the model files; the reader refuses every malformed manifest with a
// CsasnError of code 'manifest' that names the field, and the writer refuses what it cannot list.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const { pathToFileURL } = require('url');
const { ROOT, CLI, check, runMain } = require('./testlib.cjs');

const writer = (dir, ...args) => spawnSync('/usr/bin/python3', [path.join(ROOT, 'tools/manifest.py'), dir, ...args], { encoding: 'utf8' });

// Field names of the two tables of src/MANIFEST.md ("## Top level", "## Model").
function schemaFields() {
  const md = fs.readFileSync(path.join(ROOT, 'src/MANIFEST.md'), 'utf8');
  const table = (title) => {
    const part = md.split(/^## /m).find((s) => s.startsWith(title));
    return part ? [...part.matchAll(/^\| `([a-z_0-9]+)` \|/gm)].map((m) => m[1]) : [];
  };
  return { top: table('Top level'), model: table('Model') };
}

async function main() {
  const M = await import(pathToFileURL(path.join(ROOT, 'shell/manifest.js')).href);
  const base = 'http://localhost:8000/weights/manifest.json';

  // 1. The schema page and the reader list the same fields.
  const f = schemaFields();
  check('schema tables and reader: same top-level fields', JSON.stringify(f.top) === JSON.stringify(M.TOP_FIELDS), `${f.top} vs ${M.TOP_FIELDS}`);
  check('schema tables and reader: same model fields', JSON.stringify(f.model) === JSON.stringify(M.MODEL_FIELDS), `${f.model} vs ${M.MODEL_FIELDS}`);

  // 2. The shipped manifest reads, with one default.
  const shipped = path.join(ROOT, 'weights/manifest.json');
  if (fs.existsSync(shipped)) {
    const m = M.parseManifest(JSON.parse(fs.readFileSync(shipped, 'utf8')), pathToFileURL(shipped).href);
    check('shipped manifest reads', m.models.length >= 1 && m.models.filter((e) => e.isDefault).length === 1 && m.models.every((e) => e.url.protocol === 'file:'),
      JSON.stringify(m.models.map((e) => e.id)));
  }

  // 3. The writer on real model files: what it writes is what the files say.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'csasn-manifest-'));
  try {
    const src = path.join(ROOT, 'tests/hostile/valid');
    fs.copyFileSync(path.join(src, 'model_tiny.csasn'), path.join(tmp, 'tiny.csasn'));
    fs.copyFileSync(path.join(src, 'model_tiny_f16.csasn'), path.join(tmp, 'tiny-f16.csasn'));
    fs.writeFileSync(path.join(tmp, 'tiny.md'), '# tiny\n');
    const w = writer(tmp, 'tiny.csasn', 'tiny-f16.csasn', '--default', 'tiny-f16', '--title', 'tiny=Tiny model');
    check('writer runs', w.status === 0, w.stderr);
    const raw = JSON.parse(fs.readFileSync(path.join(tmp, 'manifest.json'), 'utf8'));
    const keys = [...new Set(raw.models.flatMap((e) => Object.keys(e)))];
    check('writer writes only schema fields', Object.keys(raw).every((k) => f.top.includes(k)) && keys.every((k) => f.model.includes(k)), JSON.stringify(keys));
    const m = M.parseManifest(raw, pathToFileURL(path.join(tmp, 'manifest.json')).href);
    const bad = [];
    for (const e of m.models) {
      const file = path.join(tmp, e.file), blob = fs.readFileSync(file);
      const info = JSON.parse(spawnSync(CLI, ['info', '--model', file], { encoding: 'utf8' }).stdout || '{}');
      if (e.sha256 !== crypto.createHash('sha256').update(blob).digest('hex')) bad.push(`${e.id}: sha256`);
      if (e.bytes !== blob.length) bad.push(`${e.id}: bytes`);
      if (JSON.stringify(e.labels) !== JSON.stringify(info['csasn.labels'])) bad.push(`${e.id}: labels ${e.labels} vs ${info['csasn.labels']}`);
      if (JSON.stringify(e.malignantLabels) !== JSON.stringify(info['csasn.malignant_labels'])) bad.push(`${e.id}: malignant labels`);
      if (e.inputSize !== info['csasn.input_size']) bad.push(`${e.id}: input size`);
      if (e.segmentation !== !!info['heads.segmentation']) bad.push(`${e.id}: segmentation`);
    }
    check('written entries match the files (hash, size, labels, input size, heads)', bad.length === 0, bad.join('; '));
    const tiny = M.pickModel(m, 'tiny'), f16 = M.pickModel(m, 'tiny-f16.csasn');
    check('written: titles, cards, default', tiny && tiny.title === 'Tiny model' && tiny.card === 'tiny.md' && f16 && f16.card === null &&
      f16.isDefault && !tiny.isDefault && m.default === 'tiny-f16', JSON.stringify(m.models.map((e) => [e.id, e.title, e.card, e.isDefault])));
    check('pickModel: unknown name -> null', M.pickModel(m, 'nope') === null);

    // The writer refuses what it cannot list, with a message and a non-zero exit.
    fs.copyFileSync(path.join(src, 'model_tiny.csasn'), path.join(tmp, 'Bad Name.csasn'));
    const refusals = [
      ['a default that is not listed', ['tiny.csasn', '--default', 'other'], /default/],
      ['a file name that is not an id', ['Bad Name.csasn'], /id/],
      ['a file that is not a model', ['tiny.md'], /\S/],
      ['a title for an unlisted model', ['tiny.csasn', '--title', 'other=x'], /title/],
    ];
    for (const [what, args, re] of refusals) {
      const r = writer(tmp, ...args);
      check(`writer refuses ${what}`, r.status !== 0 && re.test(r.stderr), `status ${r.status}: ${r.stderr.trim()}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  // 4. The reader refuses malformed manifests, naming what is wrong.
  const good = {
    format: 'csasn-manifest', version: 1, default: 'a',
    models: [{ id: 'a', title: 'A', file: 'a.csasn', sha256: 'ab'.repeat(32), bytes: 10, card: 'a.md', labels: ['x', 'y'], malignant_labels: ['y'], input_size: 32, segmentation: false }],
  };
  const ok = M.parseManifest(good, base);
  check('reader: a valid manifest reads, URLs resolved against it', ok.models[0].url.href === 'http://localhost:8000/weights/a.csasn' &&
    ok.models[0].cardUrl.href === 'http://localhost:8000/weights/a.md' && ok.models[0].isDefault, JSON.stringify(ok.models[0]));
  const edit = (fn) => { const j = JSON.parse(JSON.stringify(good)); fn(j, j.models[0]); return j; };
  const cases = [
    ['the old bare list', [good.models[0]], /bare list/],
    ['a missing format', edit((j) => { delete j.format; }), /format/],
    ['another version', edit((j) => { j.version = 2; }), /version 2/],
    ['an unknown top-level field', edit((j) => { j.extra = 1; }), /"extra"/],
    ['a misspelt model field', edit((j, e) => { e.sha265 = e.sha256; delete e.sha256; }), /"sha265"/],
    ['no models', edit((j) => { j.models = []; }), /models/],
    ['a missing sha256', edit((j, e) => { delete e.sha256; }), /sha256/],
    ['an upper-case sha256', edit((j, e) => { e.sha256 = 'AB'.repeat(32); }), /sha256/],
    ['a short sha256', edit((j, e) => { e.sha256 = 'ab'; }), /sha256/],
    ['a size of 0', edit((j, e) => { e.bytes = 0; }), /bytes/],
    ['a file on another origin', edit((j, e) => { e.file = 'https://elsewhere.example/a.csasn'; }), /file.*origin/],
    ['a protocol-relative file', edit((j, e) => { e.file = '//elsewhere.example/a.csasn'; }), /file.*origin/],
    ['a card on another origin', edit((j, e) => { e.card = 'http://127.0.0.2/a.md'; }), /card.*origin/],
    ['an id with spaces', edit((j, e) => { e.id = 'a b'; j.default = 'a b'; }), /\.id/],
    ['a duplicate id', edit((j) => { j.models.push({ ...j.models[0] }); }), /twice/],
    ['a default that is not listed', edit((j) => { j.default = 'b'; }), /default/],
    ['a malignant label that is not a label', edit((j, e) => { e.malignant_labels = ['z']; }), /malignant_labels/],
    ['labels that are not strings', edit((j, e) => { e.labels = [1, 2]; }), /labels/],
    ['segmentation not a boolean', edit((j, e) => { e.segmentation = 1; }), /segmentation/],
    ['no title', edit((j, e) => { e.title = ' '; }), /title/],
  ];
  for (const [what, j, re] of cases) {
    let err = null;
    try { M.parseManifest(j, base); } catch (e) { err = e; }
    check(`reader refuses ${what}`, err && err.name === 'CsasnError' && err.code === 'manifest' && re.test(err.message), err ? `${err.code}: ${err.message}` : 'accepted');
  }
}

runMain('test_manifest', main);
