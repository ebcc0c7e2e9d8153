// test_region_page.cjs - the page side of region geometry and descriptor heads: the widget
// (<csasn-classifier>) in headless Chromium against tools/serve.mjs, serving a model with a
// square region rule and four descriptor heads (tests/region_fixtures.py; one label is
// markup, as a hostile model file could have it).
//
// Checks: after a region is drawn on a real DDTI frame, "Features the model reads" lists one
// row per head with the head's top label and its probability as the CLI computes them; the
// labels are shown as text (no element made from them, no script run); data-region is the
// CLI's region (the square the model read) and the overlay draws its dashed outline; the
// probabilities shown equal the CLI's; a model without descriptor heads shows no such box.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { pathToFileURL } = require('url');
const { ROOT, CLI, check, runMain } = require('./testlib.cjs');
const { startServer, launch, compareShown, shownRows } = require('./browserlib.cjs');
const { buildAll } = require('./test_wasm_node.cjs');

const OUT = path.join(ROOT, 'build/test-region-page');

function cliJson(model, img, roi) {
  const r = spawnSync(CLI, ['classify', '--model', model, '--roi', roi.join(','), img], { encoding: 'utf8' });
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

const page = (model) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<script type="module" src="/region-test/embed.js"></script></head>
<body><csasn-classifier manifest="/weights/manifest.json" runtime="/wasm/" model="${model}"></csasn-classifier></body></html>`;

async function main() {
  buildAll();
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'tests/region_fixtures.py'), OUT], { stdio: 'inherit' });
  const fx = JSON.parse(fs.readFileSync(path.join(OUT, 'cases.json'), 'utf8')).desc;
  // The served folder: the descriptor model and a model without heads (a fixture with the
  // stretch rule), listed by tools/manifest.py, the manifest's one writer.
  const site = path.join(OUT, 'site');
  fs.mkdirSync(site, { recursive: true });
  fs.copyFileSync(fx.model, path.join(site, 'desc.csasn'));
  fs.copyFileSync(path.join(OUT, 'pre_0.csasn'), path.join(site, 'plain.csasn'));
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'tools/manifest.py'), site, '--default', 'desc'], { stdio: 'inherit' });

  const { securityHeaders } = await import(pathToFileURL(path.join(ROOT, 'tools/serve.mjs')).href);
  const srv = await startServer(site);
  const browser = await launch({ width: 1280, height: 900 });
  try {
    const ctx = browser.ctx;
    const files = { 'desc.html': page('desc'), 'plain.html': page('plain'), 'embed.js': "window.__events = []; document.addEventListener('csasn-result', (e) => window.__events.push(e.detail.result)); import('/widget.js');" };
    await ctx.route((u) => u.pathname.startsWith('/region-test/'), (route) => {
      const name = new URL(route.request().url()).pathname.slice('/region-test/'.length);
      if (!(name in files)) return route.fulfill({ status: 404, body: 'not found' });
      const type = name.endsWith('.js') ? 'text/javascript' : 'text/html';
      return route.fulfill({ status: 200, headers: { ...securityHeaders(), 'Content-Type': `${type}; charset=utf-8`, 'Cache-Control': 'no-store' }, body: files[name] });
    });
    const problems = [];
    const open = async (name) => {
      const p = await ctx.newPage();
      p.on('console', (m) => { if (m.type() === 'error') problems.push(`${name}: ${m.text()}`); });
      p.on('pageerror', (e) => problems.push(`${name}: ${e}`));
      await p.goto(`${srv.url}region-test/${name}.html`);
      await p.waitForFunction(() => ['ready', 'model-error', 'error'].includes(document.querySelector('csasn-classifier')?.getAttribute('data-state')), null, { timeout: 60000 });
      return p;
    };
    const seq = (p) => p.evaluate(() => Number(document.querySelector('csasn-classifier').getAttribute('data-result-seq') || 0));
    const waitResult = (p, prev) => p.waitForFunction((n) => {
      const e = document.querySelector('csasn-classifier');
      return Number(e.getAttribute('data-result-seq') || 0) > n && e.getAttribute('data-state') !== 'busy';
    }, prev, { timeout: 60000 });
    const withBox = async (p, img, box) => {
      let prev = await seq(p);
      await p.setInputFiles('[data-testid=file-input]', img);
      await waitResult(p, prev);
      prev = await seq(p);
      await p.evaluate((b) => document.querySelector('csasn-classifier').setRoi({ x: b[0], y: b[1], w: b[2], h: b[3] }), box);
      await waitResult(p, prev);
    };

    const dp = await open('desc');
    let rowsOk = 0, textOnly = true, regionOk = true, outlineOk = true, probsOk = true;
    const why = [];
    for (const [img, box] of fx.frames) {
      await withBox(dp, img, box);
      const ref = cliJson(fx.model, img, box);
      const shown = await dp.evaluate(() => {
        const el = document.querySelector('csasn-classifier'), root = el.shadowRoot;
        const rows = [...root.querySelectorAll('[data-testid=feature-row]')].map((r) => ({
          name: r.getAttribute('data-name'), label: r.getAttribute('data-label'),
          value: r.querySelector('[data-testid=feature-value]').textContent,
          valueKids: r.querySelector('[data-testid=feature-value]').children.length,
          pct: r.querySelector('[data-testid=feature-prob]').textContent }));
        // The dashed outline of the region the model read, on the overlay's top edge of it.
        const c = root.querySelector('[data-testid=roi-canvas]'), g = c.getContext('2d');
        const [x, y, w, h] = el.getAttribute('data-region').split(',').map(Number);
        const img = el.getAttribute('data-image-size').split(',').map(Number);
        const sx = c.width / img[0], sy = c.height / img[1];
        // Light gray (every channel > 120, mostly opaque): only the outline is; the dimming
        // outside the box is near black, the attention colours have a dark channel. The
        // stroke is antialiased over about one canvas pixel, so three lines of pixels are
        // read along each edge of the region that lies on the canvas (a square region may
        // reach past the image), and the same lines 6 px further out are the control.
        const light = (d) => { let n = 0; for (let i = 0; i < d.length; i += 4) if (Math.min(d[i], d[i + 1], d[i + 2]) > 120 && d[i + 3] > 150) n++; return n; };
        const X0 = Math.max(0, Math.round(x * sx)), X1 = Math.min(c.width, Math.round((x + w) * sx));
        const Y0 = Math.max(0, Math.round(y * sy)), Y1 = Math.min(c.height, Math.round((y + h) * sy));
        const edges = [[Math.round(y * sy), -6, 'h'], [Math.round((y + h) * sy), 6, 'h'], [Math.round(x * sx), -6, 'v'], [Math.round((x + w) * sx), 6, 'v']];
        let lit = 0, total = 0, control = 0;
        for (const [at, out, dir] of edges) {
          const lim = dir === 'h' ? c.height : c.width;
          if (at < 8 || at > lim - 8) continue;
          const read = (k) => (dir === 'h' ? g.getImageData(X0, k - 1, X1 - X0, 3) : g.getImageData(k - 1, Y0, 3, Y1 - Y0)).data;
          const d = read(at);
          lit += light(d);
          total += d.length / 4;
          control += light(read(at + out));
        }
        const [light_, total_, control_] = [lit, total, control];
        return { rows, region: el.getAttribute('data-region'), box: el.getAttribute('data-roi'), light: light_, total: total_, control: control_,
          imgs: root.querySelectorAll('img').length, pwned: window.__pwned === 1,
          boxHidden: root.querySelector('[data-testid=features-box]').hidden };
      });
      const want = ref && Object.entries(ref.descriptors).map(([name, probs]) => {
        const [label, p] = Object.entries(probs).reduce((a, b) => (b[1] > a[1] ? b : a));
        return { name, label, pct: (p * 100).toFixed(1) + '%' };
      });
      const rowsMatch = want && shown.rows.length === want.length && !shown.boxHidden &&
        want.every((w, i) => shown.rows[i].name === w.name && shown.rows[i].label === w.label && shown.rows[i].value === w.label && shown.rows[i].pct === w.pct);
      if (rowsMatch) rowsOk++; else why.push(`${path.basename(img)}: shown ${JSON.stringify(shown.rows)} vs cli ${JSON.stringify(want)}`);
      textOnly &&= shown.imgs === 0 && !shown.pwned && shown.rows.every((r) => r.valueKids === 0);
      const r = ref && ref.region;
      regionOk &&= !!r && shown.region === `${r.x},${r.y},${r.w},${r.h}` && shown.box === box.join(',') && r.w === r.h;
      const drawn = shown.total > 0 && shown.light / shown.total > 0.2 && shown.control / shown.total < 0.05;
      outlineOk &&= drawn;
      if (!drawn) why.push(`outline: ${shown.light} of ${shown.total} light pixels on the edge, ${shown.control} 6 px above`);
      probsOk &&= !!ref && compareShown(await shownRows(dp), ref).length === 0;
    }
    check(`"Features the model reads": each head's top label and probability as the CLI computes them (${rowsOk}/${fx.frames.length} frames)`,
      rowsOk === fx.frames.length, why.join(' | '));
    const markupShown = await dp.evaluate((l) => [...document.querySelector('csasn-classifier').shadowRoot.querySelectorAll('[data-testid=feature-value]')].some((e) => e.textContent === l), fx.markup_label);
    check('labels from the file are shown as text: no element made from them, no script run', textOnly, JSON.stringify({ textOnly, markupShown }));
    check('data-region is the CLI\'s region: the square the model read around the drawn box', regionOk, 'region differs');
    check('the region the model read is outlined (dashed) on the overlay', outlineOk, why.filter((w) => w.startsWith('outline')).join('; '));
    check('the class probabilities shown equal the CLI\'s', probsOk, '');

    const pp = await open('plain');
    const [img, box] = fx.frames[0];
    await withBox(pp, img, box);
    const plain = await pp.evaluate(() => {
      const el = document.querySelector('csasn-classifier'), root = el.shadowRoot;
      return { rows: root.querySelectorAll('[data-testid=feature-row]').length, hidden: root.querySelector('[data-testid=features-box]').hidden,
        region: el.getAttribute('data-region'), box: el.getAttribute('data-roi') };
    });
    check('a model without descriptor heads shows no features box; its region (stretch, no margin) is the drawn box',
      plain.rows === 0 && plain.hidden && plain.region === plain.box, JSON.stringify(plain));
    check('no console errors or page errors (CSP violations included)', problems.length === 0, problems.join(' | '));
  } finally {
    await browser.close();
    srv.proc.kill('SIGTERM');
  }
}

runMain('test_region_page', main);
