// preview.js - the open image on screen. The picture is the engine's own (result.preview:
// csasn_preview of src/csasn.h, made from the bytes it classified): the page decodes nothing,
// so what is shown is what was classified, and a region drawn on it is in the engine's pixels
// (no EXIF rotation, no APNG animation, 16-bit scaled as the engine scales it).
import { pixelCanvas } from './view.js';

// Backing size of the image and overlay canvases: the preview has at most 1024 px a side,
// the overlay's lines and maps stay sharp on a high-density screen at twice that.
const CANVAS_MAX_SIDE = 2048;

// preview {w, h, data: gray bytes} -> a canvas of it.
function grayCanvas(p) {
  return pixelCanvas(p.w, p.h, (d) => {
    for (let i = 0; i < p.data.length; i++) {
      const v = p.data[i];
      d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v;
      d[4 * i + 3] = 255;
    }
  });
}

/** Draws image { name, w, h, preview } (w x h: the engine's image size) into the view's
 *  canvases, sized to the image's aspect ratio. The preview is square (each axis resampled on
 *  its own) and is stretched back to w : h here. */
export function showImage(v, img) {
  v.empty.hidden = true;
  v.canvases.hidden = false;
  const scale = Math.min(1, CANVAS_MAX_SIDE / Math.max(img.w, img.h));
  const cw = Math.max(1, Math.round(img.w * scale)), ch = Math.max(1, Math.round(img.h * scale));
  for (const c of [v.canvas, v.overlay]) { c.width = cw; c.height = ch; }
  const g = v.canvas.getContext('2d');
  g.fillStyle = '#000';
  g.fillRect(0, 0, cw, ch);
  if (img.preview) {
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    g.drawImage(grayCanvas(img.preview), 0, 0, cw, ch);
  }
  v.imageInfo.textContent = `${img.name} · ${img.w} × ${img.h} px`;
}

/** Hides the image (no file open). */
export function hideImage(v) {
  v.canvases.hidden = true;
  v.empty.hidden = false;
  v.imageInfo.textContent = '';
}

/** Display size: as large as the stage is wide, but never taller than most of the window, so
 *  the whole image (and any region on it) stays on screen. Both canvases get the same CSS box;
 *  pointer mapping (roi.js) reads it back with getBoundingClientRect. */
export function fitImage(v, img) {
  if (!img || v.canvases.hidden) return;
  const avail = Math.max(50, v.stage.clientWidth);
  const maxH = Math.max(260, Math.min(window.innerHeight * 0.7, 760));
  const s = Math.min(avail / img.w, maxH / img.h);
  const w = Math.max(1, Math.floor(img.w * s)), h = Math.max(1, Math.floor(img.h * s));
  for (const c of [v.canvas, v.overlay]) {
    c.style.width = w + 'px';
    c.style.height = h + 'px';
  }
}
