// view.js - the DOM of <csasn-classifier> (inside its shadow root) and the text it shows:
// buildView() makes every element once and hands back the ones the element updates;
// showResult() fills the result card. No state lives here.

export const ACCEPT = 'image/png,image/jpeg,image/bmp,image/gif,image/x-portable-graymap,image/x-portable-pixmap,.png,.jpg,.jpeg,.bmp,.gif,.pgm,.ppm,.pnm';

export const fmtPct = (p) => (p * 100).toFixed(1) + '%';
export const fmtMB = (n) => (n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0) + ' MB';
export const fmtMs = (ms) => (ms < 10 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';

export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

/** A w x h canvas whose RGBA pixels paint(data) writes (data: the ImageData's bytes). */
export function pixelCanvas(w, h, paint) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d');
  const img = g.createImageData(w, h);
  paint(img.data);
  g.putImageData(img, 0, 0);
  return c;
}

/** -> { root, ...parts }: the whole element tree (root: the .cz container). notes: show the
 *  research-use footer (a page that shows its own notes sets hide-notes). Ids are the shadow
 *  root's own, so several widgets on a page do not clash. */
export function buildView({ notes }) {
  const v = {};
  // Model bar
  v.select = el('select', { id: 'cz-model', 'data-testid': 'model-select', disabled: true });
  v.card = el('a', { class: 'cz-link', 'data-testid': 'model-card', target: '_blank', rel: 'noopener', hidden: true, text: 'Model card' });
  v.modelMeta = el('span', { class: 'cz-modelmeta', 'data-testid': 'model-meta' });
  v.progress = el('progress', { max: '1', value: '0', 'data-testid': 'model-progress', 'aria-label': 'Model download' });
  v.progressText = el('span', { class: 'cz-progress-text' });
  v.progressBox = el('div', { class: 'cz-progress', hidden: true }, v.progress, v.progressText);
  v.modelError = el('div', { class: 'cz-error cz-model-error', role: 'alert', 'data-testid': 'model-error', hidden: true });
  const bar = el('div', { class: 'cz-bar' },
    el('label', { for: 'cz-model', class: 'cz-bar-label', text: 'Model' }), v.select, v.card, v.modelMeta, v.progressBox);

  // Viewer
  v.file = el('input', { type: 'file', id: 'cz-file', accept: ACCEPT, class: 'cz-sr', tabindex: '-1', 'data-testid': 'file-input' }); // reached through the Open image button
  v.openBtn = el('label', { for: 'cz-file', class: 'cz-btn cz-btn-primary', tabindex: '0', role: 'button', 'data-testid': 'open-button' },
    el('span', { 'aria-hidden': 'true', class: 'cz-ico', text: '⤒' }), ' Open image…');
  v.reset = el('button', { type: 'button', class: 'cz-btn', 'data-testid': 'roi-reset', disabled: true, text: 'Reset region' });
  v.reset.title = 'Forget the drawn region and analyse the whole image';
  v.attToggle = el('input', { type: 'checkbox', id: 'cz-att', 'data-testid': 'toggle-attention', checked: true });
  v.maskToggle = el('input', { type: 'checkbox', id: 'cz-mask', 'data-testid': 'toggle-mask', checked: true });
  v.maskLabel = el('label', { for: 'cz-mask', class: 'cz-toggle', hidden: true }, v.maskToggle, ' Lesion mask');
  const tools = el('div', { class: 'cz-tools' }, v.file, v.openBtn, v.reset,
    el('label', { for: 'cz-att', class: 'cz-toggle' }, v.attToggle, ' Attention map'), v.maskLabel);

  v.canvas = el('canvas', { class: 'cz-image', 'data-testid': 'image-canvas', 'aria-hidden': 'true' });
  v.overlay = el('canvas', {
    class: 'cz-overlay', 'data-testid': 'roi-canvas', tabindex: '0', role: 'img',
    'aria-label': 'Ultrasound image. Drag to select the region to analyse; arrow keys move the region, Shift with arrow keys resizes it, Escape resets it.',
  });
  v.canvases = el('div', { class: 'cz-canvases', hidden: true }, v.canvas, v.overlay);
  v.empty = el('div', { class: 'cz-empty' },
    el('div', { class: 'cz-empty-icon', 'aria-hidden': 'true', text: '◎' }),
    el('p', { class: 'cz-empty-title', text: 'Open an ultrasound image' }),
    el('p', { text: 'Drop a file here, paste it (Ctrl+V) or use Open image.' }),
    el('p', { class: 'cz-muted', text: 'PNG, JPEG, BMP, GIF or PGM. The image is analysed on this device and never uploaded.' }));
  v.busy = el('div', { class: 'cz-busy', hidden: true, 'aria-hidden': 'true' }, el('span', { class: 'cz-spinner' }), ' Analysing…');
  v.stage = el('div', { class: 'cz-stage', 'data-testid': 'dropzone' }, v.empty, v.canvases, v.busy);
  v.error = el('div', { class: 'cz-error', role: 'alert', 'data-testid': 'error', hidden: true });
  v.imageInfo = el('p', { class: 'cz-imageinfo', 'data-testid': 'image-info' });
  const hint = el('p', { class: 'cz-hint', text: 'Drag a rectangle around the nodule to analyse just that region. Keyboard: focus the image, arrows move the region, Shift+arrows resize, Esc resets.' });
  const viewer = el('section', { class: 'cz-card cz-viewer', 'aria-label': 'Image and region of interest' },
    tools, v.stage, v.error, v.imageInfo, hint);

  // Results
  v.status = el('p', { class: 'cz-status', 'data-testid': 'status', role: 'status', text: 'Starting…' });
  v.topLabel = el('div', { class: 'cz-top-label', 'data-testid': 'top-label' });
  v.topProb = el('div', { class: 'cz-top-prob', 'data-testid': 'top-prob' });
  v.top = el('div', { class: 'cz-top', hidden: true },
    el('div', { class: 'cz-kicker', text: 'Most likely class' }), v.topLabel, v.topProb);
  v.maligValue = el('span', { class: 'cz-malig-value', 'data-testid': 'malignancy-value' });
  v.maligFill = el('span', { class: 'cz-meter-fill' });
  v.maligTick = el('span', { class: 'cz-meter-tick', title: 'operating point' });
  v.maligNote = el('p', { class: 'cz-muted cz-small' });
  v.malig = el('div', { class: 'cz-malig', 'data-testid': 'malignancy', hidden: true },
    el('div', { class: 'cz-malig-head' }, el('span', { text: 'Malignancy risk' }), v.maligValue),
    el('div', { class: 'cz-meter', role: 'presentation' }, v.maligFill, v.maligTick), v.maligNote);
  v.probs = el('ol', { class: 'cz-probs', 'data-testid': 'probs', 'aria-label': 'Probability of each class' });
  v.probsBox = el('div', { class: 'cz-probs-box', hidden: true }, el('h3', { class: 'cz-h', text: 'Class probabilities' }), v.probs);
  // Descriptor heads: each head's most likely label, as text (labels come from the model file)
  v.features = el('ul', { class: 'cz-features', 'data-testid': 'features', 'aria-label': 'Features the model reads' });
  v.featuresBox = el('div', { class: 'cz-features-box', 'data-testid': 'features-box', hidden: true },
    el('h3', { class: 'cz-h', text: 'Features the model reads' }), v.features,
    el('p', { class: 'cz-muted cz-small', text: 'Each feature\'s most likely value and its probability: compare them with what you see.' }));
  v.latency = el('span', { 'data-testid': 'latency' });
  v.roiText = el('span', { 'data-testid': 'roi-text' });
  v.regionText = el('span', { 'data-testid': 'region-text' });
  v.meta = el('p', { class: 'cz-meta', hidden: true }, 'Inference ', v.latency, ' on this device · Region ', v.roiText, v.regionText);
  v.legendMask = el('span', { class: 'cz-legend-item', hidden: true },
    el('span', { class: 'cz-legend-swatch', 'aria-hidden': 'true' }), el('span', { class: 'cz-small cz-muted', text: 'Lesion outline (mask ≥ 50%)' }));
  v.legend = el('div', { class: 'cz-legend', hidden: true },
    el('span', { class: 'cz-legend-item' }, el('span', { class: 'cz-legend-bar', 'aria-hidden': 'true' }),
      el('span', { class: 'cz-small cz-muted', text: 'Attention: low → high (relative, within the region)' })),
    v.legendMask);
  v.placeholder = el('div', { class: 'cz-placeholder' },
    el('p', { text: 'The result appears here:' }),
    el('ul', {}, el('li', { text: 'the probability of every class of the selected model,' }),
      el('li', { text: 'the malignancy risk, where the model estimates it,' }),
      el('li', { text: 'an attention map showing where the model looked,' }),
      el('li', { text: 'the lesion outline, where the model segments it.' })));
  const results = el('section', { class: 'cz-card cz-results', 'aria-label': 'Result', 'aria-live': 'polite' },
    v.status, v.placeholder, v.top, v.malig, v.probsBox, v.featuresBox, v.meta, v.legend);

  const foot = el('p', { class: 'cz-foot', hidden: !notes },
    el('strong', { text: 'Research use only — not a diagnosis.' }),
    ' Results must be interpreted by a qualified clinician. Images are processed on this device and never leave it.',
    // intended use, in the words of the page, the report and the README
    ' An adjunct for a region placed on a grey-scale (B-mode) image of a thyroid or breast nodule; trained on DDTI thyroid crops from one centre and BUSI breast images from one hospital; not for Doppler or elastography overlays, post-surgical sites, normal thyroid tissue, or children. Thyroid labels are DDTI\'s Kwak-style TI-RADS 2-5, not ACR TR1-TR5.');
  v.root = el('div', { class: 'cz' }, bar, v.modelError, el('div', { class: 'cz-grid' }, viewer, results), foot);
  return v;
}

