// protocol.js - the messages between the page's client (client.js) and the engine's worker
// (worker.js), and the error codes every layer reports. Written once here: the two sides
// import the names, so a message cannot drift from its reader.
//
// Every request carries an `id`, echoed by its one reply (READY and MODULE carry none).
// Requests, page -> worker (fields other than `type` and `id`):
//   START     { module? }       engine to use: { module, relaxed }, a compiled WebAssembly.Module
//                               of csasn.wasm (relaxed false) or csasn-relaxed.wasm (true)
//                               (a standby worker gets the one the first worker compiled, so it
//                               starts without fetching anything); absent: the worker fetches
//                               and compiles its own, threaded when the page is isolated. A
//                               worker that receives no START starts itself, unless it was
//                               created with the name STANDBY_NAME.
//   LOAD      { bytes, sha256 } bytes: ArrayBuffer of the model file (transferred; the client
//                               downloaded it), sha256: its expected hex digest, checked here
//                               before the engine sees it
//   CLASSIFY  { image?, roi, preview, frame }   (frame: of a multi-frame DICOM file, from 1)
//                               image: ArrayBuffer of the file (transferred; kept as the current
//                               image; absent: run on the current one), roi: {x,y,w,h} in image
//                               pixels or null, preview: true to add result.preview
//   BENCH     { n, roi }        n timed classifications of the current image, worker-side
//   ADAPT     { classes, malignant, images, options, name, date }
//                               on-device adaptation of the loaded model (src/ARCHITECTURE.md
//                               section 9): classes/malignant: string[]; images: [{ cls, bytes
//                               (ArrayBuffer, transferred), group (string or null) }];
//                               options: { folds, views, epochs, seed }; name/date: of the file
//   REPORT    { images, date, fhir }
//                               the exam report of the loaded model (src/report.c, the same C
//                               as `csasn report`): images: [{name, nodule, view, roi, probs,
//                               malignancy, image:{w,h}, sizeMm}], date: YYYY-MM-DDThh:mm:ssZ,
//                               fhir: true for the FHIR R4 Bundle; the model's SHA-256 is the
//                               one LOAD verified
// Replies, worker -> page:
//   READY     { }               the script runs (sent once, without an id)
//   MODULE    { module }        { module, relaxed }: the single-thread engine of the kind it
//                               uses (sent once, without an
//                               id): what a standby worker is STARTed with
//   STARTED   { id }            the engine of a START is running
//   LOADED    { id, info, timing }
//                               info: classifier.info() of csasn.js; timing: {wasmMs, engineMs,
//                               verifyMs, initMs, bytes, threads, kernels ("wasm-simd128" or
//                               "wasm-relaxed-simd"), warmup:{slices, ms}, threadsFallback?,
//                               engineFallback? (why the relaxed engine is not in use)}
//   RESULT    { id, result }    result: csasn.js's classify() result plus engineMemoryBytes
//                               (the engine's memory after the call, before any recycle)
//   BENCHED   { id, ms }        ms: number[], one per classification
//   ADAPT_PROGRESS { id, phase, done, total, progress }
//                               while an ADAPT runs (any number, same id as its request):
//                               phase 'features' (done/total images) or 'training' (progress 0..1)
//   ADAPTED   { id, report, bytes, skipped }
//                               report: the cross-validated report (csasn_adapt_report_json),
//                               bytes: ArrayBuffer of the adapted .csasn (transferred),
//                               skipped: [{ index, message }] images the engine refused
//   REPORTED  { id, text }      the report document (JSON text)
//   ERROR     { id, code, message }
//                               code: one of ERR
export const MSG = Object.freeze({
  START: 'start',
  LOAD: 'load',
  CLASSIFY: 'classify',
  BENCH: 'bench',
  ADAPT: 'adapt',
  REPORT: 'report',
  READY: 'ready',
  MODULE: 'module',
  STARTED: 'started',
  LOADED: 'loaded',
  RESULT: 'result',
  BENCHED: 'benched',
  ADAPT_PROGRESS: 'adapt-progress',
  ADAPTED: 'adapted',
  REPORTED: 'reported',
  ERROR: 'error',
});

// The worker name that tells a worker to wait for START instead of starting its engine.
export const STANDBY_NAME = 'csasn-standby';

// Every code a CsasnError may carry, from any layer (worker, client, manifest, widget events).
export const ERR = Object.freeze({
  NETWORK: 'network',       // a file could not be downloaded
  INTEGRITY: 'integrity',   // a file's SHA-256 is missing or does not match
  MANIFEST: 'manifest',     // the model list is not a valid manifest (src/MANIFEST.md)
  MODEL: 'model',           // the model file was refused by the engine
  IMAGE: 'image',           // the image was refused by the engine (its message says why)
  STATE: 'state',           // a request that cannot be served as made (no model or image
                            // yet, a freed client, an argument of the wrong kind)
  CANCELLED: 'cancelled',   // the request was cancelled (client.cancel(), free())
  INTERNAL: 'internal',     // anything else: the engine or the worker failed
});

const CODES = new Set(Object.values(ERR));

export class CsasnError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'CsasnError';
    this.code = CODES.has(code) ? code : ERR.INTERNAL;
  }
}

// An error reply for a request (what the worker posts when a request fails).
export function errorReply(id, e) {
  return { type: MSG.ERROR, id, code: e instanceof CsasnError ? e.code : ERR.INTERNAL, message: (e && e.message) || String(e) };
}

// The error an ERROR reply stands for (what the client rejects with).
export function replyError(m) {
  return new CsasnError(m.code, m.message);
}
