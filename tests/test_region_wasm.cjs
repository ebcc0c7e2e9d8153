// test_region_wasm.cjs - region geometry and descriptor heads through the wasm engine in node
// (shell/csasn.js), the runtime the page uses.
//
// 1. The model input the wasm engine builds (classify, then debugTensor('input')) equals
//    tools/preprocess.py's for stretch, square and letterbox models with several margins and
//    fills, on real DDTI frames with nodule boxes and boxes at and past the image edge, tiny
//    ones included (tests/region_fixtures.py writes the models and Python's tensors);
//    result.region and classifier.region() are region_geometry's.
// 2. A model with four descriptor heads: result.descriptors = [{name, labels, probs, top,
//    label}] in the file's order, equal to the CLI's "descriptors" (same C code, 1e-5 as in
//    test_wasm_node.cjs), probabilities summing to 1; info() names the heads and the rule.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { pathToFileURL } = require('url');
const { ROOT, CLI, check, runMain } = require('./testlib.cjs');
const { WASM_DIR, buildAll } = require('./test_wasm_node.cjs');

const OUT = path.join(ROOT, 'build/test-region-wasm');
// 1e-5: the bound between the engine and tools/preprocess.py (tests/test_region.py says why);
// the wasm build runs the same C code, the same double sums.
const TOL = 1e-5;

function cliJson(model, img, roi) {
  const args = ['classify', '--model', model, ...(roi ? ['--roi', roi.join(',')] : []), img];
  const r = spawnSync(CLI, args, { encoding: 'utf8' });
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

async function main() {
  buildAll();
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'tests/region_fixtures.py'), OUT], { stdio: 'inherit' });
  const fx = JSON.parse(fs.readFileSync(path.join(OUT, 'cases.json'), 'utf8'));
  const { createEngine, createClassifier } = await import(pathToFileURL(path.join(WASM_DIR, 'csasn.js')).href);
  const engine = await createEngine({ wasmBinary: fs.readFileSync(path.join(WASM_DIR, 'csasn.wasm')) });

  // 1. preprocessing
  const byModel = new Map();
  for (const it of fx.items) {
    if (!byModel.has(it.model)) byModel.set(it.model, []);
    byModel.get(it.model).push(it);
  }
  let worst = 0, n = 0;
  const bad = [];
  const images = new Map();
  for (const [model, items] of byModel) {
    const c = await createClassifier(fs.readFileSync(model), { engine });
    const rule = c.info().region;
    if (rule.mode !== items[0].mode) bad.push(`${model}: info().region ${JSON.stringify(rule)}`);
    for (const it of items) {
      if (!images.has(it.image)) images.set(it.image, fs.readFileSync(it.image));
      const roi = it.roi ? { x: it.roi[0], y: it.roi[1], w: it.roi[2], h: it.roi[3] } : null;
      const name = `${it.mode} m${it.margin} f${it.fill} ${path.basename(it.image)} roi=${it.roi}`;
      let r;
      try {
        r = await c.classify(images.get(it.image), { roi });
      } catch (e) {
        bad.push(`${name}: ${e.message}`);
        continue;
      }
      const got = c.debugTensor('input').data;
      const ref = new Float32Array(fs.readFileSync(it.ref).buffer.slice(0));
      let d = got.length === ref.length ? 0 : Infinity;
      for (let i = 0; i < ref.length && d !== Infinity; i++) d = Math.max(d, Math.abs(got[i] - ref[i]));
      worst = Math.max(worst, d);
      n++;
      if (d > TOL) bad.push(`${name}: max diff ${d}`);
      const want = JSON.stringify(it.region);
      if (JSON.stringify(r.region) !== want) bad.push(`${name}: result.region ${JSON.stringify(r.region)} vs ${want}`);
      const pre = c.region(r.image.w, r.image.h, roi);
      if (JSON.stringify(pre) !== want) bad.push(`${name}: region() ${JSON.stringify(pre)} vs ${want}`);
    }
    c.free();
  }
  const modes = new Set(fx.items.map((it) => it.mode));
  check(`wasm model input equals tools/preprocess.py for ${modes.size} modes, ${byModel.size} rules, ${n} frame/box cases (max diff ${worst.toExponential(2)})`,
    n === fx.items.length && modes.size === 3 && worst <= TOL && bad.filter((b) => /diff|Error|error/.test(b)).length === 0, bad.slice(0, 4).join('; '));
  check('result.region and classifier.region() are region_geometry\'s in every case', n === fx.items.length && bad.length === 0, bad.slice(0, 4).join('; '));

  // 2. descriptor heads
  const d = fx.desc;
  const c = await createClassifier(fs.readFileSync(d.model), { engine });
  const info = c.info();
  check('info(): the region rule and the descriptor heads with their labels',
    JSON.stringify(info.region) === JSON.stringify({ mode: 'square', margin: 0.25, fill: 0 }) &&
    JSON.stringify(info.descriptors) === JSON.stringify(d.descriptors.map((name, i) => ({ name, labels: d.labels[i] }))), JSON.stringify(info.descriptors));
  let dmax = 0, shapeOk = true, sums = true, compared = 0, regionOk = true;
  const shownTops = new Set();
  for (const [img, box] of d.frames) {
    const r = await c.classify(fs.readFileSync(img), { roi: { x: box[0], y: box[1], w: box[2], h: box[3] } });
    const ref = cliJson(d.model, img, box);
    if (!ref) { shapeOk = false; continue; }
    regionOk &&= JSON.stringify(r.region) === JSON.stringify(ref.region);
    shapeOk &&= Array.isArray(r.descriptors) && r.descriptors.length === d.descriptors.length;
    r.descriptors.forEach((h, i) => {
      shapeOk &&= h.name === d.descriptors[i] && JSON.stringify(h.labels) === JSON.stringify(d.labels[i]) &&
        h.probs.length === h.labels.length && h.label === h.labels[h.top] &&
        h.probs.every((p) => p <= h.probs[h.top]) && JSON.stringify(Object.keys(ref.descriptors[h.name])) === JSON.stringify(h.labels);
      sums &&= Math.abs(h.probs.reduce((a, b) => a + b, 0) - 1) < 1e-5;
      h.labels.forEach((l, k) => { dmax = Math.max(dmax, Math.abs(h.probs[k] - ref.descriptors[h.name][l])); });
      shownTops.add(`${h.name}=${h.label}`);
    });
    compared++;
  }
  check(`result.descriptors: ${d.descriptors.length} heads {name, labels, probs, top, label} in the file's order, probabilities sum to 1`,
    compared === d.frames.length && shapeOk && sums, JSON.stringify(shownTops));
  check(`result.descriptors equal the CLI's within ${TOL} on ${compared} frames with boxes (max diff ${dmax.toExponential(2)}); region the CLI's`,
    compared === d.frames.length && dmax <= TOL && regionOk, `max diff ${dmax}`);
  const f = await c.forward(c.debugTensor('input').data);
  check('forward() on a tensor: descriptors present, region null (no image)', f.region === null && f.descriptors.length === d.descriptors.length, JSON.stringify(f.region));
  c.free();
  engine.close();
}

runMain('test_region_wasm', main);
