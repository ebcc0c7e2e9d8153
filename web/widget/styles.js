// styles.js - the styles of <csasn-classifier>, adopted by its shadow root as a constructed
// stylesheet: nothing is added to the host page, the page's rules cannot reach inside, and
// no request is made for them. Constructed sheets are CSSOM, which a CSP of style-src 'self'
// (tools/serve.mjs) allows, where an inline <style> would be refused.
const CSS = `
/* The custom properties are the element's theme: a page may set them on the element. */
:host {
  --cz-accent: #0f6e8c;
  --cz-accent-strong: #0b5870;
  --cz-accent-soft: #e3f1f6;
  --cz-text: #14202b;
  --cz-muted: #5b6b7a;
  --cz-line: #d9e1e8;
  --cz-card: #ffffff;
  --cz-danger: #b42318;
  --cz-danger-soft: #fdecea;
  --cz-warn: #b54708;
  --cz-radius: 12px;
  display: block;
}
:host([hidden]) { display: none; }
/* Nothing inherited from the page: a portal's global rules (font, colour, line height,
   letter spacing, text transform...) reach the host element and would flow into this tree
   through inheritance; the root starts from initial values instead. */
.cz {
  all: initial;
  display: block;
  color: var(--cz-text);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
.cz *, .cz *::before, .cz *::after { box-sizing: border-box; }
.cz [hidden] { display: none !important; }

.cz-sr {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

/* model bar */
.cz-bar {
  display: flex; flex-wrap: wrap; align-items: center; gap: 10px 14px;
  background: var(--cz-card); border: 1px solid var(--cz-line); border-radius: var(--cz-radius);
  padding: 10px 14px; margin-bottom: 16px;
}
.cz-bar-label { font-weight: 600; }
.cz-bar select {
  font: inherit; padding: 6px 30px 6px 10px; border: 1px solid #b8c4cf; border-radius: 8px;
  background: #fff; color: inherit; min-width: 14em; max-width: 100%;
}
.cz-link { color: var(--cz-accent); font-weight: 500; }
.cz-link:hover { color: var(--cz-accent-strong); }
.cz-modelmeta { color: var(--cz-muted); font-size: 13px; }
.cz-progress { display: flex; align-items: center; gap: 10px; flex: 1 1 260px; min-width: 200px; }
.cz-progress progress {
  flex: 1; height: 8px; appearance: none; border: 0; border-radius: 99px; overflow: hidden;
  background: var(--cz-accent-soft);
}
.cz-progress progress::-webkit-progress-bar { background: var(--cz-accent-soft); border-radius: 99px; }
.cz-progress progress::-webkit-progress-value { background: var(--cz-accent); border-radius: 99px; }
.cz-progress progress::-moz-progress-bar { background: var(--cz-accent); }
.cz-progress-text { font-size: 13px; color: var(--cz-muted); white-space: nowrap; }

/* layout */
.cz-grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(300px, 2fr); gap: 16px; align-items: start; }
@media (max-width: 860px) { .cz-grid { grid-template-columns: minmax(0, 1fr); } }
.cz-card {
  background: var(--cz-card); border: 1px solid var(--cz-line); border-radius: var(--cz-radius);
  padding: 16px; box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04);
}

/* toolbar */
.cz-tools { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px; margin-bottom: 12px; }
.cz-btn {
  display: inline-flex; align-items: center; gap: 6px; font: inherit; font-weight: 600;
  padding: 7px 14px; border-radius: 8px; border: 1px solid #b8c4cf; background: #fff;
  color: var(--cz-text); cursor: pointer; user-select: none;
}
.cz-btn:hover:not(:disabled) { background: #f2f6f9; }
.cz-btn:disabled { opacity: 0.5; cursor: default; }
.cz-btn-primary { background: var(--cz-accent); border-color: var(--cz-accent); color: #fff; }
.cz-btn-primary:hover:not(:disabled) { background: var(--cz-accent-strong); }
.cz-ico { font-size: 16px; line-height: 1; }
.cz-toggle { display: inline-flex; align-items: center; gap: 6px; cursor: pointer; font-size: 14px; }
.cz-toggle input { width: 16px; height: 16px; accent-color: var(--cz-accent); }
.cz :focus-visible { outline: 3px solid #38bdf8; outline-offset: 2px; }

/* image stage */
.cz-stage {
  position: relative; background: #0b1117; border-radius: 10px; min-height: 320px;
  display: flex; align-items: center; justify-content: center; overflow: hidden;
  border: 2px dashed transparent;
}
.cz-stage.cz-drop { border-color: #38bdf8; background: #0e1c26; }
.cz-empty { text-align: center; color: #c5d0da; padding: 40px 24px; cursor: pointer; max-width: 440px; }
.cz-empty p { margin: 6px 0; }
.cz-empty-icon { font-size: 44px; color: #38bdf8; line-height: 1; margin-bottom: 8px; }
.cz-empty-title { font-size: 18px; font-weight: 600; color: #fff; }
.cz-empty .cz-muted { color: #8a99a8; font-size: 13px; }
.cz-canvases { position: relative; line-height: 0; }
.cz-canvases canvas { display: block; margin: 0; padding: 0; border: 0; }
.cz-canvases .cz-overlay { position: absolute; left: 0; top: 0; cursor: crosshair; touch-action: none; }
.cz-busy {
  position: absolute; top: 10px; right: 10px; display: flex; align-items: center; gap: 8px;
  background: rgba(11, 17, 23, 0.85); color: #e6edf3; padding: 6px 12px; border-radius: 99px; font-size: 13px;
}
.cz-spinner {
  width: 14px; height: 14px; border-radius: 50%; border: 2px solid rgba(255, 255, 255, 0.25);
  border-top-color: #38bdf8; animation: cz-spin 0.8s linear infinite;
}
@keyframes cz-spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .cz-spinner { animation: none; } }
.cz-hint, .cz-imageinfo { font-size: 13px; color: var(--cz-muted); margin: 8px 0 0; }
.cz-imageinfo:empty { display: none; }
.cz-error {
  margin-top: 12px; padding: 10px 12px; border-radius: 8px; background: var(--cz-danger-soft);
  color: var(--cz-danger); border: 1px solid #f5c2bd; font-size: 14px;
}

/* results */
.cz-status { margin: 0 0 12px; color: var(--cz-muted); font-size: 14px; }
.cz-top { padding: 14px; border-radius: 10px; background: var(--cz-accent-soft); margin-bottom: 14px; }
.cz-top.cz-top-malignant { background: #fff3e8; }
.cz-kicker { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--cz-muted); font-weight: 600; }
.cz-top-label { font-size: 26px; font-weight: 700; line-height: 1.2; margin-top: 2px; word-break: break-word; }
.cz-top-prob { font-size: 15px; color: var(--cz-muted); }
.cz-malig { margin-bottom: 16px; }
.cz-malig-head { display: flex; justify-content: space-between; font-weight: 600; margin-bottom: 6px; }
.cz-malig-value { font-variant-numeric: tabular-nums; }
.cz-meter { position: relative; height: 10px; border-radius: 99px; background: #edf1f5; }
.cz-meter-fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 99px; background: #2e90b0; }
.cz-malig.cz-high .cz-meter-fill { background: #d9480f; }
.cz-malig.cz-high .cz-malig-value { color: #c2410c; }
.cz-meter-tick { position: absolute; top: -4px; bottom: -4px; width: 2px; margin-left: -1px; background: var(--cz-text); }
.cz-h { font-size: 13px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--cz-muted); margin: 0 0 8px; }
.cz-probs { list-style: none; margin: 0; padding: 0; }
.cz-prob {
  display: grid; grid-template-columns: minmax(7.5em, 38%) minmax(40px, 1fr) 4.2em; align-items: center; gap: 10px;
  padding: 6px 0; border-bottom: 1px solid #eef2f5;
}
.cz-prob:last-child { border-bottom: 0; }
.cz-prob-name { font-weight: 500; overflow-wrap: anywhere; display: flex; align-items: center; flex-wrap: wrap; gap: 2px 6px; }
.cz-prob-top .cz-prob-name { font-weight: 700; }
.cz-tag {
  display: inline-block; font-size: 11px; font-weight: 600; color: #9a3412;
  background: #ffedd5; padding: 0 6px; border-radius: 99px; vertical-align: 1px;
}
.cz-prob-bar { height: 10px; background: #edf1f5; border-radius: 99px; overflow: hidden; }
.cz-fill { display: block; height: 100%; background: #8fb8c9; border-radius: 99px; min-width: 2px; }
.cz-prob-top .cz-fill { background: var(--cz-accent); }
.cz-prob-pct { text-align: right; font-variant-numeric: tabular-nums; font-weight: 600; }
.cz-features-box { margin-top: 16px; }
.cz-features { list-style: none; margin: 0; padding: 0; }
.cz-feature {
  display: grid; grid-template-columns: minmax(7.5em, 38%) 1fr 4.2em; align-items: baseline; gap: 10px;
  padding: 5px 0; border-bottom: 1px solid #eef2f5;
}
.cz-feature:last-child { border-bottom: 0; }
.cz-feature-name { color: var(--cz-muted); overflow-wrap: anywhere; text-transform: capitalize; }
.cz-feature-value { font-weight: 600; overflow-wrap: anywhere; }
.cz-feature-pct { text-align: right; font-variant-numeric: tabular-nums; font-weight: 600; }
.cz-meta { margin: 14px 0 0; font-size: 13px; color: var(--cz-muted); }
.cz-meta span { color: var(--cz-text); font-weight: 600; }
.cz-legend { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 16px; margin-top: 10px; }
.cz-legend-item { display: inline-flex; align-items: center; gap: 8px; }
.cz-legend .cz-small { margin: 0; }
.cz-legend-swatch { width: 18px; height: 10px; border: 2px solid #bef264; border-radius: 3px; background: rgba(190, 242, 100, 0.15); }
.cz-legend-bar {
  width: 120px; height: 8px; border-radius: 99px;
  background: linear-gradient(90deg, #1e3c8c, #00aae6, #3cdc78, #fadc28, #f0281e);
}
.cz-muted { color: var(--cz-muted); }
.cz-small { font-size: 12px; margin: 6px 0 0; }
.cz-foot { margin: 14px 2px 0; font-size: 13px; color: var(--cz-muted); }
.cz-foot strong { color: var(--cz-warn); }
.cz-placeholder { color: var(--cz-muted); font-size: 14px; border-top: 1px solid #eef2f5; padding-top: 4px; }
.cz-placeholder p { margin: 8px 0 4px; }
.cz-placeholder ul { margin: 0; padding-left: 20px; }
.cz-placeholder li { margin: 2px 0; }
.cz-model-error { margin: -6px 0 16px; }
`;

let sheet = null; // one sheet shared by every instance

/** Gives root (a ShadowRoot) the widget's styles. */
export function adoptStyles(root) {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  root.adoptedStyleSheets = [sheet];
}
