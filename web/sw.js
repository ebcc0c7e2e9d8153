// sw.js - the service worker that makes the page work offline after the first visit
// (src/ARCHITECTURE.md, "Offline"). It adds no request of its own after the page has loaded:
//
// - Install fetches only the few files the page requested before this worker controlled it
//   (the page itself, its style, boot.js, the icon and the app manifest), while the page is
//   still starting; web/boot.js waits for control before the runtime and the model load.
// - Everything else is kept as it passes: the page's own requests go to the network as before
//   (the server answers no-cache files with cheap 304s), and a copy of each good answer is
//   stored; when the network fails, the stored copy answers.
// - Model files (weights/*.csasn?v=<sha256 prefix>) are content-addressed: they are answered
//   from the store first. A model is stored only once its SHA-256 equals the manifest's (the
//   worker checks it again before the engine sees it), and storing a new version of a file
//   deletes the old one: an updated model replaces the cached copy.
// - The store is versioned (CACHE): a new version of this file drops the old store.
// Same-origin GET requests only; nothing here ever contacts another origin.
const CACHE = 'csasn-offline-v1';
const SHELL = ['./', 'index.html', 'embed.html', 'style.css', 'boot.js', 'favicon.svg', 'manifest.webmanifest'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE && k.startsWith('csasn-offline-')) await caches.delete(k);
    await self.clients.claim();
  })());
});

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

// The manifest entry's full SHA-256 of a model file, from the stored or fresh manifest.json.
async function expectedSha(url) {
  const cache = await caches.open(CACHE);
  const murl = new URL('weights/manifest.json', self.registration.scope).href;
  const res = await cache.match(murl);
  if (!res) return null;
  try {
    const m = await res.json();
    const file = decodeURIComponent(url.pathname.split('/').pop());
    const e = (m.models || []).find((x) => x.file === file);
    return e && typeof e.sha256 === 'string' ? e.sha256.toLowerCase() : null;
  } catch {
    return null;
  }
}

async function modelFile(req) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(req);
  if (hit) return hit;
  const res = await fetch(req);
  if (!res.ok) return res;
  const url = new URL(req.url);
  const want = await expectedSha(url);
  const copy = res.clone();
  // Stored only when verified; the page gets the answer either way (its worker verifies).
  (async () => {
    const body = await copy.arrayBuffer();
    if (!want || hex(await crypto.subtle.digest('SHA-256', body)) !== want) return;
    for (const k of await cache.keys()) {
      const u = new URL(k.url);
      if (u.pathname === url.pathname && u.search !== url.search) await cache.delete(k);
    }
    await cache.put(req, new Response(body, { status: 200, statusText: 'OK', headers: copy.headers }));
  })().catch(() => {});
  return res;
}

async function networkFirst(req) {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(req);
    if (res.ok && res.type === 'basic') await cache.put(req, res.clone());
    return res;
  } catch (e) {
    const hit = await cache.match(req) || (req.mode === 'navigate' ? await cache.match('index.html') : null);
    if (hit) return hit;
    throw e;
  }
}

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (/\/weights\/[^/]+\.csasn$/.test(url.pathname) && url.searchParams.has('v')) e.respondWith(modelFile(req));
  else e.respondWith(networkFirst(req));
});
