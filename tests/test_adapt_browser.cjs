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

    // The page's "Adapt to your data" view (web/adapt.js): a folder pick of class folders
    // (one class named with HTML), cancel one run, finish another, read the report, save the
    // file, use it on an image.
    const html = '<img src=x onerror=alert(1)>';
    const hosp = path.join(OUT, 'hospital');
    fs.rmSync(hosp, { recursive: true, force: true });
    const folders = { benign: sets[0], malignant: sets[1], [html]: sets[2] };
    for (const [c, list] of Object.entries(folders)) {
      fs.mkdirSync(path.join(hosp, c), { recursive: true });
      for (const f of list) fs.copyFileSync(f, path.join(hosp, c, path.basename(f)));
    }
    const pg = await ctx.newPage();
    const pErr = [];
    pg.on('pageerror', (e) => pErr.push(String(e)));
    pg.on('dialog', (d) => { pErr.push(`dialog: ${d.message()}`); d.dismiss(); });
    await pg.goto(srv.url);
    await pg.waitForFunction(() => document.querySelector('[data-testid="adapt-base"]').options.length > 0);
    await pg.locator('[data-testid="adapt-folder"]').setInputFiles(hosp);
    const names = await pg.$$eval('[data-testid="adapt-count-class"]', (xs) => xs.map((x) => x.textContent));
    check('page: the folder pick lists the classes, an HTML name as text', JSON.stringify(names) === JSON.stringify([html, 'benign', 'malignant'].sort())
      && await pg.$$eval('[data-testid="adapt"] img', (xs) => xs.length) === 0, JSON.stringify(names));
    const pReq = [], pLog = srv.log.length;
    pg.on('request', (r) => pReq.push({ url: r.url(), method: r.method(), body: r.postData() }));
    const st = pg.locator('[data-testid="adapt-status"]');
    await pg.click('[data-testid="adapt-start"]');
    await pg.waitForFunction(() => /Feature pass/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 120000 });
    await pg.click('[data-testid="adapt-cancel"]');
    await pg.waitForFunction(() => /Cancelled/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 60000 });
    check('page: cancel stops a run', /Cancelled/.test(await st.textContent()), await st.textContent());
    await pg.click('[data-testid="adapt-start"]');
    const etaSeen = pg.waitForFunction(() => /left/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 120000 }).then(() => true, () => false);
    await pg.waitForFunction(() => /^Done|failed/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 600000 });
    const status = await st.textContent();
    const rows = await pg.$$eval('[data-testid="adapt-report-table"] tr', (xs) => xs.map((x) => [...x.children].map((c) => c.textContent)));
    const cm = await pg.$$eval('[data-testid="adapt-confusion"] tr', (xs) => xs.length);
    check('page: the run finishes with progress and an ETA shown', /^Done/.test(status) && await etaSeen, status);
    check('page: report table (a row per class) and confusion matrix', rows.length === 4 && cm === 4 && rows.some((r) => r[0] === html), JSON.stringify(rows));
    const dl = pg.waitForEvent('download');
    await pg.click('[data-testid="adapt-save"]');
    const saved = path.join(OUT, 'page-adapted.csasn');
    await (await dl).saveAs(saved);
    const inf = require('child_process').spawnSync(require('./testlib.cjs').CLI, ['info', '--model', saved], { encoding: 'utf8' });
    let labels = null;
    try { labels = JSON.parse(inf.stdout)['csasn.labels']; } catch { /* reported below */ }
    check('page: the saved file loads in the CLI with the classes as text', JSON.stringify(labels) === JSON.stringify([html, 'benign', 'malignant'].sort()), inf.stderr);
    await pg.click('[data-testid="adapt-use"]');
    await pg.waitForFunction(() => !document.querySelector('[data-testid="adapt-try"]').hidden);
    await pg.locator('[data-testid="adapt-try-image"]').setInputFiles(heldOut);
    await pg.waitForFunction(() => document.querySelectorAll('[data-testid="adapt-try-prob"]').length === 3, null, { timeout: 60000 });
    const shown = await pg.$$eval('[data-testid="adapt-try-prob"]', (xs) => xs.map((x) => parseFloat(x.textContent)));
    const refP = cli(saved, heldOut, null).json;
    check('page: "use this model" classifies an image as the CLI does with the saved file (displayed to 0.1 %)',
      refP && shown.every((v, i) => Math.abs(v - 100 * refP.probs[i]) <= 0.05 + 1e-3), `${shown} vs ${refP && refP.probs}`);
    // a local .csasn file: refused when corrupt, shown as local when valid
    const junk = path.join(OUT, 'junk.csasn');
    fs.writeFileSync(junk, Buffer.from('CSAN not really a model'));
    await pg.locator('[data-testid="adapt-open"]').setInputFiles(junk);
    await pg.waitForFunction(() => /refused/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 60000 });
    check('page: a corrupt local model file is refused by the loader with its reason', /refused: .+/.test(await st.textContent()), await st.textContent());
    await pg.locator('[data-testid="adapt-open"]').setInputFiles(saved);
    await pg.waitForFunction(() => /^Opened/.test(document.querySelector('[data-testid="adapt-status"]').textContent), null, { timeout: 60000 });
    const shownModel = await pg.textContent('[data-testid="adapt-try-model"]');
    check('page: a valid local model file opens, marked as not from this site\'s manifest', /local file, not from this site's manifest/.test(shownModel), shownModel);
    // the view's own client fetches the chosen base model (the site's file) and its worker's
    // scripts: GETs of this site's runtime and model files only, nothing sent
    const okReq = pReq.every((r) => r.method === 'GET' && !r.body && /\/(wasm\/[a-z.-]+\.(js|mjs|wasm)|weights\/[a-z-]+\.csasn(\?v=[0-9a-f]+)?)$/.test(new URL(r.url).pathname + new URL(r.url).search));
    check('page: while adapting only GETs of the site\'s own runtime and model files, nothing sent', okReq && pReq.length > 0,
      pReq.map((r) => `${r.method} ${r.url}`).join(', '));
    check('page: no page errors, no script from a class name ran', pErr.length === 0, pErr.join(' | '));
  } finally {
    await browser.close();
    srv.proc.kill();
  }
}

runMain('test_adapt_browser', main);
