// test_onnx_parity.cjs - the ONNX export of the PyTorch reference, run by onnxruntime-web (the
// runtime `make bench` compares against), gives the same outputs as this engine: the wasm build
// in node and the native CLI, on csasn-b0-ti (random weights, calibrated BatchNorm) and on every
// shipped model weights/*.csasn. Not a benchmark: nothing here is timed.
//
// Why it matters: the benchmark's ratio ours / onnxruntime-web only means something if both
// compute the same function on the same weights; and onnxruntime is an implementation written
// by others, so agreement with it is an independent check of our forward pass.
//
// Prepares what it needs: `make -s all wasm` (up to date: instant) and tools/export_onnx.py
// (cached by a stamp; ~10 s per model the first time). Prints `ok NAME` / `not ok NAME: why`.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { pathToFileURL } = require('url');

const T = require('./testlib.cjs');

const { ROOT, CLI } = T;
const R = (...p) => path.join(ROOT, ...p);

// Tolerance on probabilities, malignancy and attention map (all in [0, 1]). Both runtimes compute
// in float32 from identical f32 weights and an identical input tensor; they differ only in
// summation order (GEMM blocking, BatchNorm folded into the convolution at load) and in the
// exp/erf/sigmoid implementations. Measured here on csasn-b0-ti and the shipped models: max
// |diff| 1.2e-6 on probabilities, 1e-6 on malignancy, 2e-7 on the attention map. 1e-4 leaves
// ~100x for other inputs and weights, yet a single wrong layer (a missed residual, a transposed
// weight, a BatchNorm folded with the wrong eps) moves these outputs by 1e-2 or more - checked
// below by corrupting one weight and requiring the comparison to notice.
const TOL = 1e-4;
// The lesion mask is a per-pixel sigmoid at S/4 after two bilinear upsamplings of a 64-channel
// decoder: many more outputs, each from a longer float32 chain; measured max |diff| 1.4e-5 over
// 3136 pixels. 5e-4 keeps the same ~30-100x margin; a wrong decoder layer moves it by > 1e-2.
const TOL_MASK = 5e-4;
// The CLI prints 9 significant digits (%.9g), well inside TOL.

