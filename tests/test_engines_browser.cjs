// test_engines_browser.cjs - the engine choice in Chromium, through the page's own worker
// (client.js): Chromium runs relaxed SIMD by default, so the default ('auto') client must use
// the relaxed engine (two threads: the served page is cross-origin isolated) after its
// self-test, a client asked for simd128 must use that one, and both must give the same
// probabilities within 1e-5 (the bound tests/test_engines.cjs explains) on real images.
'use strict';
const fs = require('fs');
const path = require('path');
const { ROOT, DATA, check, runMain } = require('./testlib.cjs');
const { startServer, launch } = require('./browserlib.cjs');
const { buildAll } = require('./test_wasm_node.cjs');

async function main() {
  buildAll();
  const srv = await startServer(path.join(ROOT, 'weights'));
  const br = await launch();
  try {
    const page = await br.ctx.newPage();
    await page.goto(srv.url + '/');
    const imgs = [path.join(DATA, 'ddti_frames/frames', fs.readdirSync(path.join(DATA, 'ddti_frames/frames')).sort()[0]),
      path.join(DATA, 'busi/images/benign', fs.readdirSync(path.join(DATA, 'busi/images/benign')).sort()[0])]
      .map((p) => Array.from(fs.readFileSync(p)));
    const out = await page.evaluate(async ({ imgs }) => {
      const { createClient } = await import('/wasm/client.js');
      const manifest = await (await fetch('/weights/manifest.json')).json();
      const res = {};
      for (const engine of ['auto', 'simd128']) {
        const c = createClient({ engine, standby: false });
        res[engine] = { models: {} };
        for (const m of manifest.models) {
          const { timing } = await c.load({ url: new URL('/weights/' + m.file, location.href).href, sha256: m.sha256, bytes: m.bytes });
          res[engine].kernels = timing.kernels;
          res[engine].threads = timing.threads;
          res[engine].fallback = timing.engineFallback || null;
          res[engine].models[m.id] = [];
          for (const b of imgs) {
            const r = await c.classify(new Uint8Array(b), { roi: null });
            res[engine].models[m.id].push({ probs: Array.from(r.probs), malignancy: r.malignancy });
          }
        }
        c.free();
      }
      return res;
    }, { imgs });
    check('Chromium: the default client runs the relaxed-SIMD engine', out.auto.kernels === 'wasm-relaxed-simd',
      `${out.auto.kernels} (${out.auto.fallback})`);
    check('Chromium: the isolated page runs it on two threads', out.auto.threads === 2, out.auto.threads);
    check('Chromium: engine=simd128 runs the simd128 engine', out.simd128.kernels === 'wasm-simd128', out.simd128.kernels);
    for (const id of Object.keys(out.auto.models)) {
      let worst = 0;
      out.auto.models[id].forEach((ra, i) => {
        const rb = out.simd128.models[id][i];
        ra.probs.forEach((p, j) => { worst = Math.max(worst, Math.abs(p - rb.probs[j])); });
        if (ra.malignancy !== null) worst = Math.max(worst, Math.abs(ra.malignancy - rb.malignancy));
      });
      check(`Chromium ${id}: relaxed vs simd128 probabilities within 1e-5`, worst <= 1e-5, `max |diff| ${worst}`);
    }
  } finally {
    await br.close();
    srv.proc.kill();
  }
}

runMain('test_engines_browser', main);
