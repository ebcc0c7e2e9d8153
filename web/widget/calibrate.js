// calibrate.js - manual calibration for images that carry none (PNG, JPEG, an uncalibrated
// DICOM): the user clicks two ticks of the depth ruler burnt into the image and types the
// distance between them; sizes then show in mm. The picture is the engine's own preview, so
// the clicked points are in the engine's pixels. Square pixels are assumed (a ruler gives one
// scale); the page says that the size comes from a manual calibration.
//
//   const stop = attachCalibration(overlayCanvas, {
//     image: () => ({ w, h }) or null,  // the open image (the engine's pixels)
//     active: () => boolean,            // calibration mode: clicks are taken from the ROI input
//     onPoint({x, y}),                  // a click, in image pixels
//   });

/** Listens on canvas c (capture phase, ahead of the ROI input); returns a function that stops. */
export function attachCalibration(c, cb) {
  const down = (e) => {
    if (!cb.active() || !cb.image() || e.button !== 0) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    const r = c.getBoundingClientRect();
    const { w, h } = cb.image();
    cb.onPoint({ x: Math.min(w, Math.max(0, ((e.clientX - r.left) / r.width) * w)),
      y: Math.min(h, Math.max(0, ((e.clientY - r.top) / r.height) * h)) });
  };
  c.addEventListener('pointerdown', down, true);
  return () => c.removeEventListener('pointerdown', down, true);
}

/** mm per pixel from two points and the distance between them (mm), or null if unusable. */
export function scaleFrom(points, mm) {
  if (points.length !== 2 || !(mm > 0) || !Number.isFinite(mm)) return null;
  const d = Math.hypot(points[1].x - points[0].x, points[1].y - points[0].y);
  return d >= 2 ? { mmPerPx: mm / d, px: d, mm } : null;
}
