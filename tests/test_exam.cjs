// test_exam.cjs - the exam in Chromium: 20 real images from ../shared/data opened at once,
// grouped into nodules (label + view), one reviewed with a new region of interest, the report
// created, rendered for print (screenshot + PDF, text checked), downloaded as JSON and FHIR and
// validated (csasn-report v1 schema; FHIR R4 rules of tests/fhir_r4.cjs), and its numbers
// compared with `csasn report` on the same inputs; "Clear exam" empties it; no request is made
// after the page has loaded; axe-core finds no serious or critical WCAG 2.1 A/AA violation on any
// view; and the exam can be walked through with the keyboard alone.
'use strict';
const fs = require('fs');
const path = require('path');
const { ROOT, DATA, check, runMain } = require('./testlib.cjs');
const { startServer, launch } = require('./browserlib.cjs');
const { buildAll } = require('./test_wasm_node.cjs');
const { validateBundle } = require('./fhir_r4.cjs');
const { validateReport, cliReport } = require('./reportlib.cjs');

// DDTI: nodules with several images (labels.csv case_id + nodule_part) until 14 images, then
// single-image nodules to 20.
function examImages() {
  const lines = fs.readFileSync(path.join(DATA, 'ddti/labels.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const rows = lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i], v]))).filter((r) => r.binary_label !== '');
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.case_id}-${r.nodule_part}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const out = [];
  let n = 0;
  for (const [k, g] of groups) {
    if (g.length < 2 || g.length > 3 || out.length + g.length > 14) continue;
    n++;
    g.forEach((r, i) => out.push({ path: path.join(DATA, 'ddti', r.image), nodule: `case ${k.split('-')[0]}, nodule ${n}`, view: i === 0 ? 'transverse' : 'longitudinal' }));
  }
  for (const [, g] of groups) {
    if (out.length >= 20) break;
    if (g.length === 1) out.push({ path: path.join(DATA, 'ddti', g[0].image), nodule: null, view: 'other' });
  }
  return out;
}

// axe-core in the page -> serious and critical violations of WCAG 2.0/2.1 A and AA.
async function axe(page, src) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(src);
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.nodes.length}): ${v.nodes[0] && v.nodes[0].target.join(' ')}`);
}

// Presses Tab (at most 400 times) until the focused element matches `sel` (through open
// shadow roots), -> true when reached by the keyboard alone.
async function tabTo(page, sel) {
  for (let i = 0; i < 400; i++) {
    await page.keyboard.press('Tab');
    const hit = await page.evaluate((s) => {
      let a = document.activeElement;
      while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
      return !!a && a.matches(s);
    }, sel);
    if (hit) return true;
  }
  return false;
}

async function main() {
  buildAll();
  const model = path.join(ROOT, 'weights/thyroid-ddti.csasn');
  const axeSrc = fs.readFileSync(path.join(ROOT, 'tools/node_modules/axe-core/axe.min.js'), 'utf8');
  const items = examImages();
  check('20 images from ../shared/data, several nodules with 2+ views', items.length === 20 && new Set(items.filter((i) => i.nodule).map((i) => i.nodule)).size >= 4, items.length);
  const srv = await startServer(path.join(ROOT, 'weights'));
  const browser = await launch();
  const out = path.join(ROOT, 'build');
  try {
    const page = browser.ctx.pages()[0] || await browser.ctx.newPage();
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    browser.ctx.on('request', (r) => requests.push(r.url()));
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // A listener from the start turns on playwright's file-chooser interception now: added just
    // before the key press, it is switched on asynchronously and may come after the picker opened.
    page.on('filechooser', () => {});
    await page.goto(srv.url);
    await page.waitForFunction(() => document.querySelector('csasn-classifier')?.getAttribute('data-state') === 'ready', null, { timeout: 90000 });
    await page.waitForTimeout(300);
    const nLoaded = requests.length;

    let v = await axe(page, axeSrc);
    check('axe: empty page, no serious/critical violation', v.length === 0, v.join('; '));

    // Open all 20 at once.
    await page.setInputFiles('[data-testid=exam-files]', items.map((i) => i.path));
    await page.waitForFunction(() => /20 image\(s\) in this exam, 20 analysed/.test(document.querySelector('[data-testid=exam-status]').textContent), null, { timeout: 180000 });
    const rows = page.locator('[data-testid=exam-row]');
    check('exam list: 20 rows in the order opened', (await rows.count()) === 20 &&
      JSON.stringify(await rows.evaluateAll((rs) => rs.map((r) => r.dataset.name))) === JSON.stringify(items.map((i) => path.basename(i.path))));
    const tops = await page.locator('[data-testid=exam-top]').allTextContents();
    check('exam list: every row has a top class and malignancy', tops.every((t) => /TI-RADS \S+ \(\d+\.\d%\)/.test(t)) &&
      (await page.locator('[data-testid=exam-malignancy]').allTextContents()).every((t) => /^\d+\.\d%$/.test(t)), tops.join(' | '));
    check('exam list: a thumbnail with alt text per row', (await page.locator('[data-testid=exam-row] img[alt]').count()) === 20);

    // Group into nodules: label and view per row.
    for (let i = 0; i < items.length; i++) {
      const row = rows.nth(i);
      if (items[i].nodule) await row.locator('[data-testid=exam-nodule]').fill(items[i].nodule);
      await row.locator('[data-testid=exam-nodule]').dispatchEvent('change');
      await row.locator('[data-testid=exam-view]').selectOption(items[i].view);
    }
    // Review one image and give it a region of interest (what drawing one in the widget does).
    const ri = 1;
    items[ri].roi = { x: 40, y: 30, w: 200, h: 210 };
    await rows.nth(ri).locator('[data-testid=exam-review]').click();
    await page.waitForFunction((n) => document.querySelector('[data-testid=exam-status]').textContent.includes(n), path.basename(items[ri].path));
    await page.waitForFunction(() => document.querySelector('csasn-classifier').getAttribute('data-state') === 'ready');
    const before = await rows.nth(ri).locator('[data-testid=exam-malignancy]').textContent();
    await page.evaluate((roi) => document.querySelector('csasn-classifier').setRoi(roi), items[ri].roi);
    await page.waitForFunction(([i, b]) => document.querySelectorAll('[data-testid=exam-malignancy]')[i].textContent !== b, [ri, before], { timeout: 30000 }).catch(() => {});
    await page.waitForFunction(() => document.querySelector('csasn-classifier').getAttribute('data-state') === 'ready');
    check('review: the adjusted region is the exam item\'s', await page.evaluate((i) => JSON.stringify(window.csasnExam.items[i].roi), ri) === JSON.stringify(items[ri].roi));
    v = await axe(page, axeSrc);
    check('axe: exam list, no serious/critical violation', v.length === 0, v.join('; '));
    await page.locator('#exam').screenshot({ path: path.join(out, 'exam-list.png') });

    // The report.
    await page.locator('[data-testid=exam-make-report]').click();
    await page.waitForSelector('[data-testid=exam-report]:not([hidden]) [data-testid=report-nodule]', { timeout: 30000 });
    const nNod = new Set(items.filter((i) => i.nodule).map((i) => i.nodule)).size + items.filter((i) => !i.nodule).length;
    check('report: one section per nodule', (await page.locator('[data-testid=report-nodule]').count()) === nNod, nNod);
    check('report: heat map and mask thumbnails for every image', (await page.locator('[data-testid=report-image] img[alt^="Attention map"]').count()) === 20 &&
      (await page.locator('[data-testid=report-image] img[alt^="Lesion mask"]').count()) === 20);
    v = await axe(page, axeSrc);
    check('axe: report view, no serious/critical violation', v.length === 0, v.join('; '));

    // Downloads.
    const grab = async (sel) => {
      const [d] = await Promise.all([page.waitForEvent('download'), page.locator(sel).click()]);
      return fs.readFileSync(await d.path(), 'utf8');
    };
    const json = await grab('[data-testid=report-download-json]');
    const fhirText = await grab('[data-testid=report-download-fhir]');
    const doc = JSON.parse(json);
    const fhir = JSON.parse(fhirText);
    const se = validateReport(doc);
    check('download JSON: follows the csasn-report v1 schema', se.length === 0, se.join('; '));
    const fe = validateBundle(fhir);
    check('download FHIR: Bundle passes the R4 rules (tests/fhir_r4.cjs)', fe.length === 0, fe.slice(0, 5).join('; '));
    fs.writeFileSync(path.join(out, 'exam-report.json'), json);
    fs.writeFileSync(path.join(out, 'exam-report.fhir.json'), fhirText);

    // The CLI on the same inputs, same date.
    const args = ['--model', model, '--date', doc.date];
    for (const it of items) {
      if (it.nodule) args.push('--nodule', it.nodule);
      args.push('--view', it.view);
      if (it.roi) args.push('--roi', `${it.roi.x},${it.roi.y},${it.roi.w},${it.roi.h}`);
      args.push(it.path);
    }
    const cj = cliReport(args), cf = cliReport(['--fhir', ...args]);
    // The page's engine (wasm) and the CLI's (native) agree to ~1e-9 on a probability
    // (tests/test_wasm_node.cjs), and both documents come from src/report.c, which prints 6
    // decimals: the text must be the same except that a number lying on a rounding boundary
    // may differ by one unit of its last decimal (1e-6; 1e-4 as a percentage).
    const numDiff = (a, b) => {
      const na = a.match(/-?\d+\.\d+/g) || [], nb = b.match(/-?\d+\.\d+/g) || [];
      const sa = a.replace(/-?\d+\.\d+/g, '#'), sb = b.replace(/-?\d+\.\d+/g, '#');
      if (sa !== sb || na.length !== nb.length) return Infinity;
      let worst = 0;
      na.forEach((x, i) => { const d = Math.abs(Number(x) - Number(nb[i])) / (x.split('.')[1].length === 4 ? 100 : 1); worst = Math.max(worst, d); });
      return worst;
    };
    const dj = numDiff(json, cj), df = numDiff(fhirText, cf);
    check('page JSON = csasn report (same text, numbers within 1e-6)', dj <= 1.0000001e-6, `worst ${dj}`);
    check('page FHIR = csasn report --fhir (same text, numbers within 1e-6)', df <= 1.0000001e-6, `worst ${df}`);
    console.log(`# byte-identical: JSON ${json === cj}, FHIR ${fhirText === cf}`);
    // The print view shows the document's numbers.
    const shownProbs = await page.locator('[data-testid=report-nodule-malignancy]').evaluateAll((es) => es.map((e) => Number(e.dataset.prob)));
    check('print view: nodule malignancy = the JSON document', shownProbs.length === doc.nodules.length && shownProbs.every((p, j) => p === doc.nodules[j].malignancy));
    const shownText = await page.locator('[data-testid=report-nodule-malignancy]').allTextContents();
    check('print view: malignancy shown to 0.1% of the document', shownText.every((t, j) => t === `malignancy ${(100 * doc.nodules[j].malignancy).toFixed(1)}%`), shownText[0]);

    // Print rendering: only the report, the research-use line fixed on every page.
    await page.emulateMedia({ media: 'print' });
    await page.screenshot({ path: path.join(out, 'exam-report-print.png'), fullPage: true });
    const pr = await page.evaluate(() => {
      const run = document.querySelector('[data-testid=report-running]');
      const cs = getComputedStyle(run);
      const widget = document.querySelector('csasn-classifier');
      return { pos: cs.position, disp: cs.display, widget: getComputedStyle(widget).display, text: document.querySelector('[data-testid=exam-report]').innerText };
    });
    check('print: research-use line repeated on every page (position: fixed)', pr.pos === 'fixed' && pr.disp === 'block', JSON.stringify({ pos: pr.pos, disp: pr.disp }));
    check('print: only the report is printed', pr.widget === 'none');
    const needed = [/Research use only/, /Kwak-style/, /not the ACR TI-RADS levels TR1-TR5/, new RegExp(doc.model.sha256), /csasn-thyroid-ddti/, new RegExp(doc.date), /operating point/];
    const missing = needed.filter((re) => !re.test(pr.text));
    check('print: report text names model, SHA-256, date, label system, research use', missing.length === 0, missing.join(' '));
    check('print: every nodule label printed', doc.nodules.every((n) => pr.text.includes(n.label)));
    v = await axe(page, axeSrc);
    check('axe: print view, no serious/critical violation', v.length === 0, v.join('; '));
    const pdf = await page.pdf({ format: 'A4', printBackground: true });
    fs.writeFileSync(path.join(out, 'exam-report.pdf'), pdf);
    const pages = (pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g) || []).length;
    check('print: a PDF of the report (Save as PDF)', pdf.slice(0, 5).toString() === '%PDF-' && pages >= 2, `${pages} pages`);
    console.log(`# report PDF: ${pages} pages, build/exam-report.pdf; screenshot build/exam-report-print.png`);
    await page.emulateMedia({ media: 'screen' });

    // Clear exam.
    await page.locator('[data-testid=exam-clear]').click();
    check('clear exam: list and report emptied', (await rows.count()) === 0 && await page.locator('[data-testid=exam-report]').isHidden() &&
      await page.evaluate(() => window.csasnExam.items.length === 0));

    // Keyboard only: open two images through the label's keyboard action, label a nodule,
    // choose its view, create the report and reach the downloads.
    await page.evaluate(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); });
    await page.locator('body').focus();
    let ok = await tabTo(page, 'label[for=exam-files]');
    const chooser = page.waitForEvent('filechooser');
    await page.keyboard.press('Enter');
    await (await chooser).setFiles(items.slice(0, 2).map((i) => i.path));
    await page.waitForFunction(() => /2 image\(s\) in this exam, 2 analysed/.test(document.querySelector('[data-testid=exam-status]').textContent), null, { timeout: 60000 });
    ok = ok && await tabTo(page, '[data-testid=exam-nodule]');
    await page.keyboard.type('left lobe, nodule 1');
    await page.keyboard.press('Tab'); // commits the label (change), focus on the view
    await page.keyboard.press('ArrowUp'); // from "other" (the last option) to "longitudinal"
    ok = ok && await tabTo(page, '[data-testid=exam-make-report]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid=exam-report]:not([hidden]) [data-testid=report-nodule]', { timeout: 30000 });
    ok = ok && await tabTo(page, '[data-testid=report-download-json]');
    const [dk] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    const kdoc = JSON.parse(fs.readFileSync(await dk.path(), 'utf8'));
    check('keyboard only: open, label, view, report, download', ok && kdoc.nodules[0].label === 'left lobe, nodule 1' && kdoc.nodules[0].views[0] === 'longitudinal', JSON.stringify(kdoc.nodules[0] && kdoc.nodules[0].label));

    const after = requests.slice(nLoaded).filter((u) => !u.startsWith('blob:') && !u.startsWith('data:'));
    check('no request after the page loaded (20 images, report, downloads)', after.length === 0, after.slice(0, 5).join(' '));
    check('no page errors', errors.length === 0, errors.join('; '));

    // (after the request check: a reload is a new load) Storage only when asked: nothing in sessionStorage until "keep" is ticked; then a reload
    // brings the exam back (labels, views), and "Clear exam" removes it.
    check('exam not stored unless asked', await page.evaluate(() => sessionStorage.length === 0 && localStorage.length === 0));
    await page.locator('[data-testid=exam-keep]').check();
    await page.reload();
    await page.waitForFunction(() => /2 image\(s\) in this exam, 2 analysed/.test(document.querySelector('[data-testid=exam-status]')?.textContent || ''), null, { timeout: 90000 });
    const restored = await page.evaluate(() => window.csasnExam.items.map((i) => [i.name, i.nodule, i.view, !!i.result]));
    check('kept exam restored after a reload (asked for)', restored.length === 2 && restored[0][1] === 'left lobe, nodule 1' && restored[0][2] === 'longitudinal' && restored.every((r) => r[3]), JSON.stringify(restored));
    await page.locator('[data-testid=exam-clear]').click();
    check('clear exam empties the tab storage too', await page.evaluate(() => sessionStorage.getItem('csasn-exam') === null));

  } finally {
    await browser.close();
    srv.proc.kill();
  }
}

runMain('test_exam', main);