/** The model selector's options: entries of manifest.js. */
export function showModels(v, models) {
  v.select.replaceChildren(...models.map((m) => el('option', { value: m.id, text: m.title })));
}

/** Fills the result card with r (a csasn.js result; null empties it). info: the model's
 *  info (malignant labels), threshold: its malignancy operating point. */
export function showResult(v, r, info, threshold) {
  if (!r) {
    v.top.hidden = v.malig.hidden = v.probsBox.hidden = v.meta.hidden = v.legend.hidden = true;
    v.maskLabel.hidden = true;
    v.placeholder.hidden = false;
    v.probs.replaceChildren();
    v.featuresBox.hidden = true;
    v.features.replaceChildren();
    return;
  }
  const malignantSet = new Set(info ? info.labels.filter((_, i) => info.malignant[i]) : []);
  const order = r.probs.map((p, i) => i).sort((a, b) => r.probs[b] - r.probs[a]);
  v.probs.replaceChildren(...order.map((i) => {
    const fill = el('span', { class: 'cz-fill' });
    fill.style.width = (r.probs[i] * 100).toFixed(2) + '%';
    const li = el('li', { class: 'cz-prob' + (i === r.top ? ' cz-prob-top' : ''), 'data-testid': 'prob-row', 'data-label': r.labels[i], 'data-prob': String(r.probs[i]) },
      el('span', { class: 'cz-prob-name' }, r.labels[i], malignantSet.has(r.labels[i]) && !/malignan/i.test(r.labels[i]) ? el('span', { class: 'cz-tag', title: 'counted as malignant by this model', text: 'malignant' }) : null),
      el('span', { class: 'cz-prob-bar', 'aria-hidden': 'true' }, fill),
      el('span', { class: 'cz-prob-pct', 'data-testid': 'prob-value', text: fmtPct(r.probs[i]) }));
    li.setAttribute('aria-label', `${r.labels[i]}: ${fmtPct(r.probs[i])}`);
    return li;
  }));
  v.placeholder.hidden = true;
  v.topLabel.textContent = r.label;
  v.topProb.textContent = `${fmtPct(r.probs[r.top])} probability`;
  v.top.hidden = false;
  v.top.classList.toggle('cz-top-malignant', malignantSet.has(r.label));
  if (r.malignancy !== null && r.malignancy !== undefined) {
    v.maligValue.textContent = fmtPct(r.malignancy);
    v.maligFill.style.width = (r.malignancy * 100).toFixed(2) + '%';
    v.maligTick.style.left = (threshold * 100).toFixed(2) + '%';
    v.malig.classList.toggle('cz-high', r.malignancy >= threshold);
    v.maligNote.textContent = `${r.malignancy >= threshold ? 'At or above' : 'Below'} the model's operating point of ${fmtPct(threshold)} (see the model card for its sensitivity and specificity).`;
    v.malig.hidden = false;
  } else v.malig.hidden = true;
  v.probsBox.hidden = false;
  v.latency.textContent = fmtMs(r.ms);
  v.roiText.textContent = r.roi ? `${r.roi.w} × ${r.roi.h} px at (${r.roi.x}, ${r.roi.y})` : `whole image (${r.image.w} × ${r.image.h} px)`;
  const g = r.region, same = g && r.roi && g.x === r.roi.x && g.y === r.roi.y && g.w === r.roi.w && g.h === r.roi.h;
  v.regionText.textContent = g && r.roi && !same ? ` · the model read ${g.w} × ${g.h} px at (${g.x}, ${g.y}) (dashed outline)` : '';
  showFeatures(v, r.descriptors || []);
  v.meta.hidden = false;
  v.legend.hidden = !r.attention && !r.mask;
  v.legendMask.hidden = !r.mask;
  v.maskLabel.hidden = !r.mask;
  v.reset.disabled = !r.roi;
}

