// embed.js - the portal message protocol of embed.html (src/ARCHITECTURE.md, "The portal
// API"): a page on another origin embeds embed.html in an iframe and drives the classifier
// with postMessage. Version 1.
//
// Who may talk to it: the origins of the server's frame-ancestors directive, the one list the
// server also writes into <meta name="csasn-portal-origins"> of this page (tools/serve.mjs);
// 'self' stands for this page's own origin. Every incoming message whose event.origin is not on
// the list, or that does not come from the embedding window, is ignored: no reply, no effect.
// Every message sent names its target origin explicitly (never '*').
//
// Host -> frame: { protocol: 'csasn-portal', version: 1, type, id, ... }
//   open          { bytes: ArrayBuffer (transfer it), name, roi?: {x,y,w,h}, nodule?, view? }
//   select-model  { model: manifest id }
//   report        { format: 'json' | 'fhir', date?: YYYY-MM-DDThh:mm:ssZ }  (the images opened so far)
//   clear         { }                                       (forget the images opened so far)
// Frame -> host: { protocol: 'csasn-portal', version: 1, type, id?, ... }
//   ready   { model: {name, labels, malignant, inputSize} }  (no id; again after every model load)
//   result  { id, result: { name, labels, probs, top, label, malignancy, roi, image, model } }
//   report  { id, format, text }                             (text: the document, src/report.c)
//   done    { id }                                           (select-model, clear)
//   error   { id, code, message }
export const PORTAL_PROTOCOL = 'csasn-portal';
export const PORTAL_VERSION = 1;

// The allow-list: the meta's space-separated CSP sources -> exact origins. 'self' is this
// origin; host wildcards and schemes alone cannot be checked as one origin and are skipped.
export function allowedOrigins(sources, self) {
  const out = new Set();
  for (const s of String(sources || '').split(/\s+/).filter(Boolean)) {
    if (s === "'self'") { out.add(self); continue; }
    if (s.startsWith("'") || s.includes('*')) continue;
    try {
      const u = new URL(s);
      if (u.origin !== 'null' && (u.protocol === 'https:' || u.protocol === 'http:')) out.add(u.origin);
    } catch { /* not an origin */ }
  }
  return out;
}

const meta = document.querySelector('meta[name=csasn-portal-origins]');
const allowed = allowedOrigins(meta ? meta.content : "'self'", location.origin);
const widget = document.querySelector('csasn-classifier');
const embedded = window.parent !== window;
const opened = []; // the images opened through the protocol, for the report

const send = (msg, origin, transfer = []) => window.parent.postMessage({ protocol: PORTAL_PROTOCOL, version: PORTAL_VERSION, ...msg }, origin, transfer);
// ready goes to every allowed origin, each named: only the embedding page's matches.
const broadcast = (msg) => { for (const o of allowed) send(msg, o); };

function plainResult(r, name) {
  return { name, labels: r.labels, probs: r.probs, top: r.top, label: r.label, malignancy: r.malignancy, roi: r.roi, image: r.image, model: r.model };
}

// The widget's next csasn-result or csasn-error.
function nextAnswer() {
  return new Promise((resolve) => {
    const ok = (e) => { done(); resolve({ result: e.detail.result }); };
    const bad = (e) => { done(); resolve({ error: e.detail }); };
    const done = () => { widget.removeEventListener('csasn-result', ok); widget.removeEventListener('csasn-error', bad); };
    widget.addEventListener('csasn-result', ok);
    widget.addEventListener('csasn-error', bad);
  });
}

let chain = Promise.resolve();
async function handle(m, origin) {
  const reply = (msg, transfer) => send({ id: m.id, ...msg }, origin, transfer);
  const fail = (code, message) => reply({ type: 'error', code, message });
  if (m.version !== PORTAL_VERSION) return fail('state', `protocol version ${m.version} is not supported (this frame speaks ${PORTAL_VERSION})`);
  if (m.type === 'open') {
    if (!(m.bytes instanceof ArrayBuffer)) return fail('state', 'open: bytes must be an ArrayBuffer');
    const name = typeof m.name === 'string' && m.name ? m.name.slice(0, 200) : 'image';
    let ans = nextAnswer();
    widget.openBytes(m.bytes, name);
    let a = await ans;
    if (!a.error && m.roi) {
      ans = nextAnswer();
      widget.setRoi(m.roi);
      a = await ans;
    }
    if (a.error) return fail(a.error.code || 'image', a.error.message);
    const r = a.result;
    opened.push({ name, nodule: typeof m.nodule === 'string' ? m.nodule : null, view: typeof m.view === 'string' ? m.view : null, roi: r.roi, probs: r.probs, malignancy: r.malignancy, image: r.image });
    return reply({ type: 'result', result: plainResult(r, name) });
  }
  if (m.type === 'select-model') {
    if (typeof m.model !== 'string') return fail('state', 'select-model: model must be a manifest id');
    const ready = new Promise((resolve) => {
      const ok = () => { done(); resolve(null); };
      const bad = (e) => { done(); resolve(e.detail); };
      const done = () => { widget.removeEventListener('csasn-ready', ok); widget.removeEventListener('csasn-error', bad); };
      widget.addEventListener('csasn-ready', ok);
      widget.addEventListener('csasn-error', bad);
    });
    opened.length = 0; // results of another model do not mix into one report
    widget.model = m.model;
    const e = await ready;
    return e ? fail(e.code || 'manifest', e.message) : reply({ type: 'done' });
  }
  if (m.type === 'report') {
    if (!opened.length) return fail('state', 'report: no image has been opened');
    try {
      const text = await widget.report(opened, { date: typeof m.date === 'string' ? m.date : undefined, fhir: m.format === 'fhir' });
      return reply({ type: 'report', format: m.format === 'fhir' ? 'fhir' : 'json', text });
    } catch (e) {
      return fail(e.code || 'state', e.message);
    }
  }
  if (m.type === 'clear') {
    opened.length = 0;
    return reply({ type: 'done' });
  }
  return fail('state', `unknown message type ${JSON.stringify(m.type)}`);
}

if (embedded && widget) {
  window.addEventListener('message', (ev) => {
    // Nothing from an origin off the list, or from any window but the embedding one.
    if (!allowed.has(ev.origin) || ev.source !== window.parent) return;
    const m = ev.data;
    if (!m || typeof m !== 'object' || m.protocol !== PORTAL_PROTOCOL) return;
    chain = chain.then(() => handle(m, ev.origin)).catch((e) => send({ type: 'error', id: m.id, code: 'internal', message: String(e && e.message || e) }, ev.origin));
  });
  widget.addEventListener('csasn-ready', (e) => {
    const info = e.detail.info;
    broadcast({ type: 'ready', model: info ? { name: info.name, labels: info.labels, malignant: info.malignant, inputSize: info.inputSize } : null });
  });
}
