// manifest.js - the one reader of the model manifest (schema: src/MANIFEST.md), used by the
// widget, the page, tools/bench.cjs and the tests (node imports it from shell/ or build/wasm/).
//
//   const m = parseManifest(json, manifestUrl);   // throws CsasnError('manifest')
//   m.models[i] = { id, title, file, url, sha256, bytes, card, cardUrl, labels,
//                   malignantLabels, inputSize, segmentation, isDefault }
//   pickModel(m, 'thyroid-ddti') / pickModel(m, 'thyroid-ddti.csasn') -> entry or null
//   const m2 = await loadManifest(url);           // fetch (fetch.js) + parse
import { CsasnError, ERR } from './protocol.js';
import { fetchBytes } from './fetch.js';

export const MANIFEST_FORMAT = 'csasn-manifest';
export const MANIFEST_VERSION = 1;
// The fields of src/MANIFEST.md's two tables (tests/test_manifest.cjs checks they match).
export const TOP_FIELDS = Object.freeze(['format', 'version', 'default', 'models']);
export const MODEL_FIELDS = Object.freeze(['id', 'title', 'file', 'sha256', 'bytes', 'card', 'labels',
  'malignant_labels', 'input_size', 'segmentation']);
const MAX_MODEL_BYTES = 512 * 1024 * 1024; // CSASN_MAX_MODEL_BYTES (src/csasn.h)
const ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function bad(msg) {
  return new CsasnError(ERR.MANIFEST, `invalid model manifest: ${msg}`);
}

function strings(v, where) {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0)) throw bad(`${where} must be an array of non-empty strings`);
  return v.slice();
}

// A relative reference that stays on the manifest's origin.
function sameOrigin(ref, base, where) {
  if (typeof ref !== 'string' || !ref) throw bad(`${where} must be a non-empty string`);
  let u;
  try {
    u = new URL(ref, base);
  } catch {
    throw bad(`${where} ${JSON.stringify(ref)} is not a URL`);
  }
  if (u.origin !== new URL(base).origin) throw bad(`${where} ${JSON.stringify(ref)} leaves the manifest's origin`);
  return u;
}

/** JSON value of a manifest + the URL it was read from -> { version, default, models }. */
export function parseManifest(j, baseUrl) {
  const base = String(baseUrl);
  if (Array.isArray(j)) throw bad('a bare list is the old unversioned form; rewrite it with tools/manifest.py');
  if (!j || typeof j !== 'object') throw bad('not a JSON object');
  for (const k of Object.keys(j)) if (!TOP_FIELDS.includes(k)) throw bad(`unknown field ${JSON.stringify(k)}`);
  if (j.format !== MANIFEST_FORMAT) throw bad(`"format" must be ${JSON.stringify(MANIFEST_FORMAT)} (got ${JSON.stringify(j.format)})`);
  if (j.version !== MANIFEST_VERSION) throw bad(`version ${JSON.stringify(j.version)} is not supported (this page reads version ${MANIFEST_VERSION})`);
  if (!Array.isArray(j.models) || j.models.length === 0) throw bad('"models" must be a non-empty array');
  const seen = new Set();
  const models = j.models.map((e, i) => {
    const at = `models[${i}]`;
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw bad(`${at} is not an object`);
    for (const k of Object.keys(e)) if (!MODEL_FIELDS.includes(k)) throw bad(`${at}: unknown field ${JSON.stringify(k)}`);
    if (typeof e.id !== 'string' || !ID.test(e.id)) throw bad(`${at}.id ${JSON.stringify(e.id)} must match [a-z0-9][a-z0-9._-]* (at most 64)`);
    if (seen.has(e.id)) throw bad(`${at}.id ${JSON.stringify(e.id)} is listed twice`);
    seen.add(e.id);
    if (typeof e.title !== 'string' || !e.title.trim()) throw bad(`${at}.title must be a non-empty string`);
    const url = sameOrigin(e.file, base, `${at}.file`);
    if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) throw bad(`${at}.sha256 must be 64 lowercase hex digits`);
    if (!Number.isInteger(e.bytes) || e.bytes <= 0 || e.bytes > MAX_MODEL_BYTES) throw bad(`${at}.bytes must be an integer in 1..${MAX_MODEL_BYTES}`);
    const cardUrl = e.card === undefined ? null : sameOrigin(e.card, base, `${at}.card`);
    const labels = strings(e.labels, `${at}.labels`);
    const malignantLabels = strings(e.malignant_labels, `${at}.malignant_labels`);
    for (const l of malignantLabels) if (!labels.includes(l)) throw bad(`${at}.malignant_labels: ${JSON.stringify(l)} is not one of its labels`);
    if (!Number.isInteger(e.input_size) || e.input_size <= 0) throw bad(`${at}.input_size must be a positive integer`);
    if (typeof e.segmentation !== 'boolean') throw bad(`${at}.segmentation must be true or false`);
    return {
      id: e.id, title: e.title, file: e.file, url, sha256: e.sha256, bytes: e.bytes, card: e.card ?? null, cardUrl,
      labels, malignantLabels, inputSize: e.input_size, segmentation: e.segmentation, isDefault: false,
    };
  });
  const def = models.find((m) => m.id === j.default);
  if (!def) throw bad(`"default" ${JSON.stringify(j.default)} is not the id of a listed model`);
  def.isDefault = true;
  return { version: j.version, default: def.id, models };
}

/** The entry whose id or file name is `want`, else null. */
export function pickModel(manifest, want) {
  if (!want) return null;
  return manifest.models.find((m) => m.id === want || m.file === want || m.file.split('/').pop() === want) || null;
}

/** Fetches and parses the manifest at url (never cached: it names the current hashes); a
 *  relative url resolves against the page's. */
export async function loadManifest(url) {
  url = new URL(url, globalThis.location ? globalThis.location.href : undefined).href;
  const bytes = await fetchBytes(url, { what: 'the model list', cache: 'no-cache' });
  let j;
  try {
    j = JSON.parse(new TextDecoder('utf-8').decode(bytes));
  } catch (e) {
    throw bad(`not JSON (${e.message})`);
  }
  return parseManifest(j, url);
}
