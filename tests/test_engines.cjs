// test_engines.cjs - the two wasm engines (simd128, and relaxed SIMD: the kernels'
// multiply-adds fused by f32x4.relaxed_madd, see src/simd.h) give the same answers, and the
// engine choice (createBestEngine) is what it says: relaxed only where the runtime has it and
// the known-answer self-test passes, simd128 otherwise or when asked.
//
// node 20 runs relaxed SIMD only behind --experimental-wasm-relaxed-simd: this suite re-runs
// itself with the flag, and also checks the runtime *without* it falls back to simd128.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { pathToFileURL } = require('url');

const { ROOT, DATA, check, runMain } = require('./testlib.cjs');
const { WASM_DIR, buildAll } = require('./test_wasm_node.cjs');

const FLAG = '--experimental-wasm-relaxed-simd';

// Real images of both shipped models' domains, with and without a region.
function images() {
  const pick = (dir, n) => fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort().slice(0, n).map((f) => path.join(dir, f));
  return [...pick(path.join(DATA, 'ddti/images/malignant'), 3), ...pick(path.join(DATA, 'ddti/images/benign'), 2),
    ...pick(path.join(DATA, 'busi/images/malignant'), 2), ...pick(path.join(DATA, 'ddti_frames/frames'), 2)];
}

async function withFlag() {
  const api = await import(pathToFileURL(path.join(WASM_DIR, 'csasn.js')).href);
  check('relaxed SIMD validates with the flag', api.relaxedSimdSupported());
  const auto = await api.createBestEngine({});
  check('auto picks the relaxed engine', auto.kernels === 'wasm-relaxed-simd', `${auto.kernels} (${auto.fallback})`);
  const simd = await api.createBestEngine({ kind: 'simd128' });
  check('simd128 when asked', simd.kernels === 'wasm-simd128', simd.kernels);
  let bad = null;
  try { await api.createBestEngine({ kind: 'fast' }); } catch (e) { bad = e; }
  check('an unknown engine name is refused', bad && /engine kind must be/.test(bad.message), bad && bad.message);

  // Probabilities: a fused multiply-add rounds once where mul+add rounds twice; over the
  // ~10^3-term sums of these models the logits move by ~1e-6 relative, probabilities less.
  // 1e-5 (absolute, on probabilities in [0, 1]) is the bound the engine must keep.
  const models = JSON.parse(fs.readFileSync(path.join(ROOT, 'weights/manifest.json'), 'utf8')).models
    .map((m) => path.join(ROOT, 'weights', m.file));
  for (const file of models) {
    const bytes = fs.readFileSync(file);
    const a = await api.createClassifier(bytes, { engine: auto });
    const b = await api.createClassifier(bytes, { engine: simd });
    let worst = 0, worstMask = 0, same = true, n = 0;
    for (const img of images()) {
      const buf = fs.readFileSync(img);
      for (const roi of [null, { x: 20, y: 30, w: 180, h: 150 }]) {
        const ra = await a.classify(buf, { roi }), rb = await b.classify(buf, { roi });
        ra.probs.forEach((p, i) => { worst = Math.max(worst, Math.abs(p - rb.probs[i])); });
        if (ra.malignancy !== null) worst = Math.max(worst, Math.abs(ra.malignancy - rb.malignancy));
        if (ra.mask) ra.mask.data.forEach((v, i) => { worstMask = Math.max(worstMask, Math.abs(v - rb.mask.data[i])); });
        same = same && ra.top === rb.top;
        n++;
      }
    }
    const name = path.basename(file);
    check(`${name}: relaxed vs simd128 probabilities within 1e-5 over ${n} inputs`, worst <= 1e-5, `max |diff| ${worst}`);
    check(`${name}: relaxed vs simd128 masks within 1e-4`, worstMask <= 1e-4, `max |diff| ${worstMask}`);
    check(`${name}: same top class on every input`, same);
    // Not bit-identical: if it were, the fused instruction would not be in use.
    console.log(`# ${name}: max probability difference ${worst.toExponential(2)}, mask ${worstMask.toExponential(2)}`);
    a.free(); b.free();
  }
}

async function withoutFlag() {
  const api = await import(pathToFileURL(path.join(WASM_DIR, 'csasn.js')).href);
  check('without the flag relaxed SIMD does not validate', !api.relaxedSimdSupported());
  const auto = await api.createBestEngine({});
  check('auto falls back to simd128 and says why', auto.kernels === 'wasm-simd128' && /no relaxed SIMD/.test(auto.fallback || ''),
    `${auto.kernels} (${auto.fallback})`);
  let err = null;
  try { await api.createBestEngine({ kind: 'relaxed' }); } catch (e) { err = e; }
  check('asking for relaxed where it is missing rejects clearly', err && /no relaxed SIMD/.test(err.message), err && err.message);
}

async function main() {
  const mode = process.argv[2];
  if (mode === '--with') return withFlag();
  if (mode === '--without') return withoutFlag();
  buildAll();
  for (const [args, what] of [[[FLAG, __filename, '--with'], 'with'], [[__filename, '--without'], 'without']]) {
    const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 900e3 });
    process.stdout.write(r.stdout);
    check(`the ${what}-flag run finished cleanly`, r.status === 0, `status ${r.status} ${r.stderr.slice(-800)}`);
  }
}

runMain('test_engines', main);
