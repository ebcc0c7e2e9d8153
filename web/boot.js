// boot.js - the page's first script: it puts the service worker (sw.js) in control before the
// page starts its own scripts, then imports them (the script tag's data-modules). Why first:
// the service worker keeps a copy of what the page itself downloads (page, runtime, models) as
// it passes, so the first visit fills the offline cache without one request of its own; for
// that it must control the page before the runtime and the model are fetched.
// Where service workers are unavailable (an insecure origin, a browser that blocks them) the
// page simply starts as before.
const me = document.querySelector('script[data-modules]'); // (module scripts have no currentScript)
const modules = ((me && me.dataset.modules) || 'app.js').split(/\s+/).filter(Boolean);

async function control() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register(new URL('sw.js', document.baseURI), { scope: './', updateViaCache: 'all' });
    if (navigator.serviceWorker.controller) return;
    // First visit: sw.js claims this page as soon as it is active (clients.claim()).
    await Promise.race([
      new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true })),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
  } catch (e) {
    console.warn(`csasn: offline use unavailable: ${e.message || e}`);
  }
}

await control();
for (const m of modules) await import(new URL(m, document.baseURI).href);
