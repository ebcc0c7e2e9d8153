// roi.js - the region of interest from the pointer (drag a rectangle) and the keyboard
// (arrows move, Shift+arrows resize, Escape resets), in image pixels.
//
//   const stop = attachRoiInput(overlayCanvas, {
//     image: () => ({ w, h }) or null,    // the open image's size (the engine's pixels)
//     roi: () => the current region or null,
//     onDrag(rect or null),               // the rectangle being dragged, for the overlay
//     onPreview(roi),                     // a region moved by keys: shown (and roi() from now
//                                         // on), classified once the keys pause
//     onRoi(roi or null),                 // a region chosen (null: the whole image)
//   });

/** Region {x, y, w, h} clamped to a W x H image (at least 1 x 1 inside it). */
export function clampRoi(roi, W, H) {
  const x = Math.max(0, Math.min(W - 1, roi.x | 0)), y = Math.max(0, Math.min(H - 1, roi.y | 0));
  return { x, y, w: Math.max(1, Math.min(W - x, roi.w | 0)), h: Math.max(1, Math.min(H - y, roi.h | 0)) };
}

// Drag rectangle -> integer ROI: corners rounded to the nearest pixel edge. Anything smaller
// than 4x4 pixels is a click, not a region.
function dragRoi(d) {
  const x0 = Math.round(Math.min(d.x0, d.x1)), x1 = Math.round(Math.max(d.x0, d.x1));
  const y0 = Math.round(Math.min(d.y0, d.y1)), y1 = Math.round(Math.max(d.y0, d.y1));
  if (x1 - x0 < 4 || y1 - y0 < 4) return null;
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/** Listens on canvas c; returns a function that stops listening. */
export function attachRoiInput(c, cb) {
  let drag = null, keyTimer = 0;
  // Pointer -> image pixels (fractional, clamped to the image). The canvas is shown at the
  // image's aspect ratio with no border or padding, so its client rect maps linearly.
  const toImage = (e) => {
    const r = c.getBoundingClientRect();
    const { w, h } = cb.image();
    const x = ((e.clientX - r.left) / r.width) * w;
    const y = ((e.clientY - r.top) / r.height) * h;
    return { x: Math.min(w, Math.max(0, x)), y: Math.min(h, Math.max(0, y)) };
  };
  const down = (e) => {
    if (!cb.image() || e.button !== 0) return;
    e.preventDefault();
    c.focus();
    c.setPointerCapture(e.pointerId);
    const p = toImage(e);
    drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
    cb.onDrag(drag);
  };
  const move = (e) => {
    if (!drag) return;
    const p = toImage(e);
    drag.x1 = p.x;
    drag.y1 = p.y;
    cb.onDrag(drag);
  };
  const up = (e) => {
    if (!drag) return;
    const p = toImage(e);
    const d = drag;
    drag = null;
    d.x1 = p.x;
    d.y1 = p.y;
    cb.onDrag(null);
    const roi = dragRoi(d);
    if (roi) cb.onRoi(roi); // a click, not a drag, keeps the current region
  };
  const cancel = () => { drag = null; cb.onDrag(null); };
  const key = (e) => {
    const img = cb.image();
    if (!img) return;
    const { w: W, h: H } = img;
    if (e.key === 'Escape') {
      e.preventDefault();
      clearTimeout(keyTimer);
      cb.onRoi(null);
      return;
    }
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const d = dirs[e.key];
    if (!d) return;
    e.preventDefault();
    const step = Math.max(1, Math.round(Math.max(W, H) * 0.02));
    const cur = cb.roi();
    let r = cur ? { ...cur } : { x: Math.round(W * 0.25), y: Math.round(H * 0.25), w: Math.round(W * 0.5), h: Math.round(H * 0.5) };
    if (cur) {
      if (e.shiftKey) { r.w = Math.max(4, r.w + d[0] * step); r.h = Math.max(4, r.h + d[1] * step); }
      else { r.x += d[0] * step; r.y += d[1] * step; }
    }
    r.w = Math.min(r.w, W);
    r.h = Math.min(r.h, H);
    r.x = Math.min(Math.max(0, r.x), W - r.w);
    r.y = Math.min(Math.max(0, r.y), H - r.h);
    cb.onPreview(r);
    clearTimeout(keyTimer);
    keyTimer = setTimeout(() => cb.onRoi(r), 200); // classify once typing pauses
  };
  c.addEventListener('pointerdown', down);
  c.addEventListener('pointermove', move);
  c.addEventListener('pointerup', up);
  c.addEventListener('pointercancel', cancel);
  c.addEventListener('keydown', key);
  return () => {
    clearTimeout(keyTimer);
    c.removeEventListener('pointerdown', down);
    c.removeEventListener('pointermove', move);
    c.removeEventListener('pointerup', up);
    c.removeEventListener('pointercancel', cancel);
    c.removeEventListener('keydown', key);
  };
}
