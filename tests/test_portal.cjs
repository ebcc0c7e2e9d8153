// test_portal.cjs - the portal message protocol of web/embed.html (web/embed.js) in Chromium,
// with three loopback origins: the app (tools/serve.mjs, its --frame-ancestors naming the
// portal), a portal page on a second origin that embeds the app and drives it with postMessage,
// and a hostile page on a third origin. The portal gets ready, a result equal to the CLI's
// (to 1e-5, the wasm/native bar of tests/test_wasm_node.cjs) and the report (JSON and FHIR,
// validated, equal to `csasn report` to 1e-6); the hostile page, framed next to the app inside
// the portal, posts an image and a report request: nothing happens and it receives nothing;
// embedding the app itself, it receives nothing either (frame-ancestors refuses it).
'use strict';
const fs = require('fs');
const path = require('path');
const http = require('http');
const { execFileSync } = require('child_process');
const { ROOT, DATA, CLI, check, runMain } = require('./testlib.cjs');
const { startServer, launch } = require('./browserlib.cjs');
const { buildAll } = require('./test_wasm_node.cjs');
const { validateBundle } = require('./fhir_r4.cjs');
const { validateReport, cliReport } = require('./reportlib.cjs');

// A plain server for the portal or the hostile page: path -> [type, body].
function pageServer(files) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const f = files[new URL(req.url, 'http://x').pathname];
      if (!f) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': f[0], 'Cache-Control': 'no-store' });
      res.end(f[1]);
    });
    s.listen(0, '127.0.0.1', () => resolve({ server: s, origin: `http://127.0.0.1:${s.address().port}` }));
  });
}

