// test_dicom_browser.cjs - a multi-frame DICOM file in the page (headless Chromium against
// tools/serve.mjs, shipped models): dropped on the widget, it shows modality, manufacturer,
// frame count and size only; the file's tissue region is drawn as the initial region; the mm
// size and the probabilities are the CLI's for each frame; the frame slider works from the
// keyboard and re-classifies; no request leaves the page after load; the fake patient's name,
// ID and birth date the file carries appear nowhere in the DOM (light and shadow trees,
// attributes included); a hostile DICOM file gets the engine's error.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { ROOT, CLI, check, runMain } = require('./testlib.cjs');
const { startServer, launch } = require('./browserlib.cjs');

const WEIGHTS = path.join(ROOT, 'weights');

function cli(args) {
  const r = spawnSync(CLI, args, { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// Everything the page holds as text: both trees, every attribute, every form value.
function domText() {
  const out = [];
  const walk = (root) => {
    for (const e of root.querySelectorAll('*')) {
      for (const a of e.attributes) out.push(a.value);
      if (e.value !== undefined) out.push(String(e.value));
      if (e.shadowRoot) { out.push(e.shadowRoot.textContent || ''); walk(e.shadowRoot); }
    }
  };
  out.push(document.documentElement.outerHTML, document.title);
  walk(document);
  return out.join('\n');
}

async function main() {
  const mk = spawnSync('make', ['-s', 'all', 'wasm'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_PATH: '/usr/share/nodejs' } });
  if (!check('make all wasm', mk.status === 0, mk.stderr)) return;
  const gen = spawnSync('/usr/bin/python3', [path.join(ROOT, 'tests/dicomgen.py')], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (!check('tests/dicomgen.py builds the DICOM files', gen.status === 0, gen.stderr)) return;
  const { hostile, fake } = JSON.parse(gen.stdout);
  const file = path.join(ROOT, 'build/dicom/mono2_8_mf.dcm');   // 3 frames, a tissue region, calibrated
  const srv = await startServer(WEIGHTS);
  const browser = await launch({ width: 1280, height: 900 });
  try {
    const p = await browser.ctx.newPage();
    const problems = [];
    p.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    p.on('pageerror', (e) => problems.push(String(e)));
    await p.goto(srv.url);
    const host = 'csasn-classifier';
    await p.waitForFunction((h) => document.querySelector(h)?.getAttribute('data-state') === 'ready', host, { timeout: 90000 });
    // the breast model (a mask head: the lesion size in mm)
    const seq = () => p.evaluate((h) => Number(document.querySelector(h).getAttribute('data-result-seq') || 0), host);
    const waitResult = (prev) => p.waitForFunction(([h, n]) => {
      const e = document.querySelector(h);
      return Number(e.getAttribute('data-result-seq') || 0) > n && e.getAttribute('data-state') !== 'busy';
    }, [host, prev], { timeout: 90000 });
    await p.evaluate((h) => { document.querySelector(h).model = 'breast-busi'; }, host);
    await p.waitForFunction((h) => document.querySelector(h)?.getAttribute('data-state') === 'ready' &&
      document.querySelector(h).info?.labels.includes('malignant'), host, { timeout: 90000 });
    const requests = [];
    p.on('request', (r) => requests.push(r.url()));
    const logBefore = srv.log.length;

    // drop the file on the widget (a real DataTransfer with a File in it)
    const bytes = fs.readFileSync(file).toString('base64');
    let prev = await seq();
    await p.evaluate(([h, b64]) => {
      const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bin], 'cine.dcm', { type: 'application/dicom' }));
      const zone = document.querySelector(h).shadowRoot.querySelector('[data-testid=dropzone]');
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [host, bytes]);
    await waitResult(prev);
    const read = () => p.evaluate((h) => {
      const e = document.querySelector(h), s = e.shadowRoot, q = (t) => s.querySelector(`[data-testid=${t}]`);
      return { info: q('dicom-info').textContent, infoHidden: q('dicom-info').hidden, size: q('size-mm').textContent,
        frameText: q('frame-text').textContent, sliderMax: q('frame-slider').max, sliderHidden: q('frame-slider').parentElement.hidden,
        probs: e.result.probs, frame: e.result.frame, roi: e.result.roi_mm, lesion: e.result.lesion_mm, warnings: q('warnings').hidden,
        box: e.result.roi, source: e.result.roi_source, error: q('error').hidden ? null : q('error').textContent };
    }, host);
    const MODEL = path.join(WEIGHTS, 'breast-busi.csasn');
    const rows = cli(['classify', '--model', MODEL, '--frame', '1', file]);
    let s = await read();
    check('dropped DICOM: classified, no error', s.error === null && s.frame === 1, s.error);
    check(`shows modality, manufacturer, frame count and size only: "${s.info}"`,
      !s.infoHidden && s.info === 'US · ACME Ultrasound · 3 frames · 560 × 360 px', s.info);
    check('a keyboard-operable frame slider for the 3 frames', !s.sliderHidden && s.sliderMax === '3' && s.frameText === '1 of 3', JSON.stringify(s));
    check('the tissue region is the initial region', s.source === 'tissue' &&
      JSON.stringify([s.box.x, s.box.y, s.box.w, s.box.h]) === JSON.stringify(rows[0].roi), JSON.stringify(s.box));
    const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
    const want = `Region ${fmt(rows[0].roi_mm[0])} × ${fmt(rows[0].roi_mm[1])} mm`;
    check(`the mm size is shown: "${s.size}"`, s.size.startsWith(want) && (rows[0].lesion_mm === null || s.size.includes(`lesion ${fmt(rows[0].lesion_mm[0])} × ${fmt(rows[0].lesion_mm[1])} mm`)), `${s.size} vs ${want} ${rows[0].lesion_mm}`);
    const dp = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    check('frame 1: the CLI\'s probabilities', dp(s.probs, rows[0].probs) <= 1e-5, `${s.probs} vs ${rows[0].probs}`);

    // the slider from the keyboard: focus it, ArrowRight twice -> frames 2, then 3
    for (const f of [2, 3]) {
      prev = await seq();
      await p.evaluate((h) => document.querySelector(h).shadowRoot.querySelector('[data-testid=frame-slider]').focus(), host);
      await p.keyboard.press('ArrowRight');
      await waitResult(prev);
      s = await read();
      const row = cli(['classify', '--model', MODEL, '--frame', String(f), file])[0];
      check(`ArrowRight on the slider: frame ${f} classified like the CLI's --frame ${f}`,
        s.frame === f && s.frameText === `${f} of 3` && dp(s.probs, row.probs) <= 1e-5, `${s.frame} ${s.probs} vs ${row.probs}`);
    }
    const text = await p.evaluate(domText);
    check('no identifying tag anywhere in the DOM (PatientName, PatientID, birth date)',
      !fake.some((x) => text.includes(x)) && !text.includes('Doe') && !text.includes('Jane'), 'leaked');

    // manual calibration of a PNG (no calibration in it): two clicks 200 image px apart, 25 mm
    const png = path.join(ROOT, 'build/dicom/frame1.png');
    prev = await seq();
    await p.setInputFiles(`${host} [data-testid=file-input]`, png);
    await waitResult(prev);
    s = await read();
    check(`PNG: no calibration, sizes in pixels ("${s.size}")`, s.size.includes('pixels only') && s.roi === null, s.size);
    const shadow = (t) => p.locator(`${host} [data-testid=${t}]`);
    await shadow('calibrate').click();
    const box = await shadow('roi-canvas').boundingBox();
    for (const x of [100, 300]) await p.mouse.click(box.x + (x / 560) * box.width, box.y + (50 / 360) * box.height);
    await shadow('calib-mm').fill('25');
    await shadow('calib-apply').click();
    const size = await shadow('size-mm').textContent();
    const sPx = 25 / 200, rowPng = cli(['classify', '--model', MODEL, png])[0];
    // the clicks land on fractional image pixels (the canvas is scaled to the layout): 0.5 % slack
    const m = /Region ([\d.]+) × ([\d.]+) mm/.exec(size);
    const okMm = m && Math.abs(Number(m[1]) - 560 * sPx) <= 0.005 * 560 * sPx && Math.abs(Number(m[2]) - 360 * sPx) <= 0.005 * 360 * sPx;
    const ml = /lesion ([\d.]+) × ([\d.]+) mm/.exec(size);
    const okLesion = rowPng.lesion_px === null || (ml && Math.abs(Number(ml[1]) - rowPng.lesion_px[0] * sPx) <= 0.01 * rowPng.lesion_px[0] * sPx + 0.01);
    check(`manual calibration (two ruler ticks, 25 mm): "${size}"`, okMm && okLesion && size.includes('manual calibration'), `${size} vs ${560 * sPx} x ${360 * sPx}, lesion ${rowPng.lesion_px}`);

    // a hostile file: the engine's message
    const [, bad] = hostile.find(([n]) => n === 'nested_10000');
    await p.setInputFiles(`${host} [data-testid=file-input]`, { name: 'bad.dcm', mimeType: 'application/dicom', buffer: fs.readFileSync(bad) });
    await p.waitForFunction((h) => !document.querySelector(h).shadowRoot.querySelector('[data-testid=error]').hidden, host, { timeout: 60000 });
    const errText = await p.evaluate((h) => document.querySelector(h).shadowRoot.querySelector('[data-testid=error]').textContent, host);
    check(`a hostile DICOM file: the engine's error ("${errText.slice(0, 90)}")`, errText.includes('nested more than 64'), errText);
    check('no request left the page after load (browser and server)', requests.length === 0 && srv.log.length === logBefore,
      [...requests, ...srv.log.slice(logBefore)].join(', '));
    check('no console error', problems.length === 0, problems.join(' | '));
  } finally {
    await browser.close();
    srv.proc.kill();
  }
}

runMain('test_dicom_browser', main);