// Every check here shows its measured figure, passed or not.
const check = (name, ok, why) => T.check(ok ? `${name} (${why})` : name, ok, why);
function maxAbs(a, b) {
  if (!a || !b || a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
const fmt = (x) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

function run(cmd, args, what) {
  const p = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (p.status !== 0) throw new Error(`${what} failed (${p.status}): ${(p.stderr || '').trim().slice(-800)}`);
  return p.stdout;
}

async function main() {
  run('make', ['-s', 'all', 'wasm'], 'make all wasm');
  run('/usr/bin/python3', [R('tools', 'export_onnx.py')], 'tools/export_onnx.py');

  const ort = require('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  ort.env.logLevel = 'error';
  const { createClassifier } = await import(pathToFileURL(R('build', 'wasm', 'csasn.js')).href);
  const wasmBinary = fs.readFileSync(R('build', 'wasm', 'csasn.wasm'));

  const names = ['csasn-b0-ti'];
  if (fs.existsSync(R('weights'))) {
    for (const f of fs.readdirSync(R('weights')).sort()) if (f.endsWith('.csasn')) names.push(f.slice(0, -6));
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'csasn-onnx-'));
  try {
    for (const name of names) await checkModel(name, ort, createClassifier, wasmBinary, tmp);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function checkModel(name, ort, createClassifier, wasmBinary, tmp) {
  const spec = JSON.parse(fs.readFileSync(R('build', 'bench', `${name}.json`), 'utf8'));
  const S = spec.input_size;
  const modelBytes = fs.readFileSync(R(spec.csasn));
  const sess = await ort.InferenceSession.create(fs.readFileSync(R(spec.onnx)), { executionProviders: ['wasm'] });
  const ortRun = async (x) => {
    const o = await sess.run({ input: new ort.Tensor('float32', x, [1, 3, S, S]) });
    return {
      probs: Array.from(o.probs.data),
      malignancy: o.malignancy ? o.malignancy.data[0] : null,
      attention: o.attention ? Array.from(o.attention.data) : null,
      mask: o.mask ? Array.from(o.mask.data) : null,
    };
  };
  const compare = (label, ours, ref) => {
    const d = maxAbs(ours.probs, ref.probs);
    check(`${name}: ${label}: probabilities within ${TOL}`, d <= TOL, `max |diff| ${fmt(d)}`);
    const top = (p) => p.indexOf(Math.max(...p));
    check(`${name}: ${label}: same top class`, top(ours.probs) === top(ref.probs),
      `${top(ours.probs)} vs ${top(ref.probs)}`);
    if (ref.malignancy != null) {
      const dm = ours.malignancy == null ? Infinity : Math.abs(ours.malignancy - ref.malignancy);
      check(`${name}: ${label}: malignancy within ${TOL}`, dm <= TOL, `|diff| ${fmt(dm)}`);
    }
    if (ref.attention && ours.attention) {
      const da = maxAbs(ours.attention, ref.attention);
      check(`${name}: ${label}: attention map within ${TOL}`, da <= TOL, `max |diff| ${fmt(da)}`);
    }
    if (ref.mask) {
      const dk = maxAbs(ours.mask, ref.mask);
      check(`${name}: ${label}: lesion mask within ${TOL_MASK}`, dk <= TOL_MASK, `max |diff| ${fmt(dk)}`);
    }
  };
  const clf = await createClassifier(modelBytes, { wasmBinary });
  try {
    // 1. Identical input tensor (the one export_onnx.py saved) through both runtimes.
    const x = new Float32Array(fs.readFileSync(R(spec.ref.input)).buffer.slice(0));
    const ref = await ortRun(x);
    // The comparison is only meaningful if the outputs are not degenerate (uniform
    // probabilities would agree whatever either runtime computed).
    const spread = Math.max(...ref.probs) - Math.min(...ref.probs);
    check(`${name}: probabilities are informative (spread > 0.05)`, spread > 0.05,
      `spread ${spread.toFixed(3)} of ${JSON.stringify(ref.probs.map((p) => +p.toFixed(4)))}`);
    const dt = maxAbs(ref.probs, spec.ref.torch.probs);
    check(`${name}: onnxruntime-web agrees with PyTorch within ${TOL}`, dt <= TOL, `max |diff| ${fmt(dt)}`);
    const a = clf.forwardSync(x);
    compare('wasm forward vs onnxruntime-web', {
      probs: a.probs, malignancy: a.malignancy, attention: a.attention && Array.from(a.attention.data),
      mask: a.mask && Array.from(a.mask.data),
    }, ref);

    // 2. A real image through our whole path (decode, resize, normalise, forward), compared with
    //    onnxruntime-web on the tensor our preprocessing produced.
    const img = fs.readFileSync(R(spec.ref.image));
    const c = clf.classifySync(img);
    const inp = clf.debugTensor('input');
    check(`${name}: debugTensor('input') is [3,${S},${S}]`, inp && inp.data.length === 3 * S * S,
      `shape ${inp && JSON.stringify(inp.shape)}`);
    const refC = await ortRun(inp.data);
    compare('wasm classify vs onnxruntime-web on our preprocessed input', {
      probs: c.probs, malignancy: c.malignancy, attention: c.attention && Array.from(c.attention.data),
      mask: c.mask && Array.from(c.mask.data),
    }, refC);

    // 3. The native CLI on the same image: `csasn preprocess` gives its input tensor.
    const f32 = path.join(tmp, `${name}.f32`);
    run(CLI, ['preprocess', '--model', R(spec.csasn), '--out', f32, R(spec.ref.image)], 'csasn preprocess');
    const xn = new Float32Array(fs.readFileSync(f32).buffer.slice(0));
    const refN = await ortRun(xn);
    const cli = JSON.parse(run(CLI, ['classify', '--model', R(spec.csasn), '--attention', '--mask', R(spec.ref.image)], 'csasn classify').trim().split('\n')[0]);
    compare('native CLI vs onnxruntime-web', {
      probs: cli.probs, malignancy: cli.malignancy, attention: cli.attention && cli.attention.flat(),
      mask: cli.mask && cli.mask.flat(),
    }, refN);

    // 4. The comparison can fail: scale one weight of the subtype head in our file and require
    //    the disagreement to be far outside the tolerance.
    const bad = await corrupted(modelBytes, createClassifier, wasmBinary, x);
    const db = maxAbs(bad.probs, ref.probs);
    check(`${name}: a corrupted head weight is detected (|diff| > 100 x ${TOL})`, db > 100 * TOL,
      `max |diff| ${fmt(db)}`);
  } finally {
    clf.free();
    await sess.release();
  }
}

// The same model with the subtype head's weights multiplied by 3, rewritten (f32) by
// tools/csasn_format.py so this test need not know the file layout.
async function corrupted(modelBytes, createClassifier, wasmBinary, x) {
  const py = `
import sys
sys.path.insert(0, sys.argv[1])
import csasn_format
meta, tensors, _ = csasn_format.read(sys.stdin.buffer.read())
tensors['head_subtype.weight'] = tensors['head_subtype.weight'] * 3
csasn_format.write(sys.argv[2], meta, tensors, 'f32')
`;
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'csasn-bad-')), 'bad.csasn');
  try {
    const p = spawnSync('/usr/bin/python3', ['-c', py, R('tools'), out], { input: modelBytes, encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`writing the corrupted model failed: ${p.stderr}`);
    const c = await createClassifier(fs.readFileSync(out), { wasmBinary });
    try {
      return c.forwardSync(x);
    } finally {
      c.free();
    }
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

T.runMain('onnx parity', main);
