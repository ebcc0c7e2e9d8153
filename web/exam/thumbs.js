// thumbs.js - small pictures of one exam image for the list and the printed report: the
// engine's own preview with the region of interest drawn on it, the attention (heat) map and
// the lesion mask, each as a data: URL (the page's CSP allows img-src data:). Drawn from the
// result the engine returned: the page decodes no image file itself.

// Gray preview (w x h, one byte per pixel, shown at the image's aspect) + ROI box.
export function previewUrl(item, side = 120) {
  const p = item.preview;
  if (!p) return '';
  const aspect = item.image.w / item.image.h;
  const cw = aspect >= 1 ? side : Math.max(1, Math.round(side * aspect));
  const ch = aspect >= 1 ? Math.max(1, Math.round(side / aspect)) : side;
  const src = document.createElement('canvas');
  src.width = p.w;
  src.height = p.h;
  const sctx = src.getContext('2d');
  const im = sctx.createImageData(p.w, p.h);
  for (let i = 0; i < p.w * p.h; i++) {
    const g = p.data[i];
    im.data[4 * i] = g; im.data[4 * i + 1] = g; im.data[4 * i + 2] = g; im.data[4 * i + 3] = 255;
  }
  sctx.putImageData(im, 0, 0);
  const c = document.createElement('canvas');
  c.width = cw;
  c.height = ch;
  const ctx = c.getContext('2d');
  ctx.drawImage(src, 0, 0, cw, ch);
  const roi = item.roi || { x: 0, y: 0, w: item.image.w, h: item.image.h };
  const sx = cw / item.image.w, sy = ch / item.image.h;
  ctx.strokeStyle = '#f59e0b';
  ctx.lineWidth = 2;
  ctx.strokeRect(roi.x * sx + 1, roi.y * sy + 1, Math.max(2, roi.w * sx - 2), Math.max(2, roi.h * sy - 2));
  return c.toDataURL('image/png');
}

// A [h][w] map in [0,1] as a picture: 'heat' (dark blue -> yellow) or 'mask' (gray).
export function mapUrl(map, kind, side = 80) {
  if (!map || !map.data) return '';
  const c = document.createElement('canvas');
  c.width = map.w;
  c.height = map.h;
  const ctx = c.getContext('2d');
  const im = ctx.createImageData(map.w, map.h);
  for (let i = 0; i < map.w * map.h; i++) {
    const v = Math.min(1, Math.max(0, map.data[i]));
    let r, g, b;
    if (kind === 'heat') { r = 255 * Math.min(1, 2 * v); g = 255 * Math.max(0, 2 * v - 1) * 0.9 + 40 * v; b = 120 * (1 - v); } else { r = g = b = 255 * v; }
    im.data[4 * i] = r; im.data[4 * i + 1] = g; im.data[4 * i + 2] = b; im.data[4 * i + 3] = 255;
  }
  ctx.putImageData(im, 0, 0);
  const out = document.createElement('canvas');
  out.width = side;
  out.height = side;
  const o = out.getContext('2d');
  o.imageSmoothingEnabled = kind === 'heat';
  o.drawImage(c, 0, 0, side, side);
  return out.toDataURL('image/png');
}
