// test_adapt_browser.cjs - on-device adaptation in headless Chromium through the page's
// client and worker (shell/client.js adapt(), protocol.js ADAPT): a small hospital set of
// BUSI images (3 classes, malignant = malignant) adapts the shipped thyroid model in the
// worker with progress; one run is cancelled (the worker is replaced), another finishes; the
// file it returns loads back into the client (its SHA-256 checked like any model), shows the
// user's labels and classifies a held-out image as the native CLI does with the same file;
// no request is made while adapting (browser and server), and afterwards only the runtime's own
// scripts for the client's new standby worker.
'use strict';
const fs = require('fs');
const path = require('path');
const { ROOT, DATA, check, runMain } = require('./testlib.cjs');
const { startServer, launch } = require('./browserlib.cjs');
const { buildAll, cli } = require('./test_wasm_node.cjs');

const WEIGHTS = path.join(ROOT, 'weights');
const OUT = path.join(ROOT, 'build/test-adapt-browser');
const BUSI = path.join(DATA, 'busi/images');

function pick(cls, n, offset) {
  const fs_ = fs.readdirSync(path.join(BUSI, cls)).filter((f) => f.endsWith('.png')).sort();
  return fs_.filter((_, i) => i % 7 === offset).slice(0, n).map((f) => path.join(BUSI, cls, f));
}