/** The descriptor heads of result r (csasn.js: [{ name, labels, probs, top, label }]): one row
 *  per head, its top label and probability. textContent only: names and labels are the
 *  model file's strings, never markup. */
function showFeatures(v, descriptors) {
  v.features.replaceChildren(...descriptors.map((d) => {
    const p = d.probs[d.top];
    const li = el('li', { class: 'cz-feature', 'data-testid': 'feature-row', 'data-name': d.name, 'data-label': d.labels[d.top], 'data-prob': String(p) },
      el('span', { class: 'cz-feature-name', text: d.name }),
      el('span', { class: 'cz-feature-value', 'data-testid': 'feature-value', text: d.labels[d.top] }),
      el('span', { class: 'cz-feature-pct', 'data-testid': 'feature-prob', text: fmtPct(p) }));
    li.setAttribute('aria-label', `${d.name}: ${d.labels[d.top]}, ${fmtPct(p)}`);
    return li;
  }));
  v.featuresBox.hidden = descriptors.length === 0;
}

/** The model's malignancy operating point (its metadata), 0.5 when it names none. */
export function threshold(info) {
  const meta = (info && info.meta) || {};
  const t = meta['csasn.malignancy_threshold'] ?? meta.malignancy_threshold ?? (meta.csasn && meta.csasn.malignancy_threshold);
  return typeof t === 'number' && t > 0 && t < 1 ? t : 0.5;
}