async function main() {
  buildAll();
  const img = path.join(DATA, 'ddti/images/malignant/65_1.png');
  const roi = { x: 30, y: 25, w: 220, h: 230 };
  const files = {};
  const portal = await pageServer(files);
  const hostileFiles = {};
  const hostile = await pageServer(hostileFiles);
  const app = await startServer(path.join(ROOT, 'weights'), ['--frame-ancestors', `'self' ${portal.origin}`]);
  const appOrigin = new URL(app.url).origin;

  files['/portal.html'] = ['text/html', `<!doctype html><html lang="en"><title>portal</title>
<iframe id="app" title="classifier" src="${appOrigin}/embed.html" width="900" height="700"></iframe>
<iframe id="hostile" title="other" src="${hostile.origin}/hostile.html" width="200" height="100"></iframe>
<script src="/portal.js"></script></html>`];
  files['/portal.js'] = ['text/javascript', `
const APP = ${JSON.stringify(appOrigin)};
window.log = [];
window.addEventListener('message', (e) => { if (e.origin === APP) window.log.push(e.data); });
window.send = (msg, transfer) => document.getElementById('app').contentWindow.postMessage({ protocol: 'csasn-portal', version: 1, ...msg }, APP, transfer || []);
window.openImage = async (roi) => {
  const b = await (await fetch('/scan.png')).arrayBuffer();
  window.send({ type: 'open', id: 1, bytes: b, name: '65_1.png', roi, nodule: 'right lobe, nodule 1', view: 'transverse' }, [b]);
};`];
  files['/scan.png'] = ['image/png', fs.readFileSync(img)];
  hostileFiles['/hostile.html'] = ['text/html', `<!doctype html><html lang="en"><title>x</title><script src="/hostile.js"></script>
<iframe id="own" title="own" src="${appOrigin}/embed.html"></iframe></html>`];
  hostileFiles['/hostile.js'] = ['text/javascript', `
window.got = [];
window.addEventListener('message', (e) => window.got.push({ origin: e.origin, data: e.data }));
window.attack = async () => {
  const b = await (await fetch('/scan.png')).arrayBuffer();
  const target = parent.frames[0];
  target.postMessage({ protocol: 'csasn-portal', version: 1, type: 'open', id: 66, bytes: b, name: 'stolen.png' }, '*', [b]);
  target.postMessage({ protocol: 'csasn-portal', version: 1, type: 'report', id: 67, format: 'json' }, '*');
  target.postMessage({ protocol: 'csasn-portal', version: 1, type: 'select-model', id: 68, model: 'breast-busi' }, '*');
};`];
  hostileFiles['/scan.png'] = ['image/png', fs.readFileSync(img)];

  const browser = await launch();
  try {
    const page = browser.ctx.pages()[0] || await browser.ctx.newPage();
    await page.goto(`${portal.origin}/portal.html`);
    await page.waitForFunction(() => window.log.some((m) => m.type === 'ready'), null, { timeout: 90000 });
    const ready = await page.evaluate(() => window.log.find((m) => m.type === 'ready'));
    check('portal: ready from the allowed origin, protocol v1', ready.protocol === 'csasn-portal' && ready.version === 1 && ready.model && ready.model.name === 'csasn-thyroid-ddti', JSON.stringify(ready).slice(0, 200));

    const appFrame = page.frames().find((f) => f.url().startsWith(appOrigin));
    const hostileFrame = page.frames().find((f) => f.url().startsWith(hostile.origin + '/hostile'));
    const meta = await appFrame.evaluate(() => document.querySelector('meta[name=csasn-portal-origins]').content);
    check('embed.html: allow-list is the server\'s frame-ancestors', meta === `'self' ${portal.origin}`, meta);

    // The hostile frame talks first: nothing may happen.
    await hostileFrame.evaluate(() => window.attack());
    await page.waitForTimeout(3000);
    const appState = await appFrame.evaluate(() => ({ size: document.querySelector('csasn-classifier').getAttribute('data-image-size'), model: document.querySelector('csasn-classifier').getAttribute('data-model') }));
    check('hostile origin: its image is not opened, its model switch not made', appState.size === null && appState.model === 'thyroid-ddti', JSON.stringify(appState));
    const got = await hostileFrame.evaluate(() => window.got);
    check('hostile origin: receives nothing (no ready, no result, no report, no error)', got.length === 0, JSON.stringify(got).slice(0, 200));
    check('portal: hears nothing about the hostile requests', await page.evaluate(() => window.log.every((m) => m.type === 'ready')));

    // The portal opens the image with a region of interest.
    await page.evaluate((r) => window.openImage(r), roi);
    await page.waitForFunction(() => window.log.some((m) => m.id === 1), null, { timeout: 60000 });
    const res = await page.evaluate(() => window.log.find((m) => m.id === 1));
    const ref = JSON.parse(execFileSync(CLI, ['classify', '--model', path.join(ROOT, 'weights/thyroid-ddti.csasn'), '--roi', `${roi.x},${roi.y},${roi.w},${roi.h}`, img], { encoding: 'utf8' }));
    const worst = res.result ? Math.max(...res.result.probs.map((p, k) => Math.abs(p - ref.probs[k])), Math.abs(res.result.malignancy - ref.malignancy)) : 1;
    check('portal: result delivered, equal to the CLI (1e-5)', res.type === 'result' && worst < 1e-5 && JSON.stringify(res.result.roi) === JSON.stringify(roi), `${res.type} worst ${worst}`);

    // The report of what the portal opened, JSON and FHIR.
    await page.evaluate(() => { window.send({ type: 'report', id: 2, format: 'json', date: '2026-12-02T10:00:00Z' }); window.send({ type: 'report', id: 3, format: 'fhir', date: '2026-12-02T10:00:00Z' }); });
    await page.waitForFunction(() => window.log.some((m) => m.id === 3), null, { timeout: 30000 });
    const [rj, rf] = await page.evaluate(() => [window.log.find((m) => m.id === 2), window.log.find((m) => m.id === 3)]);
    const doc = JSON.parse(rj.text), fhir = JSON.parse(rf.text);
    const se = validateReport(doc), fe = validateBundle(fhir);
    check('portal: report JSON valid (csasn-report v1)', rj.type === 'report' && se.length === 0, se.join('; '));
    check('portal: report FHIR valid (R4 rules)', rf.type === 'report' && rf.format === 'fhir' && fe.length === 0, fe.slice(0, 3).join('; '));
    const cj = JSON.parse(cliReport(['--model', path.join(ROOT, 'weights/thyroid-ddti.csasn'), '--date', '2026-12-02T10:00:00Z', '--nodule', 'right lobe, nodule 1', '--view', 'transverse', '--roi', `${roi.x},${roi.y},${roi.w},${roi.h}`, img]));
    check('portal: report equals csasn report (1e-6)', doc.nodules.length === 1 && doc.nodules[0].label === cj.nodules[0].label &&
      Math.abs(doc.nodules[0].malignancy - cj.nodules[0].malignancy) <= 1.0000001e-6 && doc.model.sha256 === cj.model.sha256);

    // A bad message from the allowed origin gets an error reply, not silence.
    await page.evaluate(() => window.send({ type: 'open', id: 4, bytes: 'not bytes' }));
    await page.waitForFunction(() => window.log.some((m) => m.id === 4), null, { timeout: 30000 });
    const e4 = await page.evaluate(() => window.log.find((m) => m.id === 4));
    check('portal: a malformed request gets an error reply', e4.type === 'error' && /ArrayBuffer/.test(e4.message), JSON.stringify(e4));
    await page.evaluate(() => window.send({ type: 'open', id: 5, version: 2, bytes: new ArrayBuffer(4) }));
    await page.waitForFunction(() => window.log.some((m) => m.id === 5), null, { timeout: 30000 });
    check('portal: another protocol version is refused by name', /version 2/.test((await page.evaluate(() => window.log.find((m) => m.id === 5))).message || ''));

    // Another model, chosen by the portal: done, then ready names it; the report starts afresh.
    await page.evaluate(() => window.send({ type: 'select-model', id: 6, model: 'breast-busi' }));
    await page.waitForFunction(() => window.log.some((m) => m.id === 6), null, { timeout: 90000 });
    const d6 = await page.evaluate(() => window.log.find((m) => m.id === 6));
    await page.waitForFunction(() => window.log.filter((m) => m.type === 'ready').length >= 2, null, { timeout: 30000 });
    const r2 = await page.evaluate(() => window.log.filter((m) => m.type === 'ready')[1]);
    check('portal: select-model switches the model (done, then ready)', d6.type === 'done' && r2.model && r2.model.name !== 'csasn-thyroid-ddti', JSON.stringify(d6));
    await page.evaluate(() => window.send({ type: 'report', id: 7, format: 'json' }));
    await page.waitForFunction(() => window.log.some((m) => m.id === 7), null, { timeout: 30000 });
    const e7 = await page.evaluate(() => window.log.find((m) => m.id === 7));
    check('portal: after a model switch the report has no images of the old model', e7.type === 'error' && /no image/.test(e7.message), JSON.stringify(e7));

    // The hostile origin embedding the app itself: frame-ancestors refuses, nothing arrives.
    const got2 = await hostileFrame.evaluate(() => window.got);
    check('hostile origin embedding the app: refused by frame-ancestors, receives nothing', got2.length === 0, JSON.stringify(got2).slice(0, 200));
  } finally {
    await browser.close();
    app.proc.kill();
    portal.server.close();
    hostile.server.close();
  }
}

runMain('test_portal', main);