async function main() {
  buildAll();
  fs.mkdirSync(OUT, { recursive: true });
  const { securityHeaders } = await import(require('url').pathToFileURL(path.join(ROOT, 'tools/serve.mjs')).href);
  const classes = ['benign', 'malignant', 'normal'];
  const sets = classes.map((c) => pick(c, 4, 0));
  const heldOut = pick('malignant', 1, 3)[0];
  const srv = await startServer(WEIGHTS);
  const browser = await launch();
  try {
    const ctx = browser.ctx;
    await ctx.route((u) => u.pathname === '/adapt-test/blank.html', (route) => route.fulfill({
      status: 200, headers: { ...securityHeaders(), 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' },
      body: '<!doctype html><title>adapt</title>' }));
    const page = await ctx.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(`${srv.url}adapt-test/blank.html`);
    await page.evaluate(async () => {
      const { createClient } = await import('/wasm/client.js');
      const { loadManifest, pickModel } = await import('/wasm/manifest.js');
      const entry = pickModel(await loadManifest('/weights/manifest.json'), 'thyroid-ddti');
      window.__client = createClient();
      await window.__client.load(entry);
    });
    await page.waitForTimeout(300); // the standby worker's scripts have arrived
    const requests = [], logBefore = srv.log.length;
    page.on('request', (r) => requests.push(r.url()));
    const b64 = (f) => fs.readFileSync(f).toString('base64');
    const images = sets.flatMap((s, c) => s.map((f) => ({ cls: c, b64: b64(f) })));
    const run = await page.evaluate(async ([classes, images]) => {
      const bytes = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
      const c = window.__client;
      const spec = { classes, malignant: ['malignant'], images: images.map((im) => ({ cls: im.cls, bytes: bytes(im.b64) })),
                     views: 1, epochs: 3, folds: 2, seed: 3, name: 'browser <adapted>', date: '2026-12-02' };
      // 1. cancelled at its first progress message
      let firstSeen = null;
      const first = c.adapt(spec, { onProgress: (m) => { if (!firstSeen) { firstSeen = m; c.cancel(); } } })
        .then(() => 'finished', (e) => e.code);
      const cancelled = await first;
      // 2. to the end, with a corrupt image mixed in
      spec.images.push({ cls: 0, bytes: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]) });
      const prog = [];
      const t0 = performance.now();
      const r = await c.adapt(spec, { onProgress: (m) => prog.push(m) });
      const ms = performance.now() - t0;
      window.__adapted = r.bytes;
      const feat = prog.filter((m) => m.phase === 'features'), train = prog.filter((m) => m.phase === 'training');
      return { cancelled, firstSeen, report: r.report, skipped: r.skipped, ms, nFeat: feat.length, lastFeat: feat[feat.length - 1],
               trainMonotone: train.every((m, i) => i === 0 || m.progress >= train[i - 1].progress), lastTrain: train[train.length - 1] };
    }, [classes, images]);
    const duringAdapt = requests.length + srv.log.length - logBefore;
    const back = await page.evaluate(async (heldB64) => {
      const bytes = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
      const c = window.__client, r = { bytes: window.__adapted };
      // 3. the file back into the client, verified by its SHA-256 like any model
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', r.bytes));
      const sha256 = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
      const loaded = await c.load({ data: r.bytes.slice(), sha256 });
      const res = await c.classify(bytes(heldB64));
      let b = '';
      for (let i = 0; i < r.bytes.length; i += 0x8000) b += String.fromCharCode(...r.bytes.subarray(i, i + 0x8000));
      return { file: btoa(b), labels: loaded.info.labels, probs: res.probs, malignancy: res.malignancy, pending: c.pending };
    }, b64(heldOut));
    Object.assign(run, back);
    console.log(`# browser adaptation of ${images.length} images (1 view, 3 epochs, 2 folds): ${Math.round(run.ms)} ms`);
    check('a cancelled adaptation rejects as cancelled (its worker replaced)', run.cancelled === 'cancelled' && run.firstSeen && run.firstSeen.phase === 'features',
      JSON.stringify(run.firstSeen));
    check('progress: every image of the feature pass, then training monotone to 1',
      run.nFeat === images.length + 1 && run.lastFeat.done === images.length + 1 && run.trainMonotone && run.lastTrain.progress === 1,
      JSON.stringify({ nFeat: run.nFeat, lastFeat: run.lastFeat, lastTrain: run.lastTrain }));
    check('a corrupt image is reported as skipped, the others counted',
      run.skipped.length === 1 && run.skipped[0].index === images.length && run.report.images === images.length, JSON.stringify(run.skipped));
    check('the report has the figures and the confusion matrix', typeof run.report.macro_f1 === 'number' && run.report.confusion.length === 3,
      JSON.stringify(run.report).slice(0, 300));
    const file = path.join(OUT, 'browser-adapted.csasn');
    fs.writeFileSync(file, Buffer.from(run.file, 'base64'));
    check('the adapted file loads back into the client with the user\'s labels', JSON.stringify(run.labels) === JSON.stringify(classes), JSON.stringify(run.labels));
    const ref = cli(file, heldOut, null);
    const ok = ref.status === 0 && ref.json && JSON.stringify(ref.json.labels) === JSON.stringify(classes);
    const d = ok ? Math.max(...run.probs.map((p, i) => Math.abs(p - ref.json.probs[i])), Math.abs(run.malignancy - ref.json.malignancy)) : Infinity;
    // 1e-5: the wasm engine against the native CLI (tests/test_wasm_node.cjs explains it)
    check(`the page and the CLI classify a held-out image the same with that file (max diff ${d.toExponential(1)})`, ok && d <= 1e-5, ref.stderr);
    await page.waitForTimeout(200);
    const late = srv.log.slice(logBefore);
    check('no request while adapting (browser and server)', duringAdapt === 0, [...requests, ...late].join(', '));
    // Loading a model renews the client's standby worker, which fetches the runtime's own
    // scripts (client.js): those GETs and nothing else, nothing sent.
    const own = (u) => /\/wasm\/[a-z-]+\.(js|mjs|wasm)$/.test(new URL(u, srv.url).pathname);
    check('afterwards only the runtime\'s own scripts are fetched (a new standby worker)',
      requests.every(own) && late.every((l) => /^req GET \/wasm\/[a-z-]+\.(js|mjs|wasm) 200$/.test(l)), [...requests, ...late].join(', '));
    check('nothing pending, no page errors', run.pending === 0 && problems.length === 0, problems.join(' | '));
  } finally {
    await browser.close();
    srv.proc.kill();
  }
}

runMain('test_adapt_browser', main);
