// browserlib.cjs - what the browser suites share: the server `make serve` runs
// (tools/serve.mjs on a free port, logging every request) and headless Chromium.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');
const { ROOT } = require('./testlib.cjs');

// -> { proc, url, log }: log gets one `req METHOD PATH STATUS` line per request served.
// extra: more serve.mjs options (e.g. ['--frame-ancestors', "'self' http://..."]).
function startServer(weightsDir, extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'tools/serve.mjs'), '--port', '0', '--weights', weightsDir, '--log', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = [];
    let buf = '', url = null;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = /serving (http:\/\/\S+)/.exec(line);
        if (m && !url) { url = m[1]; resolve({ proc: p, url, log }); } else if (line.startsWith('req ')) log.push(line);
      }
    });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => { if (!url) reject(new Error(`serve.mjs exited ${code}: ${err}`)); });
    setTimeout(() => { if (!url) reject(new Error('serve.mjs printed no URL in 10 s')); }, 10000);
  });
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

// Debian's chromium in a fresh profile -> { ctx, close() }.
async function launch(viewport = { width: 1360, height: 960 }) {
  const { chromium } = require('playwright-core');
  const udd = fs.mkdtempSync(path.join(os.tmpdir(), 'csasn-chromium-'));
  const ctx = await chromium.launchPersistentContext(udd, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  return {
    ctx,
    close: async () => {
      await ctx.close().catch(() => {});
      fs.rmSync(udd, { recursive: true, force: true });
    },
  };
}

// Displayed percentages vs the CLI's probabilities: equal to the displayed precision means
// |shown - 100 p| <= 0.05 (half a unit of the last digit), plus 1e-3 for the case where
// 100 p sits on a rounding boundary and the wasm value (within 1e-5 of it) rounds the
// other way.
function compareShown(rows, ref) {
  const probs = {};
  ref.labels.forEach((l, i) => { probs[l] = ref.probs[i]; });
  const bad = [];
  for (const r of rows) {
    const shown = parseFloat(r.text);
    if (!(r.label in probs) || !/^\d+\.\d%$/.test(r.text) || Math.abs(shown - 100 * probs[r.label]) > 0.05 + 1e-3) bad.push(`${r.label}: shown ${r.text}, cli ${(100 * probs[r.label]).toFixed(4)}%`);
  }
  if (rows.length !== ref.labels.length) bad.push(`${rows.length} rows for ${ref.labels.length} classes`);
  for (let i = 1; i < rows.length; i++) if (parseFloat(rows[i].text) > parseFloat(rows[i - 1].text)) bad.push('rows not sorted');
  return bad;
}

// The probability rows the widget shows: [{ label, text, raw }] (playwright's selectors reach
// into its open shadow root).
function shownRows(page) {
  return page.$$eval('[data-testid=prob-row]', (els) => els.map((e) => ({ label: e.getAttribute('data-label'), text: e.querySelector('[data-testid=prob-value]').textContent, raw: e.getAttribute('data-prob') })));
}

module.exports = { startServer, get, launch, compareShown, shownRows };
