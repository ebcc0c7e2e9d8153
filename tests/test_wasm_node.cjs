// test_wasm_node.cjs - the wasm build, driven through the JS API (build/wasm/csasn.js) in
// node, gives the same answers as the native CLI on real ultrasound images.
//
// Model: the manifest's default model in weights/ when it exists (the shipped one), else a
// small CSASN generated from the PyTorch reference with BatchNorm statistics calibrated on
// real DDTI images (random init alone gives near-constant outputs, see src/ARCHITECTURE.md and tools/csasn_model.py calibrate_batchnorm), written
// to build/test-model/. Both paths run the same checks.
//
// Also exported (require('./test_wasm_node.cjs')) for tests/test_browser.cjs: the model
// helper and the CLI runner, so both suites compare against the same reference.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { pathToFileURL, fileURLToPath } = require('url');
const crypto = require('crypto');

const { ROOT, DATA, CLI, check, runMain } = require('./testlib.cjs');

const WASM_DIR = path.join(ROOT, 'build/wasm');

// `make test` builds the native CLI but not the wasm; build what is missing or stale (make
// is a no-op when everything is up to date).
function buildAll() {
  const r = spawnSync('make', ['-s', 'all', 'wasm'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_PATH: '/usr/share/nodejs' } });
  if (r.status !== 0) throw new Error(`make all wasm failed:\n${r.stdout}${r.stderr}`);
}

const GEN_PY = String.raw`
import sys, os, glob
sys.path.insert(0, os.path.join(sys.argv[1], 'tools'))
import torch, numpy as np
from PIL import Image
torch.set_num_threads(1)
torch.manual_seed(1234)
from csasn_model import make_config, CSASN, config_to_meta, export_state
import csasn_format
out, data = sys.argv[2], sys.argv[3]
# Small but complete: every branch, both attention stages, malignancy and segmentation heads.
cfg = make_config('csasn-test-tiny', cnn='mobilenetv2', vit=(64, 2, 2, 128), input_size=96,
                  fuse_channels=64, att_reduction=8, cls_dim=64, cls_hidden=128, cls_blocks=1,
                  head_segmentation=1, seg_channels=16,
                  labels=['2', '3', '4a', '4b', '4c', '5'], malignant_labels=['4a', '4b', '4c', '5'],
                  source='tests/test_wasm_node.cjs: random init, BatchNorm calibrated on 24 DDTI images',
                  description='test model, not trained')
m = CSASN(cfg)
paths = sorted(glob.glob(os.path.join(data, 'ddti/images/*/*.png')))[:24]
S = cfg.input_size
mean = torch.tensor(cfg.mean).view(3, 1, 1); std = torch.tensor(cfg.std).view(3, 1, 1)
xs = []
for p in paths:
    im = Image.open(p).convert('L').resize((S, S), Image.BILINEAR)
    t = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None].repeat(3, 1, 1)
    xs.append((t - mean) / std)
x = torch.stack(xs)
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.momentum = None   # cumulative average over the calibration passes
m.train()
with torch.no_grad():
    for _ in range(3):
        m(x)
m.eval()
# Widen the heads a little so the classes differ by more than the comparison tolerance but
# no single class takes everything (the page test compares percentages of every class).
with torch.no_grad():
    m.head_subtype.weight.mul_(2.5); m.head_malig.weight.mul_(2.5)
csasn_format.write(out, config_to_meta(cfg), export_state(m), 'f16')
print('wrote', out)
`;

// The shipped manifest through the one reader (shell/manifest.js) -> { models, default, ... }
// or null when weights/manifest.json does not exist.
async function shippedManifest() {
  const file = path.join(ROOT, 'weights/manifest.json');
  if (!fs.existsSync(file)) return null;
  const { parseManifest } = await import(pathToFileURL(path.join(ROOT, 'shell/manifest.js')).href);
  return parseManifest(JSON.parse(fs.readFileSync(file, 'utf8')), pathToFileURL(file).href);
}

