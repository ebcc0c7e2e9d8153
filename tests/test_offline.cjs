// test_offline.cjs - offline use (web/sw.js, web/boot.js) in Chromium: the first visit puts the
// service worker in control and fills its store with the page's own downloads (no request of
// its own after the page has loaded); then the browser context goes offline, the page reloads
// and classifies an image with the network unplugged: the result equals the CLI's (1e-5,
// wasm vs native) and no request reaches the server. A model stored under another version
// (?v=) replaces the old copy; the web app manifest is served and linked.
'use strict';
const path = require('path');
const { execFileSync } = require('child_process');
const { ROOT, DATA, CLI, check, runMain } = require('./testlib.cjs');
const { startServer, launch, get } = require('./browserlib.cjs');
const { buildAll } = require('./test_wasm_node.cjs');

async function main() {
  buildAll();
  const img = path.join(DATA, 'ddti/images/benign/2_1.png');
  const srv = await startServer(path.join(ROOT, 'weights'));
  const browser = await launch();
  try {
    const man = await get(new URL('manifest.webmanifest', srv.url));
    const mj = JSON.parse(man.body.toString());
    check('web app manifest served', man.status === 200 && /manifest\+json/.test(man.headers['content-type']) && mj.start_url && mj.icons.length >= 1 && mj.display === 'standalone');
    const page = browser.ctx.pages()[0] || await browser.ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(srv.url);
    const ready = () => page.waitForFunction(() => document.querySelector('csasn-classifier')?.getAttribute('data-state') === 'ready', null, { timeout: 90000 });
    await ready();
    check('first visit: the service worker controls the page', await page.evaluate(() => !!navigator.serviceWorker.controller));
    check('page links the manifest', await page.evaluate(() => !!document.querySelector('link[rel=manifest]')));
    await page.waitForTimeout(1000); // the store is written as answers pass
    const nAfterLoad = srv.log.length;
    const classify = async () => {
      const seq = Number((await page.locator('csasn-classifier').getAttribute('data-result-seq')) || 0);
      await page.setInputFiles('[data-testid=file-input]', img);
      await page.waitForFunction((p) => Number(document.querySelector('csasn-classifier').getAttribute('data-result-seq') || 0) > p, seq, { timeout: 60000 });
      return page.evaluate(() => window.csasnBench.lastResult);
    };
    const r1 = await classify();
    check('online: classifies, and the store adds no request after load', r1 && srv.log.length === nAfterLoad, srv.log.slice(nAfterLoad).join(' | '));
    const stored = await page.evaluate(async () => (await (await caches.open('csasn-offline-v1')).keys()).map((k) => new URL(k.url).pathname + new URL(k.url).search));
    check('store holds the page, the runtime and the verified model', ['/', '/wasm/csasn.wasm', '/wasm/worker.js', '/weights/manifest.json'].every((p) => stored.includes(p)) && stored.some((p) => /^\/weights\/thyroid-ddti\.csasn\?v=/.test(p)), stored.join(' '));

    // Offline.
    await browser.ctx.setOffline(true);
    const nOffline = srv.log.length;
    await page.reload();
    await ready();
    const nLoadedOffline = srv.log.length;
    const r2 = await classify();
    check('offline: nothing at all requested after the page loaded', srv.log.length === nLoadedOffline, srv.log.slice(nLoadedOffline).join(' | '));
    const ref = JSON.parse(execFileSync(CLI, ['classify', '--model', path.join(ROOT, 'weights/thyroid-ddti.csasn'), img], { encoding: 'utf8' }));
    const worst = r2 ? Math.max(...r2.probs.map((p, k) => Math.abs(p - ref.probs[k]))) : 1;
    check('offline: reload and classify work, equal to the CLI (1e-5)', worst < 1e-5, `worst ${worst}`);
    // Including the browser's own update check of /sw.js at a navigation: tools/serve.mjs lets
    // the HTTP cache keep sw.js for an hour and boot.js registers it with updateViaCache 'all'.
    const offlineReqs = srv.log.slice(nOffline);
    check('offline: no request reached the server (page, runtime, model, image, sw.js)', offlineReqs.length === 0, offlineReqs.join(' | '));
    await browser.ctx.setOffline(false);

    // A model stored under a new version replaces the old copy (its SHA-256 still matches the
    // manifest's, so it is stored).
    const after = await page.evaluate(async () => {
      const r = await fetch('weights/thyroid-ddti.csasn?v=0123456789abcdef');
      await r.arrayBuffer();
      await new Promise((res) => setTimeout(res, 1500));
      return (await (await caches.open('csasn-offline-v1')).keys()).map((k) => new URL(k.url)).filter((u) => u.pathname === '/weights/thyroid-ddti.csasn').map((u) => u.search);
    });
    check('model update: the new version replaces the cached copy', after.length === 1 && after[0] === '?v=0123456789abcdef', JSON.stringify(after));
    check('no page errors', errors.length === 0, errors.join('; '));
  } finally {
    await browser.close();
    srv.proc.kill();
  }
}

runMain('test_offline', main);
