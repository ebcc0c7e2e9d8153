// overlay.js - what <csasn-classifier> draws over the image: the attention map, the lesion
// outline, the region of interest, the region the model read (when the model's region rule
// grows the box or squares it) and the rectangle being dragged. Everything is given in
// image pixels (the engine's coordinates) and scaled to the overlay canvas here.
import { pixelCanvas } from './view.js';

// Perceptually ordered heat colours for the attention overlay (dark blue -> cyan -> green ->
// yellow -> red), alpha growing with the value so low attention leaves the image visible.
const HEAT = [[0, 30, 60, 200], [0.3, 0, 170, 230], [0.55, 60, 220, 120], [0.78, 250, 220, 40], [1, 240, 40, 30]];
function heat(v) {
  for (let k = 1; k < HEAT.length; k++) {
    if (v <= HEAT[k][0] || k === HEAT.length - 1) {
      const [a, ...ca] = HEAT[k - 1], [b, ...cb] = HEAT[k];
      const t = Math.min(1, Math.max(0, (v - a) / (b - a)));
      return ca.map((c, j) => Math.round(c + (cb[j] - c) * t));
    }
  }
  return [0, 0, 0];
}

// map {w, h, data} -> a canvas of its values, min-max normalised (relative within the region).
function attentionCanvas(map) {
  let lo = Infinity, hi = -Infinity;
  for (const v of map.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi - lo > 1e-6 ? hi - lo : 1;
  return pixelCanvas(map.w, map.h, (d) => {
    for (let i = 0; i < map.data.length; i++) {
      const t = (map.data[i] - lo) / span;
      d.set([...heat(t), Math.round(30 + 125 * t)], i * 4);
    }
  });
}

// Lesion mask -> outline: the probability map is upsampled bilinearly (pixel centres, as
// PyTorch's align_corners=False), thresholded at 0.5, and drawn as a crisp contour over a faint
// fill, so the attention colours underneath stay readable.
function maskCanvas(map) {
  const f = Math.max(1, Math.round(384 / Math.max(map.w, map.h)));
  const W = map.w * f, H = map.h * f;
  const inside = new Uint8Array(W * H);
  const at = (x, y) => map.data[Math.min(map.h - 1, Math.max(0, y)) * map.w + Math.min(map.w - 1, Math.max(0, x))];
  for (let y = 0; y < H; y++) {
    const sy = (y + 0.5) / f - 0.5, y0 = Math.floor(sy), ty = sy - y0;
    for (let x = 0; x < W; x++) {
      const sx = (x + 0.5) / f - 0.5, x0 = Math.floor(sx), tx = sx - x0;
      const v = (at(x0, y0) * (1 - tx) + at(x0 + 1, y0) * tx) * (1 - ty) + (at(x0, y0 + 1) * (1 - tx) + at(x0 + 1, y0 + 1) * tx) * ty;
      inside[y * W + x] = v >= 0.5 ? 1 : 0;
    }
  }
  return pixelCanvas(W, H, (d) => {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        if (!inside[i]) continue;
        // 2 px wide: an inside pixel within two steps of an outside one (or of the border).
        const edge = x < 2 || y < 2 || x >= W - 2 || y >= H - 2 || !inside[i - 1] || !inside[i + 1] || !inside[i - W] ||
          !inside[i + W] || !inside[i - 2] || !inside[i + 2] || !inside[i - 2 * W] || !inside[i + 2 * W];
        d.set(edge ? [190, 242, 100, 255] : [190, 242, 100, 34], i * 4);
      }
    }
  });
}

// The maps of a result are drawn into canvases once, not on every pointer move.
const drawn = new WeakMap(); // result -> { attention, mask }

/** Redraws canvas c (sized to the image's aspect). s = { image: {w, h}, result (or null),
 *  roi (chosen region or null), drag ({x0, y0, x1, y1} or null), attention, mask (toggles) }. */
export function drawOverlay(c, s) {
  const img = s.image;
  if (!img || !c.width) return;
  const g = c.getContext('2d');
  const sx = c.width / img.w, sy = c.height / img.h;
  const px = c.width / Math.max(1, c.getBoundingClientRect().width); // canvas px per CSS px
  g.clearRect(0, 0, c.width, c.height);
  const res = s.result;
  // The maps cover the model's input, i.e. the region it read (result.region: the user's box
  // grown, or the square around it, per the model's region rule), not always the drawn box.
  const rr = (res && (res.region || res.roi)) || { x: 0, y: 0, w: img.w, h: img.h };
  const R = { x: rr.x * sx, y: rr.y * sy, w: rr.w * sx, h: rr.h * sy };
  g.imageSmoothingEnabled = true;
  let cache = res && drawn.get(res);
  if (res && !cache) drawn.set(res, (cache = {}));
  if (res && res.attention && s.attention) {
    cache.attention ??= attentionCanvas(res.attention);
    g.drawImage(cache.attention, R.x, R.y, R.w, R.h);
  }
  if (res && res.mask && s.mask) {
    cache.mask ??= maskCanvas(res.mask);
    g.drawImage(cache.mask, R.x, R.y, R.w, R.h);
  }
  const roi = s.drag ? null : s.roi;
  if (roi) {
    const Q = { x: roi.x * sx, y: roi.y * sy, w: roi.w * sx, h: roi.h * sy };
    g.fillStyle = 'rgba(5, 10, 20, 0.5)';
    g.beginPath();
    g.rect(0, 0, c.width, c.height);
    g.rect(Q.x, Q.y, Q.w, Q.h);
    g.fill('evenodd');
    g.lineWidth = 2 * px;
    g.strokeStyle = '#38bdf8';
    g.setLineDash([]);
    g.strokeRect(Q.x, Q.y, Q.w, Q.h);
  }
  // The region the model read, where it is not the drawn box itself (a margin, a square):
  // a dashed outline next to the user's box, so the page shows exactly what was analysed.
  const reg = !s.drag && res && res.region && s.roi ? res.region : null;
  if (reg && (reg.x !== s.roi.x || reg.y !== s.roi.y || reg.w !== s.roi.w || reg.h !== s.roi.h)) {
    g.lineWidth = 1.5 * px;
    g.strokeStyle = '#e2e8f0';
    g.setLineDash([5 * px, 4 * px]);
    g.strokeRect(reg.x * sx, reg.y * sy, reg.w * sx, reg.h * sy);
    g.setLineDash([]);
  }
  if (s.drag) {
    const d = s.drag;
    g.lineWidth = 2 * px;
    g.strokeStyle = '#fbbf24';
    g.setLineDash([6 * px, 4 * px]);
    g.strokeRect(Math.min(d.x0, d.x1) * sx, Math.min(d.y0, d.y1) * sy, Math.abs(d.x1 - d.x0) * sx, Math.abs(d.y1 - d.y0) * sy);
  }
}