// -> absolute path of the model the tests use, and whether it is the shipped one.
async function testModel() {
  const man = await shippedManifest();
  const def = man && man.models.find((m) => m.isDefault);
  if (def && fs.existsSync(fileURLToPath(def.url))) return { file: fileURLToPath(def.url), shipped: true };
  const out = path.join(ROOT, 'build/test-model/csasn-test-tiny.csasn');
  if (!fs.existsSync(out)) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    execFileSync('/usr/bin/python3', ['-c', GEN_PY, ROOT, out, DATA], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return { file: out, shipped: false };
}

// DIR/manifest.json listing DIR's .csasn files, through the one writer (tools/manifest.py).
// default: the id to start with; titles: { id: text }.
function writeManifest(dir, { files = [], default: def = null, titles = {} } = {}) {
  const args = [path.join(ROOT, 'tools/manifest.py'), dir, ...files];
  if (def) args.push('--default', def);
  for (const [id, t] of Object.entries(titles)) args.push('--title', `${id}=${t}`);
  execFileSync('/usr/bin/python3', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return path.join(dir, 'manifest.json');
}

// Real images: 4 DDTI thyroid crops and 4 BUSI breast scans of varied size.
function testImages() {
  const pick = (dir, n) => fs.readdirSync(dir).filter((f) => /\.png$/i.test(f)).sort().slice(0, n).map((f) => path.join(dir, f));
  return [
    ...pick(path.join(DATA, 'ddti/images/benign'), 2),
    ...pick(path.join(DATA, 'ddti/images/malignant'), 2),
    ...pick(path.join(DATA, 'busi/images/benign'), 1),
    ...pick(path.join(DATA, 'busi/images/malignant'), 2),
    ...pick(path.join(DATA, 'busi/images/normal'), 1),
  ];
}

function cli(model, image, roi) {
  const args = ['classify', '--model', model];
  if (roi) args.push('--roi', `${roi.x},${roi.y},${roi.w},${roi.h}`);
  args.push(image);
  const r = spawnSync(CLI, args, { encoding: 'utf8' });
  const line = (r.stdout || '').trim().split('\n').pop();
  let j = null;
  try { j = JSON.parse(line); } catch { /* reported by the caller */ }
  return { status: r.status, json: j, stderr: r.stderr };
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function loadApi() {
  const api = await import(path.join(WASM_DIR, 'csasn.js'));
  return api;
}

async function main() {
  buildAll();
  const { file: modelFile, shipped } = await testModel();
  console.log(`# model: ${path.relative(ROOT, modelFile)}${shipped ? ' (shipped)' : ' (generated)'}`);
  const { createClassifier, RESULT_LAYOUT, checkResultLayout } = await loadApi();
  const wasmBinary = fs.readFileSync(path.join(WASM_DIR, 'csasn.wasm'));
  const modelBytes = fs.readFileSync(modelFile);
  const c = await createClassifier(modelBytes, { wasmBinary });
  const info = c.info();
  const meta = info.meta || {};
  const S = info.inputSize;
  check('info: labels and input size', Array.isArray(info.labels) && info.labels.length >= 2 && info.inputSize > 0, JSON.stringify(info).slice(0, 200));

  // The result struct: the engine's offsetof() of every field (csasn_wasm_result_layout,
  // shell/exports.c) against the offsets csasn.js reads at, field by field, and its size.
  const names = Object.keys(RESULT_LAYOUT);
  const engineLayout = c._engine.resultLayout || [];
  const badFields = names.filter((k, i) => engineLayout[i] !== RESULT_LAYOUT[k]).map((k, i) => `${k}: engine ${engineLayout[names.indexOf(k)]}, js ${RESULT_LAYOUT[k]}`);
  check(`result struct: all ${names.length - 1} field offsets and sizeof agree with csasn.js`, engineLayout.length === names.length && badFields.length === 0, badFields.join('; '));
  // ...and the comparison refuses an engine whose struct moved one field (here `mask` 4 bytes on).
  const shifted = engineLayout.map((v, i) => (names[i] === 'mask' ? v + 4 : v));
  const heap = new Int32Array(64);
  const fake = { HEAP32: heap, _csasn_wasm_alloc: () => 64, _csasn_wasm_free: () => {},
    _csasn_wasm_result_layout: (p, n) => { heap.set(shifted.slice(0, n), p >> 2); return shifted.length; } };
  let layoutErr = null;
  try { checkResultLayout(fake); } catch (e) { layoutErr = e.message; }
  check('result struct: a moved field is refused by name', /\bmask at 40, read at 36\b/.test(layoutErr || ''), layoutErr);

  // 1e-5 (the issue's bar): both builds run the same C code through the same 4-wide vector
  // macro layer (wasm SIMD128 / SSE2), so what can differ is only float rounding where the
  // two compilers (emcc's clang vs the native cc) contract or reorder scalar arithmetic and
  // libm (expf, tanhf) implementations; measured here ~1e-9 on probabilities.
  const TOL = 1e-5;
  const images = testImages();
  check('at least 6 real images', images.length >= 6, images.length);
  let worst = 0, compared = 0;
  for (const img of images) {
    const bytes = fs.readFileSync(img);
    const name = path.relative(DATA, img);
    const ref = cli(modelFile, img, null);
    if (ref.status !== 0 || !ref.json || !ref.json.probs) {
      check(`cli ${name}`, false, `status ${ref.status}: ${ref.stderr}`);
      continue;
    }
    const r = await c.classify(bytes);
    const W = ref.json.image_w, H = ref.json.image_h;
    const d = Math.max(...r.probs.map((p, i) => Math.abs(p - ref.json.probs[i])));
    const dm = ref.json.malignancy === null ? 0 : Math.abs(r.malignancy - ref.json.malignancy);
    worst = Math.max(worst, d, dm);
    compared++;
    check(`whole image ${name}: probs within ${TOL} of the CLI`, d <= TOL && dm <= TOL && r.labels[r.top] === ref.json.top,
      `max |dp| ${d}, |dmalig| ${dm}, top ${r.labels[r.top]} vs ${ref.json.top}`);
    check(`whole image ${name}: image size`, r.image.w === W && r.image.h === H, `${r.image.w}x${r.image.h} vs ${W}x${H}`);
    // A region around the centre-left, as a user would draw around a nodule.
    const roi = { x: Math.floor(W * 0.15), y: Math.floor(H * 0.2), w: Math.floor(W * 0.5), h: Math.floor(H * 0.55) };
    const refR = cli(modelFile, img, roi);
    const rr = await c.classify(bytes, { roi });
    const dr = Math.max(...rr.probs.map((p, i) => Math.abs(p - refR.json.probs[i])));
    const dmr = refR.json.malignancy === null ? 0 : Math.abs(rr.malignancy - refR.json.malignancy);
    worst = Math.max(worst, dr, dmr);
    check(`roi ${name}: probs within ${TOL} of the CLI --roi`, refR.status === 0 && dr <= TOL && dmr <= TOL, `max |dp| ${dr}, |dmalig| ${dmr}`);
    // The region must matter, or the check above says nothing about cropping.
    const moved = Math.max(...rr.probs.map((p, i) => Math.abs(p - r.probs[i])));
    check(`roi ${name}: the region changes the answer`, moved > 10 * TOL, `max change ${moved}`);
    if (meta['heads.segmentation']) check(`roi ${name}: lesion mask at S/4`, rr.mask && rr.mask.w === S / 4 && rr.mask.h === S / 4 && rr.mask.data.every((v) => v >= 0 && v <= 1), rr.mask && `${rr.mask.w}x${rr.mask.h}`);
    if (rr.attention) check(`roi ${name}: attention map in [0,1]`, rr.attention.data.every((v) => v >= 0 && v <= 1) && rr.attention.data.length === rr.attention.w * rr.attention.h);
  }
  console.log(`# ${compared} images, worst |wasm - native| = ${worst.toExponential(2)}`);
  await previews(c, images);

  // Bad input: the promise rejects with the engine's own message (the CLI prints the same).
  const bad = [
    ['not an image', Buffer.from('<html><body>hello</body></html>')],
    ['zero bytes', Buffer.alloc(0)],
    ['truncated png', fs.readFileSync(images[0]).subarray(0, 100)],
  ];
  for (const [what, bytes] of bad) {
    const tmp = path.join(ROOT, 'build/test-model', `bad-${what.replace(/\s+/g, '-')}.png`);
    fs.mkdirSync(path.dirname(tmp), { recursive: true });
    fs.writeFileSync(tmp, bytes);
    const ref = cli(modelFile, tmp, null);
    let msg = null;
    try {
      await c.classify(bytes);
    } catch (e) {
      msg = e.message;
    }
    const refMsg = ref.json && ref.json.error;
    check(`bad input (${what}) rejects with the engine's message`, msg && refMsg && msg === refMsg && ref.status !== 0,
      `wasm: ${msg} | cli (status ${ref.status}): ${refMsg}`);
  }
  // A ROI outside the image is the engine's error too, and the classifier keeps working.
  let roiErr = null;
  try { await c.classify(fs.readFileSync(images[0]), { roi: { x: 5000, y: 0, w: 10, h: 10 } }); } catch (e) { roiErr = e.message; }
  check('roi outside the image rejects', !!roiErr, 'resolved');
  // ROI values the engine's int32 cannot hold are refused by the API, not wrapped (2^32 + 10
  // would be analysed as 10, 1e300 as 0); the int32 extremes reach the engine, which answers
  // for its own range (no overlap).
  const img0 = fs.readFileSync(images[0]);
  for (const bad of [2 ** 32 + 10, 1e300, -(2 ** 31) - 1, 2 ** 31, 2.5, NaN, Infinity, '5']) {
    let msg = null;
    try { await c.classify(img0, { roi: { x: bad, y: 0, w: 10, h: 10 } }); } catch (e) { msg = e.message; }
    check(`roi.x = ${String(bad)} rejects as outside int32`, /roi\.x must be an integer in \[-2147483648, 2147483647\]/.test(msg || ''), msg);
  }
  let edge = null;
  try { await c.classify(img0, { roi: { x: 2 ** 31 - 1, y: 0, w: 10, h: 10 } }); } catch (e) { edge = e.message; }
  check('roi.x = 2^31 - 1 reaches the engine (no overlap)', /does not overlap/.test(edge || ''), edge);
  // One image-size limit (CSASN_MAX_IMAGE_BYTES), refused before the copy into wasm memory.
  const { MAX_IMAGE_BYTES } = await loadApi();
  let big = null;
  try { await c.classify(new Uint8Array(MAX_IMAGE_BYTES + 1)); } catch (e) { big = e.message; }
  check('an image of 256 MiB + 1 byte rejects with the limit', MAX_IMAGE_BYTES === 256 * 2 ** 20 && /over the 256 MiB limit/.test(big || ''), big);
  const again = await c.classify(fs.readFileSync(images[0]));
  check('classifier still works after errors', again.probs.length === info.labels.length);

  // A corrupt model rejects with the loader's message.
  let loadErr = null;
  try { await createClassifier(modelBytes.subarray(0, 200), { wasmBinary }); } catch (e) { loadErr = e.message; }
  check('truncated model rejects with a message', typeof loadErr === 'string' && loadErr.length > 5, loadErr);

  await hostile(createClassifier, wasmBinary, c, modelFile);

  // Latency in node (warm: V8 tiers wasm up after the first calls).
  const bytes0 = fs.readFileSync(images[0]);
  for (let i = 0; i < 3; i++) await c.classify(bytes0);
  const ms = [];
  for (let i = 0; i < 10; i++) ms.push((await c.classify(bytes0)).ms);
  ms.sort((a, b) => a - b);
  console.log(`# node wasm latency (${path.basename(modelFile)}): median ${ms[5].toFixed(2)} ms over 10`);
  c.free();
  let freed = null;
  try { await c.classify(bytes0); } catch (e) { freed = e.message; }
  check('use after free rejects', /freed/.test(freed || ''), freed);
}

// The engine's preview (classify with preview: true; csasn_preview in src/csasn.h) is the
// image it decoded: the same pixels as tools/preprocess.py (the Python twin of the decoder,
// gray conversion and resize, checked against the C code by tests/test_preprocess.py) gives
// at the preview's size with mean 0 and std 1, rounded to 8 bits. Tolerance: 1 grey level,
// the rounding of values the two sides compute to 1e-5 that land on either side of a .5.
async function previews(c, images) {
  const dir = path.join(ROOT, 'build/test-model/previews');
  fs.mkdirSync(dir, { recursive: true });
  const jobs = [];
  for (const img of images) {
    const r = await c.classify(fs.readFileSync(img), { preview: true });
    jobs.push({ img, r, out: path.join(dir, `${jobs.length}.u8`) });
  }
  const py = String.raw`
import sys, json, numpy as np
sys.path.insert(0, sys.argv[1])
import preprocess
for j in json.loads(sys.argv[2]):
    g = preprocess.resize_normalize(preprocess.load_gray(j['img']), None, j['side'], [0, 0, 0], [1, 1, 1])[0]
    np.clip(np.floor(g * np.float32(255) + np.float32(0.5)), 0, 255).astype(np.uint8).tofile(j['out'])
`;
  execFileSync('/usr/bin/python3', ['-c', py, path.join(ROOT, 'tools'), JSON.stringify(jobs.map((j) => ({ img: j.img, side: j.r.preview.w, out: j.out })))]);
  const bad = [];
  let worst = 0;
  for (const j of jobs) {
    const p = j.r.preview, want = fs.readFileSync(j.out);
    const side = Math.min(1024, Math.max(j.r.image.w, j.r.image.h));
    let d = p.data.length === want.length ? 0 : Infinity;
    for (let i = 0; i < want.length && d !== Infinity; i++) d = Math.max(d, Math.abs(p.data[i] - want[i]));
    worst = Math.max(worst, d);
    if (p.w !== side || p.h !== side || d > 1) bad.push(`${path.basename(j.img)}: ${p.w}x${p.h} for ${j.r.image.w}x${j.r.image.h}, max |d| ${d}`);
  }
  check(`preview: ${jobs.length} real images, the engine's pixels at min(1024, longest side) within 1 level`, jobs.length > 0 && bad.length === 0, bad.join('; '));
  console.log(`# preview: worst |engine - tools/preprocess.py| = ${worst} grey levels`);
}

// Hostile input through the node API: the hostile corpus (tests/hostile/corpus.json). Every file to
// reject rejects with the engine's own message, the same text the CLI prints, containing one
// of the words the corpus expects, and never yields a probability; every unusual but valid
// file classifies like the CLI does. Then 1,000 classifications leave wasm memory unchanged
// and give bit-identical results.
async function hostile(createClassifier, wasmBinary, c, modelFile) {
  const dir = path.join(ROOT, 'tests/hostile');
  const idx = path.join(dir, 'corpus.json');
  if (!fs.existsSync(idx)) {
    console.log('# tests/hostile/corpus.json absent: hostile corpus checks skipped');
    return;
  }
  const corpus = JSON.parse(fs.readFileSync(idx, 'utf8'));
  let nRej = 0, nVal = 0;
  const badRej = [], badVal = [];
  for (const e of corpus.images || []) {
    const file = path.join(dir, e.file);
    const bytes = fs.readFileSync(file);
    const ref = cli(modelFile, file, null);
    let r = null, msg = null;
    try { r = await c.classify(bytes); } catch (err) { msg = err.message; }
    if (e.kind === 'reject') {
      nRej++;
      const words = (e.expect || []).map((w) => w.toLowerCase());
      const ok = r === null && msg && (words.length === 0 || words.some((w) => msg.toLowerCase().includes(w))) &&
        ref.json && ref.json.error === msg;
      if (!ok) badRej.push(`${e.file}: wasm ${r ? 'returned probabilities' : JSON.stringify(msg)}, cli ${ref.json && JSON.stringify(ref.json.error)}, expect ${JSON.stringify(words)}`);
    } else {
      nVal++;
      const sum = r ? r.probs.reduce((a, b) => a + b, 0) : NaN;
      const d = r && ref.json && ref.json.probs ? Math.max(...r.probs.map((p, i) => Math.abs(p - ref.json.probs[i]))) : NaN;
      // Sum to 1 within float32 rounding of a softmax over a handful of classes.
      const ok = r && Math.abs(sum - 1) < 1e-5 && d <= 1e-5 && r.image.w === ref.json.image_w && r.image.h === ref.json.image_h;
      if (!ok) badVal.push(`${e.file}: ${msg || `sum ${sum}, max |dp| ${d}, ${r && r.image.w}x${r && r.image.h} vs ${ref.json && ref.json.image_w}x${ref.json && ref.json.image_h}`}`);
    }
  }
  check(`hostile: ${nRej} files to reject each reject with the engine's message`, nRej > 0 && badRej.length === 0, badRej.join(' | '));
  check(`hostile: ${nVal} unusual valid images classify like the CLI`, nVal > 0 && badVal.length === 0, badVal.join(' | '));

  const badModels = [];
  let nModels = 0;
  for (const e of corpus.models || []) {
    nModels++;
    let m = null, msg = null;
    try { m = await createClassifier(fs.readFileSync(path.join(dir, e.file)), { wasmBinary }); } catch (err) { msg = err.message; }
    if (e.kind === 'reject' && e.loads && m) {
      // Finite but overflowing weights load; the engine must refuse at classify time.
      try { m.classifySync(fs.readFileSync(testImages()[0])); msg = null; } catch (err) { msg = err.message; }
      const words = (e.expect || []).map((w) => w.toLowerCase());
      if (!msg || (words.length && !words.some((w) => msg.toLowerCase().includes(w)))) badModels.push(`${e.file}: classify ${msg || 'returned a result'}`);
    } else if (e.kind === 'reject') {
      const words = (e.expect || []).map((w) => w.toLowerCase());
      if (m || !msg || (words.length && !words.some((w) => msg.toLowerCase().includes(w)))) badModels.push(`${e.file}: ${m ? 'loaded' : msg}`);
    } else if (!m) badModels.push(`${e.file}: ${msg}`);
    if (m) m.free();
  }
  check(`hostile: ${nModels} model files load or reject as expected`, nModels > 0 && badModels.length === 0, badModels.join(' | '));

  // Stability: 1,000 runs on the tiny corpus model (fast) over a real image.
  const tiny = path.join(dir, corpus.tiny_model || 'valid/model_tiny.csasn');
  if (fs.existsSync(tiny)) {
    const t = await createClassifier(fs.readFileSync(tiny), { wasmBinary });
    const img = fs.readFileSync(testImages()[4]);
    const roi = { x: 10, y: 10, w: 200, h: 150 };
    const key = (r) => Buffer.from(new Float32Array([...r.probs, r.malignancy ?? 0, ...(r.attention ? r.attention.data : []), ...(r.mask ? r.mask.data : [])]).buffer).toString('base64');
    // Whole image and a region alternate, so buffers are reused with different crops.
    const k0 = key(t.classifySync(img)), kr = key(t.classifySync(img, { roi }));
    const mem0 = t.memoryBytes();
    let same = 0;
    for (let i = 0; i < 1000; i++) {
      const useRoi = i % 2 === 1;
      if (key(t.classifySync(img, useRoi ? { roi } : {})) === (useRoi ? kr : k0)) same++;
    }
    check('stability: 1000 classifications keep wasm memory unchanged', t.memoryBytes() === mem0, `${mem0} -> ${t.memoryBytes()}`);
    check('stability: results bit-identical across 1000 runs', same === 1000 && k0 !== kr, `${same}/1000 identical`);
    t.free();
  }
}

if (require.main === module) runMain('test_wasm_node', main);

module.exports = { WASM_DIR, buildAll, testModel, shippedManifest, writeManifest, testImages, cli, sha256 };
